//! Scheduled messages (`POST /schedule/message`, `GET /schedule`, `DELETE /schedule/{id}`) and
//! the scheduler every node runs.
//!
//! **Accepting.** A schedule is validated and authorized like `POST /messages/send` (the same
//! code: [`MessagesService::authorize`]), except that chat slow mode is not consulted (nothing is
//! posted now), and stored as a row of [`ScheduleStore`](crate::store::ScheduleStore).
//!
//! **Sending.** Every node runs [`ScheduleService::run`]: it claims due rows in the store (a
//! claim with a lease, see `store::schedule`), so exactly one node holds a row at a time, even
//! with several nodes on one MySQL database and whichever node accepted it. For each row it
//! checks again that the sender may send it (the account exists and is not locked, then
//! [`MessagesService::authorize`] with slow mode applied), sends it exactly as
//! `/messages/send` would ([`MessagesService::deliver`]) except that every device of the sender,
//! the scheduling one included, gets the `self` copy, and deletes the row. A row whose
//! authorization no longer holds is deleted unsent (discarded). A send refused by slow mode is
//! deferred until slow mode allows it.
//!
//! **Exactly once.** The send carries the `client_id` `@schedule:<schedule_id>` under the
//! scheduling session, so the per-device `client_id` check of the message store makes a second
//! send of the same row a duplicate that stores nothing: a node that dies after the send and
//! before the delete, whose lease then ends, leaves the next claimer a duplicate (the row is
//! then deleted). `@` is outside the `client_id` alphabet clients may use, so no client send can
//! take that key. The message store remembers `client_id`s for `QUEUE_TTL` after the send; the
//! next claim comes one [`LEASE`] after the failed one, far within it (unless `QUEUE_TTL` is set
//! below a minute, or every node stays down longer than `QUEUE_TTL`).
//!
//! **Revoked session.** A schedule belongs to the account, not to the device that made it: it
//! is sent after that session was revoked or logged out (the user lists and cancels pending
//! schedules from any device), under the revoked session's id, which only the `client_id` check
//! uses. A locked or erased account sends nothing (erasure deletes the rows).
//!
//! **Wake-ups.** A scheduler sleeps until the earliest due time it knows of, but at most
//! [`POLL_EVERY`] (rows made on other nodes), and is woken at once when this node accepts a
//! schedule due before its planned wake-up.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::messages::SlowMode;
use super::{Authenticated, Core, Error, MessagesService, Result, SendRequest};
use crate::metrics::ScheduleStep;
use crate::model::{Timestamp, UserId};
use crate::store::{Claim, ScheduleId, ScheduleOutcome, ScheduledMessage};

/// How far ahead a message may be scheduled.
pub(crate) const MAX_AHEAD: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long a claim holds a row: a node that dies holding one delays its send this long.
pub(crate) const LEASE: Duration = Duration::from_secs(60);
/// The longest a scheduler sleeps (it learns of rows other nodes made this often).
pub(crate) const POLL_EVERY: Duration = Duration::from_secs(1);
/// Rows claimed at once.
const BATCH: u64 = 32;
/// A claimed row is sent only while at least this much of its lease remains.
const LEASE_MARGIN: Duration = Duration::from_secs(10);
/// Prefix of the `client_id` a scheduled message is sent with (`@` is not in the client
/// alphabet).
const CLIENT_ID_PREFIX: &str = "@schedule:";

/// A message to schedule.
#[derive(Clone, Debug)]
pub(crate) struct ScheduleRequest {
    /// The message, as `/messages/send` takes it (`client_id`: the schedule's idempotency key).
    pub send: SendRequest,
    /// When to send it.
    pub when: Timestamp,
}

/// One pending scheduled message, as its owner sees it.
#[derive(Debug, Serialize)]
pub(crate) struct ScheduleView {
    /// Its id.
    pub schedule_id: ScheduleId,
    /// DM recipient.
    pub target_id: Option<UserId>,
    /// Chat.
    pub chat_id: Option<i64>,
    /// When it is due.
    pub when: Timestamp,
    /// When it was scheduled.
    pub created_at: Timestamp,
    /// The payload (the owner's own ciphertext).
    pub data: String,
    /// The signature, if any.
    pub signature: Option<String>,
    /// The idempotency key it was scheduled with, if any.
    pub client_id: Option<String>,
}

impl From<ScheduledMessage> for ScheduleView {
    fn from(m: ScheduledMessage) -> Self {
        Self {
            schedule_id: m.id,
            target_id: m.target,
            chat_id: m.chat_id,
            when: m.due_at,
            created_at: m.created_at,
            data: m.payload,
            signature: m.signature,
            client_id: m.client_id,
        }
    }
}

/// One page of the caller's pending schedules (docs/protocol.md §1.4 page mode).
#[derive(Debug, Serialize)]
pub(crate) struct SchedulePage {
    /// Due soonest first.
    pub items: Vec<ScheduleView>,
    /// Page.
    pub page: u64,
    /// Page size.
    pub per_page: u64,
    /// Pending schedules in all.
    pub total: u64,
    /// Page count.
    pub pages: u64,
}

/// What the scheduler did with one claimed row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Sent,
    Discarded,
    Deferred,
    /// An earlier claim sent it and died before deleting the row: only the row was deleted.
    AlreadySent,
}

/// This node's planned wake-up, and the bell that ends it early.
#[derive(Debug, Default)]
struct Wake {
    bell: Notify,
    /// The scheduler's planned wake-up (Unix ms).
    at: AtomicI64,
}

/// Scheduled messages: accepting, listing, cancelling, and the scheduler.
#[derive(Clone, Debug)]
pub(crate) struct ScheduleService {
    core: Arc<Core>,
    messages: MessagesService,
    wake: Arc<Wake>,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl ScheduleService {
    pub(crate) fn new(core: Arc<Core>, messages: MessagesService) -> Self {
        Self {
            core,
            messages,
            wake: Arc::default(),
        }
    }

    /// `POST /schedule/message`: validates, authorizes as a send would now, stores. A repeated
    /// `client_id` of the same device (while its schedule is pending) returns the first id.
    pub(crate) async fn schedule(
        &self,
        auth: &Authenticated,
        req: ScheduleRequest,
    ) -> Result<ScheduleId> {
        let now = Timestamp::now();
        if req.when <= now {
            return Err(Error::field("when", "must be in the future"));
        }
        if req.when.millis() > now.millis().saturating_add(millis(MAX_AHEAD)) {
            return Err(Error::field("when", "must be at most 30 days ahead"));
        }
        let send = req.send;
        send.check()?;
        self.messages
            .authorize(auth.user, send.target, send.chat_id, SlowMode::Skip)
            .await?;
        let row = ScheduledMessage {
            id: ScheduleId::new(),
            owner: auth.user,
            session: auth.session,
            target: send.target,
            chat_id: send.chat_id,
            payload: send.payload,
            signature: send.signature,
            client_id: send.client_id,
            due_at: req.when,
            created_at: now,
        };
        let max = self.core.config.messages.schedule_max_pending;
        match self.core.store.create_schedule(&row, max).await? {
            ScheduleOutcome::Created => {
                self.core.metrics.scheduled(ScheduleStep::Scheduled);
                if row.due_at.millis() < self.wake.at.load(Ordering::Relaxed) {
                    self.wake.bell.notify_one();
                }
                Ok(row.id)
            }
            ScheduleOutcome::Duplicate(first) => Ok(first),
            ScheduleOutcome::Full(earliest) => {
                let left = earliest.millis().saturating_sub(now.millis()).max(1);
                Err(Error::ScheduleLimit {
                    retry_after: u64::try_from(left).unwrap_or(1).div_ceil(1000),
                })
            }
            // Erased while the request ran: its token is as good as gone.
            ScheduleOutcome::NoUser => Err(Error::InvalidToken),
        }
    }

    /// `GET /schedule`: the caller's pending schedules, due soonest first.
    pub(crate) async fn list(
        &self,
        auth: &Authenticated,
        page: u64,
        per_page: u64,
    ) -> Result<SchedulePage> {
        let offset = page.saturating_sub(1).saturating_mul(per_page);
        let (rows, total) = self
            .core
            .store
            .schedules_of(auth.user, offset, per_page)
            .await?;
        Ok(SchedulePage {
            items: rows.into_iter().map(ScheduleView::from).collect(),
            page,
            per_page,
            total,
            pages: total.div_ceil(per_page.max(1)),
        })
    }

    /// `DELETE /schedule/{id}`: cancels one of the caller's pending schedules. Someone else's,
    /// an unknown one, and one already sent (or being sent right now) are `schedule_not_found`.
    pub(crate) async fn cancel(&self, auth: &Authenticated, id: ScheduleId) -> Result<()> {
        let now = Timestamp::now();
        if self.core.store.cancel_schedule(auth.user, id, now).await? {
            Ok(())
        } else {
            Err(Error::ScheduleNotFound)
        }
    }

    /// The scheduler of this node, until `cancel` (see the module docs).
    pub(crate) async fn run(self, cancel: CancellationToken) {
        loop {
            if cancel.is_cancelled() {
                return;
            }
            let now = Timestamp::now();
            match self.tick(now).await {
                // A full batch: more may be due.
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "scheduled messages not claimed; asked again shortly")
                }
            }
            let poll = now.millis().saturating_add(millis(POLL_EVERY));
            // Announced before the store is asked: a schedule accepted meanwhile that is due
            // sooner rings the bell (the permit is kept until the select below).
            self.wake.at.store(poll, Ordering::Relaxed);
            let next = match self.core.store.next_due_after(now).await {
                Ok(Some(due)) => due.millis().min(poll),
                _ => poll,
            };
            self.wake.at.store(next, Ordering::Relaxed);
            let sleep = Duration::from_millis(
                u64::try_from(next.saturating_sub(Timestamp::now().millis())).unwrap_or(0),
            );
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(sleep) => {}
                _ = self.wake.bell.notified() => {}
            }
        }
    }

    /// Claims the rows due at `now` and handles each; true when the batch was full.
    async fn tick(&self, now: Timestamp) -> Result<bool> {
        let claim = Claim {
            token: rand::random(),
            now,
            until: Timestamp::from_millis(now.millis().saturating_add(millis(LEASE))),
        };
        let rows = self.core.store.claim_due(claim, BATCH).await?;
        let full = rows.len() as u64 >= BATCH;
        for row in rows {
            // Only while the claim still holds, with a margin for the send itself: past its
            // end a cancel is accepted and another node may claim the row, so the rest of the
            // batch is left to be claimed again.
            if Timestamp::now()
                .millis()
                .saturating_add(millis(LEASE_MARGIN))
                >= claim.until.millis()
            {
                break;
            }
            // A failure leaves the row claimed: it is claimed again once the lease ends.
            match self.send_due(row, claim.token).await {
                Ok(Fate::Sent) => self.core.metrics.scheduled(ScheduleStep::Sent),
                Ok(Fate::Discarded) => {
                    self.core.metrics.scheduled(ScheduleStep::Discarded);
                    // No ids or uids in the log: the reason is enough to count and debug.
                    tracing::debug!(
                        "scheduled message discarded: the sender may no longer send it"
                    );
                }
                Ok(Fate::Deferred | Fate::AlreadySent) => {}
                Err(e) => e.log("sending a scheduled message"),
            }
        }
        Ok(full)
    }

    /// Checks, sends and deletes one claimed row.
    async fn send_due(&self, row: ScheduledMessage, token: u64) -> Result<Fate> {
        let store = &self.core.store;
        // The sender must still exist and be allowed to log in.
        if store.user_locked(row.owner).await? != Some(false) {
            store.finish_schedule(row.id, token).await?;
            return Ok(Fate::Discarded);
        }
        let authorized = match self
            .messages
            .authorize(row.owner, row.target, row.chat_id, SlowMode::Apply)
            .await
        {
            Ok(a) => a,
            Err(Error::SlowMode { retry_after }) => {
                let at = Timestamp::now().millis().saturating_add(
                    i64::try_from(retry_after.saturating_mul(1000)).unwrap_or(i64::MAX),
                );
                store
                    .defer_schedule(row.id, token, Timestamp::from_millis(at))
                    .await?;
                return Ok(Fate::Deferred);
            }
            Err(
                Error::NotAContact
                | Error::NotAMember
                | Error::Forbidden
                | Error::InvalidTarget
                | Error::Validation(_),
            ) => {
                store.finish_schedule(row.id, token).await?;
                return Ok(Fate::Discarded);
            }
            Err(e) => return Err(e),
        };
        let auth = Authenticated {
            user: row.owner,
            session: row.session,
        };
        let req = SendRequest {
            target: row.target,
            chat_id: row.chat_id,
            payload: row.payload,
            client_id: Some(format!("{CLIENT_ID_PREFIX}{}", row.id)),
            signature: row.signature,
        };
        let out = self.messages.deliver(&auth, req, authorized, true).await?;
        store.finish_schedule(row.id, token).await?;
        // A duplicate was sent by an earlier claim that died before its delete.
        Ok(if out.duplicate {
            Fate::AlreadySent
        } else {
            Fate::Sent
        })
    }
}

/// Starts this node's scheduler; it stops with `cancel`.
pub(crate) fn spawn(
    service: ScheduleService,
    tasks: &TaskTracker,
    cancel: CancellationToken,
    rt: &tokio::runtime::Handle,
) {
    tasks.spawn_on(service.run(cancel), rt);
}
