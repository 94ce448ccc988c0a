//! Call timers: ring timeout, reconnect grace and the watch of the engaged devices' sockets,
//! as deadlines in a set shared by every node ([`Ephemeral::schedule`]), swept by each.
//!
//! [`Ephemeral::schedule`]: crate::ephemeral::Ephemeral::schedule

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{key, lost_key, CallRecord, CallsService, RingEnd};
use crate::model::{SessionId, UserId};
use crate::service::{Error, Result};

/// The deadline set of every call timer.
const DEADLINES: &str = "call:deadlines";
/// How often a live call checks that its engaged devices still have a socket on a live node
/// (one that died took its sockets without a word).
pub(super) const WATCH_EVERY: Duration = Duration::from_secs(10);
/// A timer that failed on the shared state is due again after this long.
const DEADLINE_RETRY: Duration = Duration::from_secs(1);
/// Deadlines one sweep takes at most.
const SWEEP_BATCH: usize = 64;

/// A call timer in the shared deadline set.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub(super) enum Deadline {
    /// The ring timeout.
    Ring { id: String },
    /// An engaged device lost its socket; `token` tells its marker from a newer one.
    Lost {
        id: String,
        user: UserId,
        session: SessionId,
        token: String,
    },
    /// The periodic check of the engaged devices' sockets.
    Watch { id: String },
}

impl CallsService {
    /// Puts a call timer in the shared deadline set, due `after` from now.
    pub(super) async fn schedule(&self, deadline: &Deadline, after: Duration) -> Result<()> {
        let raw = serde_json::to_vec(deadline)
            .map_err(|e| Error::Internal(format!("call deadline: {e}")))?;
        let at = crate::model::Timestamp::now()
            .millis()
            .saturating_add(i64::try_from(after.as_millis()).unwrap_or(i64::MAX / 2));
        self.core.ephemeral.schedule(DEADLINES, &raw, at).await?;
        Ok(())
    }

    /// Runs the call timers that are due, on whichever node takes them first (every node
    /// sweeps, see the server's background tasks); returns how many ran.
    pub(crate) async fn sweep(&self) -> usize {
        let now = crate::model::Timestamp::now().millis();
        let due = match self
            .core
            .ephemeral
            .take_due(DEADLINES, now, SWEEP_BATCH)
            .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::debug!(error = %e, "call deadlines not swept");
                return 0;
            }
        };
        let n = due.len();
        for raw in due {
            match serde_json::from_slice::<Deadline>(&raw) {
                Ok(d) => self.run_deadline(d).await,
                Err(e) => tracing::warn!(error = %e, "unreadable call deadline dropped"),
            }
        }
        n
    }

    /// The record of call `id`: `Ok(None)` once it ended.
    async fn record(&self, id: &str) -> Result<Option<CallRecord>> {
        let Some(raw) = self.core.ephemeral.get(&key("rec", id)).await? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice(&raw).ok())
    }

    /// Runs one due timer. One that fails on the shared state is put back, due again shortly:
    /// taking it removed it, and a lost ring timeout would leave both users busy.
    async fn run_deadline(&self, d: Deadline) {
        if let Err(e) = self.try_deadline(&d).await {
            e.log("call timer");
            if let Err(e) = self.schedule(&d, DEADLINE_RETRY).await {
                e.log("call timer retry");
            }
        }
    }

    async fn try_deadline(&self, d: &Deadline) -> Result<()> {
        match d {
            Deadline::Ring { id } => {
                if let Some(rec) = self.record(id).await? {
                    self.end_ringing(&rec, RingEnd::TimedOut).await?;
                }
                Ok(())
            }
            Deadline::Lost {
                id,
                user,
                session,
                token,
            } => {
                // A socket of the device that is known (here or on a live node) means it is
                // back, whatever the marker says (its reconnect may have raced the marker).
                if self.core.has_socket(*user, *session) {
                    let _ = self
                        .core
                        .ephemeral
                        .delete_if(&lost_key(id, *session), token.as_bytes())
                        .await;
                    return Ok(());
                }
                // Still gone (a reconnect deletes the marker)?
                let marker = lost_key(id, *session);
                if !self
                    .core
                    .ephemeral
                    .delete_if(&marker, token.as_bytes())
                    .await?
                {
                    return Ok(());
                }
                if let Some(rec) = self.record(id).await? {
                    self.end_for(*user, &rec, "connection_lost").await;
                }
                Ok(())
            }
            Deadline::Watch { id } => {
                let Some(rec) = self.record(id).await? else {
                    return Ok(());
                };
                self.watch(&rec).await;
                self.schedule(&Deadline::Watch { id: id.clone() }, WATCH_EVERY)
                    .await
            }
        }
    }

    /// An engaged device with no socket on any live node (its node died, so no disconnect was
    /// seen) gets the reconnect grace, as if its socket had closed.
    async fn watch(&self, rec: &CallRecord) {
        let Ok(engaged) = self.engaged_callee(&rec.id).await else {
            return;
        };
        let mut devices = vec![(rec.caller, rec.caller_session)];
        devices.extend(engaged.map(|s| (rec.callee, s)));
        for (user, session) in devices {
            if self.core.has_socket(user, session) || !self.core.knows_every_socket() {
                continue;
            }
            let marker = lost_key(&rec.id, session);
            if matches!(self.core.ephemeral.get(&marker).await, Ok(Some(_))) {
                continue;
            }
            self.lost(rec, user, session).await;
        }
    }

    /// Marks an engaged device as gone and schedules the end of the call after the grace
    /// period (cancelled when it reconnects).
    pub(super) async fn lost(&self, rec: &CallRecord, user: UserId, session: SessionId) {
        let marker = lost_key(&rec.id, session);
        let token = uuid::Uuid::now_v7().simple().to_string();
        let grace = Duration::from_secs(self.core.config.realtime.call_reconnect_grace);
        if self
            .core
            .ephemeral
            .set(&marker, token.as_bytes(), grace + Duration::from_secs(60))
            .await
            .is_err()
        {
            return;
        }
        let deadline = Deadline::Lost {
            id: rec.id.clone(),
            user,
            session,
            token,
        };
        if let Err(e) = self.schedule(&deadline, grace).await {
            e.log("call reconnect grace");
        }
    }
}
