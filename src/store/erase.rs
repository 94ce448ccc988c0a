//! [`EraseStore`]: erasing one account for good, and the reads of an account export that the
//! other store traits do not offer.

use std::fmt;

use async_trait::async_trait;

use super::{Contact, StoreResult};
use crate::model::{ChatKind, ChatRole, Session, SessionId, UserId};

/// What became of one chat of an erased user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErasedMembership {
    /// The chat.
    pub chat_id: i64,
    /// Its kind.
    pub kind: ChatKind,
    /// The erased user's role in it.
    pub role: ChatRole,
    /// The member who became the owner: the erased user owned the chat and others remain.
    pub new_owner: Option<UserId>,
    /// No other member remained: the chat was deleted, with its invites.
    pub deleted: bool,
}

/// What erasing an account removed, for the service to tell the others.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErasedAccount {
    /// The sessions that were active, ascending: their sockets must close.
    pub active_sessions: Vec<SessionId>,
    /// Every session deleted (active or revoked), ascending.
    pub sessions: Vec<SessionId>,
    /// The relationships the user had, as they were: the accepted ones, then the pending ones,
    /// each by the other user's uid.
    pub contacts: Vec<Contact>,
    /// The chats the user was a member of, by id.
    pub chats: Vec<ErasedMembership>,
}

/// Erasing an account, and the reads of its export.
///
/// Persists and queries only, like every store trait; the one rule it applies is the one an
/// erase cannot leave to a second step without a window in which a chat has no owner: who
/// inherits an owned chat.
#[async_trait]
pub trait EraseStore: Send + Sync + fmt::Debug {
    /// Erases `user` for good, atomically (one transaction on the SQL backends); `None`, and
    /// nothing changed, when there is no such user. Deleted:
    ///
    /// - the user row, so its phone blind index is free for a new registration; the secret-key
    ///   backup, the settings, the avatar;
    /// - every session of the user, active or revoked, with its device token, its push
    ///   registration, its queue and its seq counter;
    /// - every contact relationship of the user, accepted or pending, in either direction;
    /// - every chat membership. A chat the user owned passes to its oldest admin, else to its
    ///   oldest member (by `joined_at`, then uid): `owner` and the member's role become the
    ///   owner's. A chat left without members is deleted with its invites and its permanent
    ///   code;
    /// - every read marker of the user;
    /// - the temporary invites the user created;
    /// - the user's pending scheduled messages.
    ///
    /// The uid is retired: [`UserStore::create_user`](super::UserStore::create_user) answers
    /// `Conflict("uid")` for it from then on. Messages (the user's and those sent to them) and
    /// reactions stay: they belong to the conversations of the others too.
    async fn erase_user(&self, user: UserId) -> StoreResult<Option<ErasedAccount>>;

    /// The relationships of `user`, accepted or pending, in either direction: the accepted
    /// ones first, then the pending ones, each by the other user's uid; at most `limit`, and
    /// how many there are in all.
    async fn relationships_of(&self, user: UserId, limit: u64) -> StoreResult<(Vec<Contact>, u64)>;

    /// The sessions of `user`, active or revoked, newest first (id descending): at most
    /// `limit`, and how many there are in all.
    async fn sessions_ever(&self, user: UserId, limit: u64) -> StoreResult<(Vec<Session>, u64)>;

    /// How many entries (messages, events, receipts, gaps) are queued for `sessions` in all
    /// (a session listed twice counts once).
    async fn queued_entries(&self, sessions: &[SessionId]) -> StoreResult<u64>;
}
