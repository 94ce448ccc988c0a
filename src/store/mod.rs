//! Durable state: the [`Store`] traits and their backends.
//!
//! Stores persist and query; they never apply business rules and never see plaintext PII (the
//! service layer seals it first, see [`crate::crypto::Pii`]). Each aggregate has a small trait;
//! [`Store`] is their union with a blanket impl, so an embedder implements the parts and passes
//! one `Arc<dyn Store>`.
//!
//! Backends: [`MemoryStore`] (always compiled), `SqliteStore` (feature `sqlite`), `MysqlStore`
//! (feature `mysql`: MySQL 8 / MariaDB 10.11). Every backend runs the same conformance suite
//! (the crate's unit tests; feature `testing` exports it as `melo::testing::store_conformance`
//! for backends written outside the crate).

use std::fmt;

use async_trait::async_trait;

use crate::model::{
    Acks, ChatKind, ChatMember, ChatRecord, ChatRole, DeviceId, InviteRecord, Message, MessageId,
    NewEntry, NewMessage, ProfileChange, QueueTarget, QueuedEntry, Session, SessionId,
    SessionUpsert, StoreOutcome, Timestamp, UserId, UserRecord,
};

mod admin;
#[cfg(any(test, feature = "testing"))]
pub(crate) mod conformance;
mod erase;
mod import;
mod memory;
#[cfg(feature = "mysql")]
mod mysql;
mod read_markers;
mod schedule;
mod sealed;
#[cfg(any(feature = "sqlite", feature = "mysql"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use admin::{AdminStore, RegistrationInviteStore, StoreCounts};
pub use erase::{EraseStore, ErasedAccount, ErasedMembership};
pub use import::{ImportDone, ImportOutcome, ImportStore, ImportedChat};
pub use memory::MemoryStore;
#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub use mysql::MysqlStore;
pub use read_markers::{ReadMarker, ReadMarkerStore, READ_MARKER_ID_MAX_BYTES};
pub use schedule::{Claim, ScheduleId, ScheduleOutcome, ScheduleStore, ScheduledMessage};
pub use sealed::{KeyShape, RowKey, SealedRow, SealedStore, SealedTable, SealedUpdate};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteStore;

/// The newest SQLite migration of this release (backups refuse a database past it).
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite_schema_latest() -> i64 {
    sqlite::latest_migration()
}

/// The newest MySQL migration of this release (backups refuse a database past it).
#[cfg(feature = "mysql")]
pub(crate) fn mysql_schema_latest() -> i64 {
    mysql::latest_migration()
}

/// Errors a store reports.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated; the payload names it (`"uid"`, `"phone"`).
    #[error("conflict on {0}")]
    Conflict(&'static str),
    /// A row the operation needs does not exist.
    #[error("not found")]
    NotFound,
    /// The backend cannot be reached (connection refused, pool exhausted, I/O).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend failed otherwise (bad statement, corrupt row). Never shown to clients.
    #[error("store backend: {0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps a backend error.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(e))
    }
}

/// Result alias of store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// What opening a SQL store does with its schema.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Migrations {
    /// Apply every migration of this release that the database lacks (the default).
    #[default]
    Apply,
    /// Apply nothing and refuse a database whose schema is not exactly this release's: for
    /// servers started with `--no-migrate` after an operator ran `melo migrate`.
    Verify,
}

/// Users, their profile blobs and their E2E secret-key backup.
#[async_trait]
pub trait UserStore: Send + Sync + fmt::Debug {
    /// Inserts a user. `Conflict("uid")` when the uid is taken, `Conflict("phone")` when the
    /// phone's blind index is.
    async fn create_user(&self, user: &UserRecord) -> StoreResult<()>;
    /// A user by uid.
    async fn user(&self, id: UserId) -> StoreResult<Option<UserRecord>>;
    /// Several users by uid, in any order; unknown ids are skipped.
    async fn users(&self, ids: &[UserId]) -> StoreResult<Vec<UserRecord>>;
    /// A user by phone blind index.
    async fn user_by_phone_index(&self, index: &[u8]) -> StoreResult<Option<UserRecord>>;
    /// Applies a profile change; false when the user does not exist.
    async fn update_user(&self, id: UserId, change: &ProfileChange) -> StoreResult<bool>;
    /// Replaces the sealed E2E secret-key backup.
    async fn put_secret_key(&self, id: UserId, sealed: &[u8], at: Timestamp) -> StoreResult<()>;
    /// The sealed secret-key backup and when it was stored.
    async fn secret_key(&self, id: UserId) -> StoreResult<Option<(Vec<u8>, Timestamp)>>;
    /// Replaces the user's sealed settings (privacy choices such as invisible mode).
    /// `NotFound` when the user does not exist.
    async fn put_settings(&self, id: UserId, sealed: &[u8]) -> StoreResult<()>;
    /// The sealed settings of those of `ids` that have any, in any order.
    async fn settings(&self, ids: &[UserId]) -> StoreResult<Vec<(UserId, Vec<u8>)>>;
}

/// Sessions (one per logged-in device) and their device tokens.
#[async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug {
    /// Refreshes the active session of (user, device) or creates one; atomically, so two
    /// concurrent logins of one device end in one session.
    async fn upsert_session(&self, s: &SessionUpsert) -> StoreResult<Session>;
    /// A session by id (active or not).
    async fn session(&self, id: SessionId) -> StoreResult<Option<Session>>;
    /// The active session of (user, device).
    async fn active_session(&self, user: UserId, device: &DeviceId)
        -> StoreResult<Option<Session>>;
    /// Active sessions of a user.
    async fn sessions_of(&self, user: UserId) -> StoreResult<Vec<Session>>;
    /// Sets (or with `None` clears) the device token of an active session; false if not active.
    async fn set_device_token(
        &self,
        id: SessionId,
        token: Option<(&[u8], Timestamp)>,
    ) -> StoreResult<bool>;
    /// Replaces the sealed last-activity time.
    async fn touch_session(&self, id: SessionId, sealed_last_activity: &[u8]) -> StoreResult<()>;
    /// Revokes one active session of `user`; false when it is not theirs or not active.
    /// Its device token and its push registration are deleted.
    async fn revoke_session(&self, user: UserId, id: SessionId) -> StoreResult<bool>;
    /// Revokes every active session of `user` except `keep`; returns the revoked ids. Their
    /// device tokens and push registrations are deleted.
    async fn revoke_sessions_except(
        &self,
        user: UserId,
        keep: Option<SessionId>,
    ) -> StoreResult<Vec<SessionId>>;
}

/// State of a contact relationship between two users.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContactState {
    /// `requester` asked `target`.
    Pending,
    /// Mutual.
    Accepted,
}

/// One relationship between a pair of users (there is at most one per pair).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    /// Who asked.
    pub requester: UserId,
    /// Who was asked.
    pub target: UserId,
    /// Pending or accepted.
    pub state: ContactState,
    /// The requester's `secret` flag.
    pub secret: bool,
    /// When it was asked.
    pub requested_at: Timestamp,
}

/// Contact relationships.
#[async_trait]
pub trait ContactStore: Send + Sync + fmt::Debug {
    /// The relationship of a pair, in either direction.
    async fn relationship(&self, a: UserId, b: UserId) -> StoreResult<Option<Contact>>;
    /// Records a pending request; `Conflict("contact")` when the pair already has a relationship.
    async fn request_contact(
        &self,
        from: UserId,
        to: UserId,
        secret: bool,
        at: Timestamp,
    ) -> StoreResult<()>;
    /// Accepts `requester`'s pending request to `target`; false when there is none.
    async fn accept_contact(&self, requester: UserId, target: UserId) -> StoreResult<bool>;
    /// Deletes the pair's relationship and returns what it was.
    async fn remove_contact(&self, a: UserId, b: UserId) -> StoreResult<Option<Contact>>;
    /// Accepted contacts of `user` ordered by uid: one page and the total.
    async fn contacts_of(
        &self,
        user: UserId,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(Vec<UserId>, u64)>;
    /// Pending relationships where `user` is requester or target.
    async fn pending_of(&self, user: UserId) -> StoreResult<Vec<Contact>>;
}

/// The hot path of delivery: storing messages with their queue entries, appending receipts and
/// events, acknowledgements, delivery flags, and reading a device's queue. Every message
/// costs a few of these calls, so backends batch them (the SQL stores group-commit the writes
/// of many callers in one transaction).
#[async_trait]
pub trait DeliveryStore: Send + Sync + fmt::Debug {
    /// In one durable write: checks the sender device's `client_id` (a repeat returns
    /// `Duplicate` and stores nothing), stores the message, and appends one queue entry per
    /// target with that device's next `seq`. The message is stored as sent: its management state
    /// (`edited_at`, `deleted`, `pinned`, `reactions`) and delivery flags are taken to be the
    /// defaults and ignored.
    async fn store_message(
        &self,
        msg: &NewMessage,
        targets: &[QueueTarget],
    ) -> StoreResult<StoreOutcome>;
    /// Appends one entry per `(session, entry)`, atomically; returns the assigned seqs in order
    /// (a session listed several times gets consecutive seqs in list order).
    async fn enqueue(&self, entries: &[(SessionId, NewEntry)]) -> StoreResult<Vec<i64>>;
    /// In one durable write: appends `acks.receipts` (as [`Self::enqueue`] would), flags
    /// `acks.delivered` delivered, and removes what the device `session` acknowledged (entries
    /// that are gone already are skipped: the caller knows what it sent). Returns the receipts'
    /// seqs.
    async fn ack(&self, session: SessionId, acks: &Acks) -> StoreResult<Vec<i64>>;
    /// Marks a message read (and delivered); returns (newly delivered, newly read).
    async fn mark_read(&self, id: MessageId) -> StoreResult<(bool, bool)>;
    /// Queued entries of a session with `after < seq` (and `seq <= upto` when given),
    /// ascending, at most `limit`, and no more than `max_bytes` of content in all (see
    /// [`QueuedEntry::content_bytes`]); the first entry is returned whatever its size.
    async fn queue_after(
        &self,
        session: SessionId,
        after: i64,
        upto: Option<i64>,
        limit: u64,
        max_bytes: u64,
    ) -> StoreResult<QueueRows>;
    /// Highest seq ever assigned to the session (0 when none).
    async fn last_seq(&self, session: SessionId) -> StoreResult<i64>;
    /// The seqs still queued for a session with `after < seq <= upto`, ascending (no content:
    /// a connection checks which of the frames it has in flight the sweep dropped).
    async fn queue_seqs(&self, session: SessionId, after: i64, upto: i64) -> StoreResult<Vec<i64>>;
}

/// Entries of a queue read, ascending.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueRows {
    /// The entries.
    pub entries: Vec<QueuedEntry>,
    /// True when the byte budget stopped the read while more entries were in range.
    pub cut: bool,
}

/// Rows of a history read, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryRows {
    /// The messages, newest first.
    pub messages: Vec<Message>,
    /// True when the byte budget stopped the read while older matching messages remained.
    pub cut: bool,
}

/// Messages: reading, history and management.
#[async_trait]
pub trait MessageStore: Send + Sync + fmt::Debug {
    /// A message by id.
    async fn message(&self, id: MessageId) -> StoreResult<Option<Message>>;
    /// DM history of the pair (either direction), newest first: skips `skip` messages older
    /// than `before` (or the newest when `None`) and returns at most `take`, holding no more
    /// than `max_bytes` of content (see [`Message::content_bytes`]; the first message is
    /// returned whatever its size).
    async fn dm_history(
        &self,
        a: UserId,
        b: UserId,
        before: Option<MessageId>,
        page: HistoryPageSpec,
    ) -> StoreResult<HistoryRows>;
    /// Number of messages in the pair's DM history.
    async fn dm_count(&self, a: UserId, b: UserId) -> StoreResult<u64>;
    /// Chat history, newest first, with the paging rules of [`Self::dm_history`]. Only
    /// messages stored with this `chat_id`; DMs never appear.
    async fn chat_history(
        &self,
        chat_id: i64,
        before: Option<MessageId>,
        page: HistoryPageSpec,
    ) -> StoreResult<HistoryRows>;
    /// Number of messages in the chat's history.
    async fn chat_count(&self, chat_id: i64) -> StoreResult<u64>;
    /// Replaces the payload and sets `edited_at` (the signature is kept); false when the message
    /// does not exist or is deleted.
    async fn edit_message(&self, id: MessageId, payload: &str, at: Timestamp) -> StoreResult<bool>;
    /// Marks deleted and erases the payload to `""` and the signature; the message keeps its
    /// place in history (and its pin and reactions). False when absent; true again when already
    /// deleted.
    async fn delete_message(&self, id: MessageId) -> StoreResult<bool>;
    /// Sets or clears the pinned flag; false when the message is absent.
    async fn set_pinned(&self, id: MessageId, pinned: bool) -> StoreResult<bool>;
    /// Sets (`Some`) or removes (`None`) `user`'s reaction; false when the message is absent. A
    /// changed reaction moves the user to the end of the new emoji's list; setting the same one
    /// again changes nothing.
    async fn set_reaction(
        &self,
        id: MessageId,
        user: UserId,
        reaction: Option<&str>,
    ) -> StoreResult<bool>;
}

/// How many history rows to read: skip `skip`, take at most `take`, at most `max_bytes` of
/// content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryPageSpec {
    /// Newer messages to skip.
    pub skip: u64,
    /// Most messages to return.
    pub take: u64,
    /// Most content bytes to return (the first message is returned whatever its size).
    pub max_bytes: u64,
}

/// Queue maintenance: revocation, expiry and overflow, retention.
#[async_trait]
pub trait QueueStore: Send + Sync + fmt::Debug {
    /// Deletes a session's whole queue (revocation).
    async fn drop_queue(&self, session: SessionId) -> StoreResult<()>;
    /// Enforces `QUEUE_TTL` and `QUEUE_MAX` on every queue: the leading entries queued before
    /// `expire_before`, and the oldest ones past `max_len` (counting the gap itself), are
    /// deleted and replaced by one [`QueueItem::Gap`](crate::model::QueueItem::Gap) at the seq
    /// of the newest deleted entry. A leading gap that is dropped merges into the new one; a gap
    /// alone never expires. Returns the sessions that got a gap, with its seq.
    async fn trim_queues(
        &self,
        max_len: u64,
        expire_before: Timestamp,
    ) -> StoreResult<Vec<(SessionId, i64)>>;
    /// Deletes messages created before `history_before` that no queue entry references (with
    /// their reactions), and forgets the `client_id`s of messages created before `dedupe_before`. Returns the number of
    /// messages deleted.
    async fn purge_messages(
        &self,
        history_before: Timestamp,
        dedupe_before: Timestamp,
    ) -> StoreResult<u64>;
}

/// Push registrations: at most one per session (device). Values are sealed by the service.
#[async_trait]
pub trait PushStore: Send + Sync + fmt::Debug {
    /// Sets (replacing any previous one) the sealed registration of an active session of `user`;
    /// false (and nothing stored) when the session is not `user`'s or not active.
    async fn set_push(&self, user: UserId, session: SessionId, sealed: &[u8]) -> StoreResult<bool>;
    /// The registrations of `user`'s active sessions, as (session, sealed) pairs.
    async fn push_registrations(&self, user: UserId) -> StoreResult<Vec<(SessionId, Vec<u8>)>>;
    /// Deletes the registration of `session` only if it still equals `sealed` (a push service
    /// answered 404/410 for it; a newer registration must survive). True when one was deleted.
    async fn delete_push(&self, session: SessionId, sealed: &[u8]) -> StoreResult<bool>;
}

/// An avatar as a store holds it: the image sealed by the service, its sniffed type and the
/// entity tag derived from the sealed blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAvatar {
    /// `image/png`, `image/jpeg` or `image/webp` (not PII).
    pub mime: String,
    /// The sealed image bytes.
    pub sealed: Vec<u8>,
    /// Entity tag (unquoted); reveals nothing about the plaintext.
    pub etag: String,
    /// When it was stored.
    pub updated_at: Timestamp,
}

/// Avatars: at most one per user. The image is sealed by the service.
#[async_trait]
pub trait AvatarStore: Send + Sync + fmt::Debug {
    /// Sets (replacing any previous one) `user`'s avatar. `NotFound` when the user does not exist.
    async fn put_avatar(
        &self,
        user: UserId,
        mime: &str,
        sealed: &[u8],
        etag: &str,
        at: Timestamp,
    ) -> StoreResult<()>;
    /// `user`'s avatar.
    async fn avatar(&self, user: UserId) -> StoreResult<Option<StoredAvatar>>;
    /// Deletes `user`'s avatar; true when there was one.
    async fn delete_avatar(&self, user: UserId) -> StoreResult<bool>;
}

/// Group chats, channels, their members and invites (docs/protocol.md §4.7).
///
/// Persists and queries only: role rules are the service's job. Names and codes arrive sealed,
/// and codes are looked up by keyed blind indexes.
#[async_trait]
pub trait ChatStore: Send + Sync + fmt::Debug {
    /// Creates a chat and the owner's membership (role owner, joined `at`) atomically; returns
    /// the new id (1, 2, 3, … per store). Not public, no code, slow mode off.
    async fn create_chat(
        &self,
        kind: ChatKind,
        sealed_name: &[u8],
        owner: UserId,
        at: Timestamp,
    ) -> StoreResult<i64>;
    /// A chat by id.
    async fn chat(&self, id: i64) -> StoreResult<Option<ChatRecord>>;
    /// The chats `user` is a member of with their role, newest first (`created_at` descending,
    /// then id descending): one page and the total.
    async fn chats_of(
        &self,
        user: UserId,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(Vec<(ChatRecord, ChatRole)>, u64)>;
    /// The membership of `user` in `chat`.
    async fn member(&self, chat: i64, user: UserId) -> StoreResult<Option<ChatMember>>;
    /// Members of `chat` ordered by `joined_at`, then uid: one page and the total.
    async fn members(
        &self,
        chat: i64,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(Vec<ChatMember>, u64)>;
    /// Every member of `chat` in any order (fan-out; one indexed lookup).
    async fn member_ids(&self, chat: i64) -> StoreResult<Vec<UserId>>;
    /// The owner and the admins of `chat` (a channel's `chat_member` audience).
    async fn chat_staff(&self, chat: i64) -> StoreResult<Vec<UserId>>;
    /// Adds a membership; false (and no change) when `user` already is a member. `NotFound`
    /// when the chat does not exist.
    async fn add_member(
        &self,
        chat: i64,
        user: UserId,
        role: ChatRole,
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// Deletes a membership; false when there was none.
    async fn remove_member(&self, chat: i64, user: UserId) -> StoreResult<bool>;
    /// Sets a member's role; false when `user` is not a member.
    async fn set_role(&self, chat: i64, user: UserId, role: ChatRole) -> StoreResult<bool>;
    /// Sets `is_public`. When the chat has no permanent code yet and `new_code` is
    /// `Some((sealed, blind_index))`, stores it (atomically: only if there is still none);
    /// an existing code is kept forever. Returns the chat's sealed permanent code after the call.
    /// `NotFound` when the chat does not exist; `Conflict("invite")` when another chat's code has
    /// the same blind index.
    async fn set_public(
        &self,
        chat: i64,
        public: bool,
        new_code: Option<(&[u8], &[u8])>,
    ) -> StoreResult<Option<Vec<u8>>>;
    /// The chat whose permanent code has this blind index, public or not (the service checks
    /// `is_public`).
    async fn chat_by_code_index(&self, index: &[u8]) -> StoreResult<Option<ChatRecord>>;
    /// Sets the slow-mode interval; false when the chat does not exist.
    async fn set_slow_mode(&self, chat: i64, secs: u32) -> StoreResult<bool>;
    /// Replaces the sealed name; false when the chat does not exist.
    async fn set_chat_name(&self, chat: i64, sealed_name: &[u8]) -> StoreResult<bool>;
    /// Stores a temporary invite under its code's blind index; `Conflict("invite")` when the
    /// index is taken.
    async fn create_invite(&self, index: &[u8], invite: &InviteRecord) -> StoreResult<()>;
    /// An invite by its code's blind index. Expired ones may be returned: the service checks
    /// `expires_at`.
    async fn invite(&self, index: &[u8]) -> StoreResult<Option<InviteRecord>>;
    /// Deletes the invites with `expires_at <= now`; returns how many.
    async fn purge_invites(&self, now: Timestamp) -> StoreResult<u64>;
    /// Whether some chat has both `a` and `b` as members (avatar visibility).
    async fn share_chat(&self, a: UserId, b: UserId) -> StoreResult<bool>;
}

/// Backend health.
#[async_trait]
pub trait StoreHealth: Send + Sync + fmt::Debug {
    /// Cheap round trip to the backend (`/readyz`).
    async fn ping(&self) -> StoreResult<()>;
}

/// Everything Melo persists. Implemented for any type that implements the parts.
pub trait Store:
    UserStore
    + SessionStore
    + ContactStore
    + DeliveryStore
    + MessageStore
    + QueueStore
    + PushStore
    + AvatarStore
    + ChatStore
    + ReadMarkerStore
    + EraseStore
    + SealedStore
    + AdminStore
    + RegistrationInviteStore
    + ImportStore
    + ScheduleStore
    + StoreHealth
    + 'static
{
}

impl<T> Store for T where
    T: UserStore
        + SessionStore
        + ContactStore
        + DeliveryStore
        + MessageStore
        + QueueStore
        + PushStore
        + AvatarStore
        + ChatStore
        + ReadMarkerStore
        + EraseStore
        + SealedStore
        + AdminStore
        + RegistrationInviteStore
        + ImportStore
        + ScheduleStore
        + StoreHealth
        + 'static
{
}
