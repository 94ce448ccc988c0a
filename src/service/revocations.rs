//! Revocations that operator tools write straight to the store (`melo::admin`: lock, revoke),
//! seen by running servers.
//!
//! Such a tool is a separate process: it cannot reach a server's caches, and it must not join
//! the cluster bus (nodes would take it for a node that later went silent). So it notes each
//! revocation in the store, in the transaction that makes it (`AdminStore::revoke_noted`,
//! `AdminStore::lock_user`), and every node polls the notes after the last one it handled,
//! every [`POLL_EVERY`]: for each noted user it forgets the cached session list and closes its
//! own sockets whose session is no longer active (close 1008 `token_revoked`).
//!
//! Why a poll of notes and not a session-cache TTL on one node: a TTL of `T` costs every
//! connected user one store read per `T` (10 000 users and `T` = 1.5 s: ~6 700 reads a second,
//! forever, to catch a revocation that happens a few times a month), while the poll costs one
//! indexed range read a second per node whatever the number of users, and closes sockets within
//! about a second. HTTP requests read their session from the store anyway: a revoked token
//! fails at once. With several nodes the session caches also expire after `CACHE_TTL` and
//! sockets re-check their session every `SESSION_RECHECK`, so a revocation written without a
//! note (another tool) still closes sockets within about two seconds there.
//!
//! Note ids only grow, but on MySQL two transactions may commit their notes out of id order:
//! a missing id below handled ones is waited for [`GAP_WAIT`] (far longer than a transaction
//! takes to commit) before it is skipped. Notes are deleted a day after they were written.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Core, Result};
use crate::model::{SessionId, UserId};

/// How often a node reads the notes.
pub(crate) const POLL_EVERY: Duration = Duration::from_secs(1);
/// How long a missing note id below handled ones is waited for.
const GAP_WAIT: Duration = Duration::from_secs(10);
/// Notes read per poll.
const PAGE: u64 = 256;

/// Where a node is in the notes.
#[derive(Debug)]
pub(crate) struct NoteCursor {
    /// Every note up to this id is handled (or was waited for long enough).
    upto: i64,
    /// Handled notes above `upto`, waiting for the ids below them.
    handled: BTreeSet<i64>,
    /// Since when the id after `upto` has been missing while a later one was handled.
    gap_since: Option<Instant>,
}

impl NoteCursor {
    /// A cursor that starts after note `last` (what the store held when this node started:
    /// it had no socket and no cached session then).
    pub(crate) fn new(last: i64) -> Self {
        Self {
            upto: last,
            handled: BTreeSet::new(),
            gap_since: None,
        }
    }

    /// The notes of a page read after [`Self::after`] not handled yet.
    fn pending<'a>(
        &'a self,
        page: &'a [(i64, UserId)],
    ) -> impl Iterator<Item = (i64, UserId)> + 'a {
        page.iter()
            .copied()
            .filter(|(id, _)| *id > self.upto && !self.handled.contains(id))
    }

    /// Read notes with an id above this.
    fn after(&self) -> i64 {
        self.upto
    }

    /// Note `id` is handled.
    fn done(&mut self, id: i64) {
        if id > self.upto {
            self.handled.insert(id);
        }
    }

    /// Moves past every handled id that follows `upto`, and past a missing one waited for
    /// [`GAP_WAIT`].
    fn advance(&mut self, now: Instant) {
        loop {
            while self.handled.remove(&(self.upto + 1)) {
                self.upto += 1;
            }
            let Some(&first) = self.handled.first() else {
                self.gap_since = None;
                return;
            };
            let since = *self.gap_since.get_or_insert(now);
            if now.duration_since(since) < GAP_WAIT {
                return;
            }
            // Never committed (rolled back), or purged before this node saw it.
            self.upto = first - 1;
            self.gap_since = None;
        }
    }
}

impl Core {
    /// One poll of the notes: handles each new one (see the module docs). `cursor` is set by
    /// the first successful call.
    pub(crate) async fn poll_revocations(&self, cursor: &mut Option<NoteCursor>) -> Result<()> {
        let Some(c) = cursor else {
            *cursor = Some(NoteCursor::new(self.store.last_revocation_note().await?));
            return Ok(());
        };
        let page = self.store.revocation_notes(c.after(), PAGE).await?;
        let pending: Vec<(i64, UserId)> = c.pending(&page).collect();
        for (id, user) in pending {
            self.close_revoked(user).await?;
            c.done(id);
        }
        c.advance(Instant::now());
        Ok(())
    }

    /// Forgets `user`'s cached sessions and closes this node's sockets of theirs whose session
    /// is no longer active.
    pub(crate) async fn close_revoked(&self, user: UserId) -> Result<()> {
        self.forget_sessions(user);
        let here = self.hub.sessions_of(user);
        if here.is_empty() {
            return Ok(());
        }
        let alive = self.session_ids(user).await?;
        let mut closed: Vec<SessionId> = here.into_iter().filter(|s| !alive.contains(s)).collect();
        closed.sort();
        closed.dedup();
        for session in closed {
            tracing::debug!(user_id = %user, session_id = %session, "session revoked by an operator; socket closed");
            self.hub.close_session(user, session, 1008, "token_revoked");
        }
        Ok(())
    }
}

/// Starts this node's poll of the notes; it stops with `cancel`.
pub(crate) fn spawn(
    core: Arc<Core>,
    tasks: &TaskTracker,
    cancel: CancellationToken,
    rt: &tokio::runtime::Handle,
) {
    tasks.spawn_on(
        async move {
            let mut cursor = None;
            let mut tick = tokio::time::interval(POLL_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {
                        if let Err(e) = core.poll_revocations(&mut cursor).await {
                            // Once a second while the store is down: the requests that fail
                            // meanwhile say so.
                            tracing::debug!(error = %e, "revocation notes not read; asked again shortly");
                        }
                    }
                }
            }
        },
        rt,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(n: u32) -> UserId {
        UserId::new(n).expect("uid")
    }

    fn handle(c: &mut NoteCursor, page: &[(i64, UserId)], now: Instant) -> Vec<i64> {
        let ids: Vec<i64> = c.pending(page).map(|(id, _)| id).collect();
        for id in &ids {
            c.done(*id);
        }
        c.advance(now);
        ids
    }

    #[test]
    fn the_cursor_follows_contiguous_notes() {
        let t0 = Instant::now();
        let mut c = NoteCursor::new(5);
        assert_eq!(handle(&mut c, &[], t0), Vec::<i64>::new());
        assert_eq!(c.after(), 5);
        assert_eq!(
            handle(&mut c, &[(6, u(11_111_111)), (7, u(22_222_222))], t0),
            vec![6, 7]
        );
        assert_eq!(c.after(), 7);
        // Notes at or below the cursor are never handled again.
        assert_eq!(
            handle(&mut c, &[(7, u(22_222_222)), (8, u(11_111_111))], t0),
            vec![8]
        );
        assert_eq!(c.after(), 8);
    }

    #[test]
    fn a_missing_id_is_waited_for_then_skipped() {
        let t0 = Instant::now();
        let mut c = NoteCursor::new(10);
        // 11 is not committed yet; 12 is.
        assert_eq!(handle(&mut c, &[(12, u(11_111_111))], t0), vec![12]);
        assert_eq!(c.after(), 10, "waits below the gap");
        // Read again meanwhile: 12 is not handled twice; 11 arrives and is.
        assert_eq!(
            handle(&mut c, &[(12, u(11_111_111))], t0 + Duration::from_secs(1)),
            Vec::<i64>::new()
        );
        assert_eq!(
            handle(
                &mut c,
                &[(11, u(22_222_222)), (12, u(11_111_111))],
                t0 + Duration::from_secs(2)
            ),
            vec![11]
        );
        assert_eq!(c.after(), 12);
        // 13 never comes (rolled back): skipped after GAP_WAIT.
        assert_eq!(
            handle(&mut c, &[(14, u(11_111_111)), (16, u(12_345_678))], t0),
            vec![14, 16]
        );
        assert_eq!(c.after(), 12);
        handle(
            &mut c,
            &[(14, u(11_111_111)), (16, u(12_345_678))],
            t0 + GAP_WAIT / 2,
        );
        assert_eq!(c.after(), 12);
        handle(
            &mut c,
            &[(14, u(11_111_111)), (16, u(12_345_678))],
            t0 + GAP_WAIT,
        );
        assert_eq!(
            c.after(),
            14,
            "13 skipped; 15 is a new gap, waited for afresh"
        );
        handle(&mut c, &[(16, u(12_345_678))], t0 + GAP_WAIT * 2);
        assert_eq!(c.after(), 16);
    }
}
