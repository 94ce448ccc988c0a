//! [`MeteredStore`]: any [`Store`] with per-operation latency and error metrics.
//!
//! Generated from the store traits, one delegating method per trait method: each call is timed
//! into `melo_store_operation_duration_seconds{op}`, and `Unavailable`/`Backend` errors count
//! into `melo_store_errors_total{op}` (`Conflict` and `NotFound` are answers, not failures).
//! The label handles are resolved once, so counting takes no lock.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::{Metrics, OpMeters};
use crate::model::{
    AckSelector, AckedEntry, ChatKind, ChatMember, ChatRecord, ChatRole, DeviceId, InviteRecord,
    Message, MessageId, NewMessage, ProfileChange, QueueTarget, QueuedEntry, Session, SessionId,
    SessionUpsert, StoreOutcome, Timestamp, UserId, UserRecord,
};
use crate::store::*;

const OPS: [&str; 65] = [
    "create_user",
    "user",
    "users",
    "user_by_phone_index",
    "update_user",
    "put_secret_key",
    "secret_key",
    "upsert_session",
    "session",
    "active_session",
    "sessions_of",
    "set_device_token",
    "touch_session",
    "revoke_session",
    "revoke_sessions_except",
    "relationship",
    "request_contact",
    "accept_contact",
    "remove_contact",
    "contacts_of",
    "pending_of",
    "store_message",
    "message",
    "dm_history",
    "dm_count",
    "mark_delivered",
    "mark_read",
    "chat_history",
    "chat_count",
    "edit_message",
    "delete_message",
    "set_pinned",
    "set_reaction",
    "enqueue_events",
    "queue_after",
    "ack",
    "last_seq",
    "drop_queue",
    "trim_queues",
    "purge_messages",
    "set_push",
    "push_registrations",
    "delete_push",
    "put_avatar",
    "avatar",
    "delete_avatar",
    "create_chat",
    "chat",
    "chats_of",
    "member",
    "members",
    "member_ids",
    "add_member",
    "remove_member",
    "set_role",
    "set_public",
    "chat_by_code_index",
    "set_slow_mode",
    "create_invite",
    "invite",
    "purge_invites",
    "share_chat",
    "ping",
    "sealed_rows",
    "replace_sealed",
];

/// A [`Store`] that measures every call of the store it wraps.
#[derive(Debug)]
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    ops: OpMeters,
}

impl MeteredStore {
    /// Wraps `inner`, counting into `metrics`.
    pub fn new(inner: Arc<dyn Store>, metrics: &Metrics) -> Self {
        let ops = OpMeters::new(&OPS, &metrics.store_duration, &metrics.store_errors);
        Self { inner, ops }
    }

    fn done<T>(&self, op: usize, started: Instant, r: &StoreResult<T>) {
        self.ops.observe(
            op,
            started,
            matches!(r, Err(StoreError::Unavailable(_) | StoreError::Backend(_))),
        );
    }
}

#[async_trait]
impl UserStore for MeteredStore {
    async fn create_user(&self, user: &UserRecord) -> StoreResult<()> {
        timed!(self, 0, self.inner.create_user(user))
    }
    async fn user(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        timed!(self, 1, self.inner.user(id))
    }
    async fn users(&self, ids: &[UserId]) -> StoreResult<Vec<UserRecord>> {
        timed!(self, 2, self.inner.users(ids))
    }
    async fn user_by_phone_index(&self, index: &[u8]) -> StoreResult<Option<UserRecord>> {
        timed!(self, 3, self.inner.user_by_phone_index(index))
    }
    async fn update_user(&self, id: UserId, change: &ProfileChange) -> StoreResult<bool> {
        timed!(self, 4, self.inner.update_user(id, change))
    }
    async fn put_secret_key(&self, id: UserId, sealed: &[u8], at: Timestamp) -> StoreResult<()> {
        timed!(self, 5, self.inner.put_secret_key(id, sealed, at))
    }
    async fn secret_key(&self, id: UserId) -> StoreResult<Option<(Vec<u8>, Timestamp)>> {
        timed!(self, 6, self.inner.secret_key(id))
    }
}

#[async_trait]
impl SessionStore for MeteredStore {
    async fn upsert_session(&self, s: &SessionUpsert) -> StoreResult<Session> {
        timed!(self, 7, self.inner.upsert_session(s))
    }
    async fn session(&self, id: SessionId) -> StoreResult<Option<Session>> {
        timed!(self, 8, self.inner.session(id))
    }
    async fn active_session(
        &self,
        user: UserId,
        device: &DeviceId,
    ) -> StoreResult<Option<Session>> {
        timed!(self, 9, self.inner.active_session(user, device))
    }
    async fn sessions_of(&self, user: UserId) -> StoreResult<Vec<Session>> {
        timed!(self, 10, self.inner.sessions_of(user))
    }
    async fn set_device_token(
        &self,
        id: SessionId,
        token: Option<(&[u8], Timestamp)>,
    ) -> StoreResult<bool> {
        timed!(self, 11, self.inner.set_device_token(id, token))
    }
    async fn touch_session(&self, id: SessionId, sealed_last_activity: &[u8]) -> StoreResult<()> {
        timed!(self, 12, self.inner.touch_session(id, sealed_last_activity))
    }
    async fn revoke_session(&self, user: UserId, id: SessionId) -> StoreResult<bool> {
        timed!(self, 13, self.inner.revoke_session(user, id))
    }
    async fn revoke_sessions_except(
        &self,
        user: UserId,
        keep: Option<SessionId>,
    ) -> StoreResult<Vec<SessionId>> {
        timed!(self, 14, self.inner.revoke_sessions_except(user, keep))
    }
}

#[async_trait]
impl ContactStore for MeteredStore {
    async fn relationship(&self, a: UserId, b: UserId) -> StoreResult<Option<Contact>> {
        timed!(self, 15, self.inner.relationship(a, b))
    }
    async fn request_contact(
        &self,
        from: UserId,
        to: UserId,
        secret: bool,
        at: Timestamp,
    ) -> StoreResult<()> {
        timed!(self, 16, self.inner.request_contact(from, to, secret, at))
    }
    async fn accept_contact(&self, requester: UserId, target: UserId) -> StoreResult<bool> {
        timed!(self, 17, self.inner.accept_contact(requester, target))
    }
    async fn remove_contact(&self, a: UserId, b: UserId) -> StoreResult<Option<Contact>> {
        timed!(self, 18, self.inner.remove_contact(a, b))
    }
    async fn contacts_of(
        &self,
        user: UserId,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(Vec<UserId>, u64)> {
        timed!(self, 19, self.inner.contacts_of(user, offset, limit))
    }
    async fn pending_of(&self, user: UserId) -> StoreResult<Vec<Contact>> {
        timed!(self, 20, self.inner.pending_of(user))
    }
}

#[async_trait]
impl MessageStore for MeteredStore {
    async fn store_message(
        &self,
        msg: &NewMessage,
        targets: &[QueueTarget],
    ) -> StoreResult<StoreOutcome> {
        timed!(self, 21, self.inner.store_message(msg, targets))
    }
    async fn message(&self, id: MessageId) -> StoreResult<Option<Message>> {
        timed!(self, 22, self.inner.message(id))
    }
    async fn dm_history(
        &self,
        a: UserId,
        b: UserId,
        before: Option<MessageId>,
        skip: u64,
        take: u64,
    ) -> StoreResult<Vec<Message>> {
        timed!(self, 23, self.inner.dm_history(a, b, before, skip, take))
    }
    async fn dm_count(&self, a: UserId, b: UserId) -> StoreResult<u64> {
        timed!(self, 24, self.inner.dm_count(a, b))
    }
    async fn mark_delivered(&self, ids: &[MessageId]) -> StoreResult<Vec<MessageId>> {
        timed!(self, 25, self.inner.mark_delivered(ids))
    }
    async fn mark_read(&self, id: MessageId) -> StoreResult<(bool, bool)> {
        timed!(self, 26, self.inner.mark_read(id))
    }
    async fn chat_history(
        &self,
        chat_id: i64,
        before: Option<MessageId>,
        skip: u64,
        take: u64,
    ) -> StoreResult<Vec<Message>> {
        timed!(
            self,
            27,
            self.inner.chat_history(chat_id, before, skip, take)
        )
    }
    async fn chat_count(&self, chat_id: i64) -> StoreResult<u64> {
        timed!(self, 28, self.inner.chat_count(chat_id))
    }
    async fn edit_message(&self, id: MessageId, payload: &str, at: Timestamp) -> StoreResult<bool> {
        timed!(self, 29, self.inner.edit_message(id, payload, at))
    }
    async fn delete_message(&self, id: MessageId) -> StoreResult<bool> {
        timed!(self, 30, self.inner.delete_message(id))
    }
    async fn set_pinned(&self, id: MessageId, pinned: bool) -> StoreResult<bool> {
        timed!(self, 31, self.inner.set_pinned(id, pinned))
    }
    async fn set_reaction(
        &self,
        id: MessageId,
        user: UserId,
        reaction: Option<&str>,
    ) -> StoreResult<bool> {
        timed!(self, 32, self.inner.set_reaction(id, user, reaction))
    }
}

#[async_trait]
impl QueueStore for MeteredStore {
    async fn enqueue_events(&self, events: &[(SessionId, bytes::Bytes)]) -> StoreResult<Vec<i64>> {
        timed!(self, 33, self.inner.enqueue_events(events))
    }
    async fn queue_after(
        &self,
        session: SessionId,
        after: i64,
        upto: Option<i64>,
        limit: u64,
    ) -> StoreResult<Vec<QueuedEntry>> {
        timed!(
            self,
            34,
            self.inner.queue_after(session, after, upto, limit)
        )
    }
    async fn ack(&self, session: SessionId, sel: AckSelector) -> StoreResult<Vec<AckedEntry>> {
        timed!(self, 35, self.inner.ack(session, sel))
    }
    async fn last_seq(&self, session: SessionId) -> StoreResult<i64> {
        timed!(self, 36, self.inner.last_seq(session))
    }
    async fn drop_queue(&self, session: SessionId) -> StoreResult<()> {
        timed!(self, 37, self.inner.drop_queue(session))
    }
    async fn trim_queues(
        &self,
        max_len: u64,
        expire_before: Timestamp,
    ) -> StoreResult<Vec<(SessionId, i64)>> {
        timed!(self, 38, self.inner.trim_queues(max_len, expire_before))
    }
    async fn purge_messages(
        &self,
        history_before: Timestamp,
        dedupe_before: Timestamp,
    ) -> StoreResult<u64> {
        timed!(
            self,
            39,
            self.inner.purge_messages(history_before, dedupe_before)
        )
    }
}

#[async_trait]
impl PushStore for MeteredStore {
    async fn set_push(&self, user: UserId, session: SessionId, sealed: &[u8]) -> StoreResult<bool> {
        timed!(self, 40, self.inner.set_push(user, session, sealed))
    }
    async fn push_registrations(&self, user: UserId) -> StoreResult<Vec<(SessionId, Vec<u8>)>> {
        timed!(self, 41, self.inner.push_registrations(user))
    }
    async fn delete_push(&self, session: SessionId, sealed: &[u8]) -> StoreResult<bool> {
        timed!(self, 42, self.inner.delete_push(session, sealed))
    }
}

#[async_trait]
impl AvatarStore for MeteredStore {
    async fn put_avatar(
        &self,
        user: UserId,
        mime: &str,
        sealed: &[u8],
        etag: &str,
        at: Timestamp,
    ) -> StoreResult<()> {
        timed!(
            self,
            43,
            self.inner.put_avatar(user, mime, sealed, etag, at)
        )
    }
    async fn avatar(&self, user: UserId) -> StoreResult<Option<StoredAvatar>> {
        timed!(self, 44, self.inner.avatar(user))
    }
    async fn delete_avatar(&self, user: UserId) -> StoreResult<bool> {
        timed!(self, 45, self.inner.delete_avatar(user))
    }
}

#[async_trait]
impl ChatStore for MeteredStore {
    async fn create_chat(
        &self,
        kind: ChatKind,
        sealed_name: &[u8],
        owner: UserId,
        at: Timestamp,
    ) -> StoreResult<i64> {
        timed!(
            self,
            46,
            self.inner.create_chat(kind, sealed_name, owner, at)
        )
    }
    async fn chat(&self, id: i64) -> StoreResult<Option<ChatRecord>> {
        timed!(self, 47, self.inner.chat(id))
    }
    async fn chats_of(
        &self,
        user: UserId,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(Vec<(ChatRecord, ChatRole)>, u64)> {
        timed!(self, 48, self.inner.chats_of(user, offset, limit))
    }
    async fn member(&self, chat: i64, user: UserId) -> StoreResult<Option<ChatMember>> {
        timed!(self, 49, self.inner.member(chat, user))
    }
    async fn members(
        &self,
        chat: i64,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(Vec<ChatMember>, u64)> {
        timed!(self, 50, self.inner.members(chat, offset, limit))
    }
    async fn member_ids(&self, chat: i64) -> StoreResult<Vec<UserId>> {
        timed!(self, 51, self.inner.member_ids(chat))
    }
    async fn add_member(
        &self,
        chat: i64,
        user: UserId,
        role: ChatRole,
        at: Timestamp,
    ) -> StoreResult<bool> {
        timed!(self, 52, self.inner.add_member(chat, user, role, at))
    }
    async fn remove_member(&self, chat: i64, user: UserId) -> StoreResult<bool> {
        timed!(self, 53, self.inner.remove_member(chat, user))
    }
    async fn set_role(&self, chat: i64, user: UserId, role: ChatRole) -> StoreResult<bool> {
        timed!(self, 54, self.inner.set_role(chat, user, role))
    }
    async fn set_public(
        &self,
        chat: i64,
        public: bool,
        new_code: Option<(&[u8], &[u8])>,
    ) -> StoreResult<Option<Vec<u8>>> {
        timed!(self, 55, self.inner.set_public(chat, public, new_code))
    }
    async fn chat_by_code_index(&self, index: &[u8]) -> StoreResult<Option<ChatRecord>> {
        timed!(self, 56, self.inner.chat_by_code_index(index))
    }
    async fn set_slow_mode(&self, chat: i64, secs: u32) -> StoreResult<bool> {
        timed!(self, 57, self.inner.set_slow_mode(chat, secs))
    }
    async fn create_invite(&self, index: &[u8], invite: &InviteRecord) -> StoreResult<()> {
        timed!(self, 58, self.inner.create_invite(index, invite))
    }
    async fn invite(&self, index: &[u8]) -> StoreResult<Option<InviteRecord>> {
        timed!(self, 59, self.inner.invite(index))
    }
    async fn purge_invites(&self, now: Timestamp) -> StoreResult<u64> {
        timed!(self, 60, self.inner.purge_invites(now))
    }
    async fn share_chat(&self, a: UserId, b: UserId) -> StoreResult<bool> {
        timed!(self, 61, self.inner.share_chat(a, b))
    }
}

#[async_trait]
impl StoreHealth for MeteredStore {
    async fn ping(&self) -> StoreResult<()> {
        timed!(self, 62, self.inner.ping())
    }
}

#[async_trait]
impl SealedStore for MeteredStore {
    async fn sealed_rows(
        &self,
        table: SealedTable,
        after: Option<&RowKey>,
        limit: u32,
    ) -> StoreResult<Vec<SealedRow>> {
        timed!(self, 63, self.inner.sealed_rows(table, after, limit))
    }
    async fn replace_sealed(
        &self,
        table: SealedTable,
        updates: &[SealedUpdate],
    ) -> StoreResult<u64> {
        timed!(self, 64, self.inner.replace_sealed(table, updates))
    }
}
