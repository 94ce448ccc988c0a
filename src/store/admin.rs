//! What the operator tools (`melo::admin`) need from a store: account locks, the revocations
//! they write for running servers to notice, every session of a user, counts, and single-use
//! registration invites.
//!
//! Operator tools run in a process of their own on the same database as the servers. A
//! revocation they write is *noted* in the same transaction (a row of `revocation_notes`: a note
//! id and a uid, nothing else), and every server polls the notes after the last one it saw (one
//! indexed read a second per node, whatever the number of users; see
//! `service::revocations`), so sockets of a revoked session close within about a second on every
//! node, with one node or several.

use std::fmt;

use async_trait::async_trait;
use serde::Serialize;

use super::StoreResult;
use crate::model::{Session, SessionId, Timestamp, UserId};

/// Account locks, noted revocations, session listings and counts.
#[async_trait]
pub trait AdminStore: Send + Sync + fmt::Debug {
    /// Whether `user` is locked; `None` when the user does not exist.
    async fn user_locked(&self, user: UserId) -> StoreResult<Option<bool>>;
    /// In one write: locks `user`, revokes every active session (deleting their device tokens
    /// and push registrations, as [`SessionStore::revoke_sessions_except`](super::SessionStore)
    /// does) and notes the revocation at `at`. The revoked ids, ascending; `None` (and nothing
    /// written) when the user does not exist. Locking a locked user revokes what is active.
    async fn lock_user(&self, user: UserId, at: Timestamp) -> StoreResult<Option<Vec<SessionId>>>;
    /// Unlocks `user` (sessions stay revoked); false when the user does not exist.
    async fn unlock_user(&self, user: UserId) -> StoreResult<bool>;
    /// In one write: revokes the active session `only` of `user`, or every active one with
    /// `None` (deleting device tokens and push registrations), and notes the revocation at `at`
    /// when anything was revoked. The revoked ids, ascending.
    async fn revoke_noted(
        &self,
        user: UserId,
        only: Option<SessionId>,
        at: Timestamp,
    ) -> StoreResult<Vec<SessionId>>;
    /// Sessions of `user`, active and revoked, newest (highest id) first, at most `limit`.
    async fn all_sessions_of(&self, user: UserId, limit: u64) -> StoreResult<Vec<Session>>;
    /// Revocation notes with an id above `after`, ascending, at most `limit`: (note id, user).
    async fn revocation_notes(&self, after: i64, limit: u64) -> StoreResult<Vec<(i64, UserId)>>;
    /// The highest id among the notes kept (0 when none). Ids are never reused: a poller that
    /// starts from here sees every note written later.
    async fn last_revocation_note(&self) -> StoreResult<i64>;
    /// Deletes the notes written before `before`; returns how many.
    async fn purge_revocation_notes(&self, before: Timestamp) -> StoreResult<u64>;
    /// Row counts (see [`StoreCounts`]); registration invites are counted as open at `now`.
    async fn counts(&self, now: Timestamp) -> StoreResult<StoreCounts>;
}

/// Single-use registration invites, stored under the keyed blind index of their code only.
#[async_trait]
pub trait RegistrationInviteStore: Send + Sync + fmt::Debug {
    /// Stores an unused invite; `Conflict("invite")` when the index is taken.
    async fn create_registration_invite(
        &self,
        index: &[u8],
        expires_at: Timestamp,
    ) -> StoreResult<()>;
    /// Marks the invite used if it exists, is unused and expires after `now`: true for exactly
    /// one of any number of concurrent callers.
    async fn use_registration_invite(&self, index: &[u8], now: Timestamp) -> StoreResult<bool>;
    /// Marks a used invite unused again (the registration that used it failed); false when
    /// there is no used invite with this index.
    async fn restore_registration_invite(&self, index: &[u8]) -> StoreResult<bool>;
    /// Deletes the invites with `expires_at <= now`, used or not; returns how many.
    async fn purge_registration_invites(&self, now: Timestamp) -> StoreResult<u64>;
}

/// What [`AdminStore::counts`] counts: numbers only, no identifier. Each is a count of rows (an
/// index scan on the SQL stores: run it on demand, not in a loop).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StoreCounts {
    /// Registered users.
    pub users: u64,
    /// Locked users.
    pub locked_users: u64,
    /// Active sessions (logged-in devices).
    pub active_sessions: u64,
    /// Group chats.
    pub chats: u64,
    /// Channels.
    pub channels: u64,
    /// Memberships of chats and channels.
    pub chat_members: u64,
    /// Accepted contact relationships (one per pair).
    pub contacts: u64,
    /// Pending contact requests.
    pub contact_requests: u64,
    /// Messages in history.
    pub messages: u64,
    /// Entries waiting in device queues (messages, receipts, events, gaps).
    pub queued_entries: u64,
    /// Push registrations.
    pub push_registrations: u64,
    /// Avatars.
    pub avatars: u64,
    /// Registration invites neither used nor expired.
    pub open_registration_invites: u64,
}
