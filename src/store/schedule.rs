//! [`ScheduleStore`]: messages scheduled for later (`POST /schedule/message`), and the claims
//! by which exactly one node sends each.
//!
//! A scheduled message is a row until it is sent, discarded or cancelled. Every node runs a
//! scheduler that *claims* due rows: a claim writes a fresh claim token and a lease end
//! (`claim_until`) on rows that are due and free (never claimed, or whose lease has ended), in
//! one atomic step, so two nodes never hold the same row at once. The claimer sends, then
//! deletes the row ([`ScheduleStore::finish_schedule`]). A node that dies holding a claim leaves
//! the row to be claimed again once the lease ends; the send is idempotent (the service sends
//! under a `client_id` derived from the schedule id), so a node that died between the send and
//! the delete does not make a second message.
//!
//! Times (`now`, lease ends) are the callers' clocks: nodes sharing a store are expected to keep
//! their clocks synchronized, as for every other expiry.
//!
//! Like message payloads, the payload is the client's opaque (end-to-end encrypted) text and is
//! stored as is; the uids and the chat id are stored as they are in `messages`.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use serde::{Serialize, Serializer};

use super::StoreResult;
use crate::model::{SessionId, Timestamp, UserId};

/// A scheduled message's id: a UUIDv7, written as 32 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScheduleId(u128);

impl ScheduleId {
    /// A new time-ordered id.
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7().as_u128())
    }

    /// From the 128-bit value.
    pub fn from_u128(v: u128) -> Self {
        Self(v)
    }

    /// The 128-bit value.
    pub fn as_u128(self) -> u128 {
        self.0
    }

    /// The 16 big-endian bytes (the SQL stores' key).
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// From 16 big-endian bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let arr: [u8; 16] = b.try_into().ok()?;
        Some(Self(u128::from_be_bytes(arr)))
    }
}

impl Default for ScheduleId {
    fn default() -> Self {
        Self::new()
    }
}

impl FromStr for ScheduleId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(());
        }
        u128::from_str_radix(s, 16).map(Self).map_err(|_| ())
    }
}

impl fmt::Display for ScheduleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for ScheduleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScheduleId({self})")
    }
}

impl Serialize for ScheduleId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One scheduled message.
#[derive(Clone, PartialEq, Eq)]
pub struct ScheduledMessage {
    /// Its id.
    pub id: ScheduleId,
    /// Who scheduled it (the sender).
    pub owner: UserId,
    /// The device (session) that scheduled it: the message is sent as a send of this device.
    pub session: SessionId,
    /// DM recipient (exactly one of `target` and `chat_id`).
    pub target: Option<UserId>,
    /// Chat.
    pub chat_id: Option<i64>,
    /// The client's opaque payload.
    pub payload: String,
    /// The client's opaque signature.
    pub signature: Option<String>,
    /// The client's idempotency key (unique per session among pending schedules).
    pub client_id: Option<String>,
    /// When to send.
    pub due_at: Timestamp,
    /// When it was scheduled.
    pub created_at: Timestamp,
}

/// Payloads are never printed (they are the client's, and may be 1 MiB).
impl fmt::Debug for ScheduledMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScheduledMessage")
            .field("id", &self.id)
            .field("session", &self.session)
            .field("chat", &self.chat_id.is_some())
            .field("payload_bytes", &self.payload.len())
            .field("due_at", &self.due_at)
            .finish_non_exhaustive()
    }
}

/// What [`ScheduleStore::create_schedule`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleOutcome {
    /// Stored.
    Created,
    /// The session already has a pending schedule with this `client_id`: its id; nothing
    /// stored.
    Duplicate(ScheduleId),
    /// The owner already has `max_pending` pending schedules: nothing stored. Carries the
    /// earliest `due_at` among them (when a slot frees up).
    Full(Timestamp),
    /// The owner does not exist (erased meanwhile): nothing stored.
    NoUser,
}

/// A claim on due rows: who holds them and until when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    /// A token unique to this claim (random); later calls on the rows present it.
    pub token: u64,
    /// Due rows are those with `due_at <= now`; a claim is free when its lease ended before
    /// or at `now`.
    pub now: Timestamp,
    /// The lease end written on the claimed rows.
    pub until: Timestamp,
}

/// Scheduled messages and their claims (see the module docs).
#[async_trait]
pub trait ScheduleStore: Send + Sync + fmt::Debug {
    /// Stores `s` unless `s.session` has a pending schedule with the same `client_id`
    /// (`Duplicate`) or `s.owner` already has `max_pending` pending ones (`Full`), atomically
    /// (two concurrent calls of one owner cannot both pass the bound), and only while the
    /// owner exists (`NoUser`). `Conflict("schedule_id")` when the id is taken.
    async fn create_schedule(
        &self,
        s: &ScheduledMessage,
        max_pending: u64,
    ) -> StoreResult<ScheduleOutcome>;

    /// The pending schedules of `owner` by `due_at`, then id: one page and the total.
    async fn schedules_of(
        &self,
        owner: UserId,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(Vec<ScheduledMessage>, u64)>;

    /// Deletes `owner`'s schedule `id` unless a claim on it is live at `now` (it is being
    /// sent); false when there is no such schedule of `owner`, or it is being sent.
    async fn cancel_schedule(
        &self,
        owner: UserId,
        id: ScheduleId,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// Claims at most `limit` rows that are due at `claim.now` and free (never claimed, or
    /// their lease ended at or before `claim.now`), earliest `due_at` first, and returns them.
    /// Atomic: a row is returned to one claim only until its lease ends.
    async fn claim_due(&self, claim: Claim, limit: u64) -> StoreResult<Vec<ScheduledMessage>>;

    /// Deletes row `id` if it is still held by the claim `token` (sent, or discarded); false
    /// otherwise.
    async fn finish_schedule(&self, id: ScheduleId, token: u64) -> StoreResult<bool>;

    /// Gives row `id` up if it is still held by the claim `token`, and makes it claimable again
    /// from `not_before` on (a send refused for now, e.g. by chat slow mode). False when the
    /// claim is gone.
    async fn defer_schedule(
        &self,
        id: ScheduleId,
        token: u64,
        not_before: Timestamp,
    ) -> StoreResult<bool>;

    /// The earliest `due_at` after `after` among all rows (a scheduler sleeps until then).
    async fn next_due_after(&self, after: Timestamp) -> StoreResult<Option<Timestamp>>;
}
