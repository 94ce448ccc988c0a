//! Voice and video call signalling (docs/protocol.md §5.7): a state machine per call whose state lives
//! in [`Ephemeral`](crate::ephemeral::Ephemeral), so it survives the loss of any one socket and
//! (with a shared backend) spans nodes. SDP and ICE data are relayed, never stored or logged.
//!
//! Keys, all with a safety TTL:
//! * `call:busy:{uid}` → call id: each user takes part in at most one call (`set_if_absent`);
//! * `call:rec:{id}` → [`CallRecord`]; whoever `take`s it ends the call, exactly once;
//! * `call:dec:{id}` → the first decision while ringing (`accept:{session}`, `reject`, `cancel`,
//!   `timeout`), `set_if_absent`, so the first accept wins and a late accept loses to a timeout;
//! * `call:conn:{id}` → `connected` is announced once;
//! * `call:held:{id}` → caller frames held (sealed) for callee devices that connect while it rings;
//! * `call:lost:{id}:{session}` → an engaged device without a socket, ended after the grace period;
//! * `call:deadlines` → the call timers (ring timeout, reconnect grace, a periodic check that
//!   the engaged devices still have a socket somewhere), a deadline set shared by every node
//!   ([`Ephemeral::schedule`](crate::ephemeral::Ephemeral::schedule)) and swept by each
//!   ([`CallsService::sweep`]): a call whose node died is ended by another.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::frames::{call_state as state_frame, CallFrame, Media, Signal};
use super::{Authenticated, Core, Error, Result};
use crate::model::{SessionId, UserId};
use crate::push::PushEvent;

mod timers;

use timers::{Deadline, WATCH_EVERY};

/// Lifetime of every call key: a call longer than this ends when its keys expire.
const CALL_KEY_TTL: Duration = Duration::from_secs(12 * 3600);
/// Frames held for late-connecting callee devices, at most.
const HELD_MAX_FRAMES: usize = 64;
/// Bytes held per call, at most.
const HELD_MAX_BYTES: usize = 256 * 1024;

/// One call, as stored. Never changes after creation; the decision and the connected flag are
/// separate keys so that no write can resurrect an ended call.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CallRecord {
    id: String,
    caller: UserId,
    caller_session: SessionId,
    callee: UserId,
    media: Media,
}

/// How a ringing call ended.
#[derive(Clone, Copy)]
enum RingEnd {
    Rejected,
    Cancelled,
    TimedOut,
}

/// Call signalling.
#[derive(Clone, Debug)]
pub(crate) struct CallsService {
    core: Arc<Core>,
    notify: super::push::PushService,
}

fn key(kind: &str, id: &str) -> String {
    format!("call:{kind}:{id}")
}

fn lost_key(id: &str, session: SessionId) -> String {
    format!("call:lost:{id}:{}", session.0)
}

impl CallsService {
    pub(crate) fn new(core: Arc<Core>, notify: super::push::PushService) -> Self {
        Self { core, notify }
    }

    /// Handles one call frame from `auth`'s socket.
    pub(crate) async fn handle(&self, auth: &Authenticated, frame: CallFrame<'_>) -> Result<()> {
        if frame.target == auth.user {
            return Err(Error::InvalidTarget);
        }
        let active = self.active_call(auth.user).await?;
        // `call_start`, or an offer outside any call, starts one.
        let starts = frame.signal == Signal::Start
            || (frame.signal == Signal::Offer && active.is_none() && frame.call_id.is_none());
        if starts {
            if active.is_some() {
                return Err(Error::CallInProgress);
            }
            return self.start(auth, frame).await;
        }
        let Some(rec) = active else {
            return Err(Error::CallNotFound);
        };
        if frame.call_id.as_deref().is_some_and(|c| c != rec.id) {
            return Err(Error::CallNotFound);
        }
        self.in_call(auth, rec, frame).await
    }

    /// The call `user` takes part in, if any.
    async fn active_call(&self, user: UserId) -> Result<Option<CallRecord>> {
        let eph = &self.core.ephemeral;
        let busy_key = key("busy", &user.to_string());
        let Some(id) = eph.get(&busy_key).await? else {
            return Ok(None);
        };
        let id = String::from_utf8_lossy(&id).into_owned();
        match eph.get(&key("rec", &id)).await? {
            Some(raw) => Ok(serde_json::from_slice(&raw).ok()),
            None => {
                // The call ended between the two reads, or its record expired: stale lock.
                eph.delete_if(&busy_key, id.as_bytes()).await?;
                Ok(None)
            }
        }
    }

    /// `Some(session)` once a callee device accepted; `None` while ringing.
    async fn engaged_callee(&self, id: &str) -> Result<Option<SessionId>> {
        let d = self.core.ephemeral.get(&key("dec", id)).await?;
        Ok(d.and_then(|d| {
            std::str::from_utf8(&d)
                .ok()
                .and_then(|s| s.strip_prefix("accept:"))
                .and_then(|s| s.parse::<i64>().ok())
                .map(SessionId)
        }))
    }

    async fn start(&self, auth: &Authenticated, frame: CallFrame<'_>) -> Result<()> {
        let callee = frame.target;
        if !self.core.are_contacts(auth.user, callee).await? {
            return Err(Error::NotAContact);
        }
        let media = frame.media();
        let id = uuid::Uuid::now_v7().simple().to_string();
        let eph = &self.core.ephemeral;
        let caller_busy = key("busy", &auth.user.to_string());
        if !eph
            .set_if_absent(&caller_busy, id.as_bytes(), CALL_KEY_TTL)
            .await?
        {
            return Err(Error::CallInProgress);
        }
        let callee_busy = key("busy", &callee.to_string());
        let mut locked = eph
            .set_if_absent(&callee_busy, id.as_bytes(), CALL_KEY_TTL)
            .await?;
        if !locked && self.active_call(callee).await?.is_none() {
            // The lock was stale (its call is gone) and is now released: try once more.
            locked = eph
                .set_if_absent(&callee_busy, id.as_bytes(), CALL_KEY_TTL)
                .await?;
        }
        if !locked {
            eph.delete_if(&caller_busy, id.as_bytes()).await?;
            // Busy: from = callee, to = caller on both frames.
            let busy = state_frame(&id, "busy", callee, auth.user, None);
            self.to_session(auth.user, auth.session, &busy);
            let missed = state_frame(&id, "missed", callee, auth.user, None);
            self.core.send_ephemeral(callee, &missed, None);
            return Ok(());
        }
        let rec = CallRecord {
            id: id.clone(),
            caller: auth.user,
            caller_session: auth.session,
            callee,
            media,
        };
        let raw =
            serde_json::to_vec(&rec).map_err(|e| Error::Internal(format!("call record: {e}")))?;
        if let Err(e) = eph.set(&key("rec", &id), &raw, CALL_KEY_TTL).await {
            let _ = eph.delete_if(&caller_busy, id.as_bytes()).await;
            let _ = eph.delete_if(&callee_busy, id.as_bytes()).await;
            return Err(e.into());
        }
        let ring_after = Duration::from_secs(self.core.config.realtime.call_ring_timeout);
        let timers = async {
            self.schedule(&Deadline::Ring { id: id.clone() }, ring_after)
                .await?;
            self.schedule(&Deadline::Watch { id: id.clone() }, WATCH_EVERY)
                .await
        };
        if let Err(e) = timers.await {
            // A call nothing would end: undone, so neither user stays busy.
            let _ = self.release(&rec).await;
            return Err(e);
        }
        let ringing = state_frame(&id, "ringing", auth.user, callee, None);
        self.to_session(auth.user, auth.session, &ringing);
        // The callee's devices get `call_start` (synthesized when the call began with an offer),
        // then the offer itself.
        let start = if frame.signal == Signal::Start {
            frame.forward(&id, auth.user, Some(media))
        } else {
            CallFrame::synthesized_start(&id, auth.user, callee, media)
        };
        self.ring(&rec, start).await?;
        if frame.signal != Signal::Start {
            self.ring(&rec, frame.forward(&id, auth.user, None)).await?;
        }
        let offline = self.notify.offline_sessions(callee).await;
        if !offline.is_empty() {
            let event = PushEvent::Call {
                call_id: id,
                from: auth.user,
            };
            self.notify.notify(callee, &offline, event, true);
        }
        Ok(())
    }

    /// Sends a caller frame to every callee device while ringing and holds it for late devices.
    async fn ring(&self, rec: &CallRecord, frame: Bytes) -> Result<()> {
        self.core.send_ephemeral(rec.callee, &frame, None);
        let k = key("held", &rec.id);
        let eph = &self.core.ephemeral;
        let mut held: Vec<String> = match eph.get(&k).await? {
            Some(sealed) => self.open_held(&rec.id, &sealed),
            None => Vec::new(),
        };
        let size: usize = held.iter().map(String::len).sum();
        if held.len() < HELD_MAX_FRAMES && size + frame.len() <= HELD_MAX_BYTES {
            held.push(String::from_utf8_lossy(&frame).into_owned());
            let raw = serde_json::to_vec(&held)
                .map_err(|e| Error::Internal(format!("held call frames: {e}")))?;
            // SDP and ICE carry addresses: sealed like every other PII in shared state.
            let sealed = self
                .core
                .pii
                .seal("ephemeral", "call_held", &rec.id, &raw)?;
            eph.set(&k, &sealed, CALL_KEY_TTL).await?;
        }
        Ok(())
    }

    /// The held caller frames of call `id` (empty when unreadable).
    fn open_held(&self, id: &str, sealed: &[u8]) -> Vec<String> {
        self.core
            .pii
            .open("ephemeral", "call_held", id, sealed)
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok())
            .unwrap_or_default()
    }

    async fn in_call(
        &self,
        auth: &Authenticated,
        rec: CallRecord,
        frame: CallFrame<'_>,
    ) -> Result<()> {
        let is_caller = auth.user == rec.caller;
        let peer = if is_caller { rec.callee } else { rec.caller };
        if frame.target != peer {
            return Err(Error::CallNotFound);
        }
        if is_caller && auth.session != rec.caller_session {
            return Err(Error::CallNotFound);
        }
        let engaged = self.engaged_callee(&rec.id).await?;
        if let Some(e) = engaged {
            if !is_caller && auth.session != e {
                return Err(Error::CallNotFound);
            }
        }
        let signal = frame.signal;
        let fwd = || frame.forward(&rec.id, auth.user, None);
        match (engaged, is_caller, signal) {
            // Ringing.
            (None, true, Signal::Hangup | Signal::EndState) => {
                if signal != Signal::EndState {
                    self.core.send_ephemeral(rec.callee, &fwd(), None);
                }
                self.end_ringing(&rec, RingEnd::Cancelled).await
            }
            (None, true, _) => {
                if signal == Signal::Connected {
                    return Err(Error::CallNotFound);
                }
                self.ring(&rec, fwd()).await
            }
            (None, false, Signal::Accept | Signal::Answer) => {
                let decision = format!("accept:{}", auth.session.0);
                if !self
                    .core
                    .ephemeral
                    .set_if_absent(&key("dec", &rec.id), decision.as_bytes(), CALL_KEY_TTL)
                    .await?
                {
                    return Err(Error::CallNotFound);
                }
                self.to_session(rec.caller, rec.caller_session, &fwd());
                let accepted = state_frame(&rec.id, "accepted", rec.callee, rec.caller, None);
                self.to_session(rec.caller, rec.caller_session, &accepted);
                self.to_session(rec.callee, auth.session, &accepted);
                let elsewhere =
                    state_frame(&rec.id, "answered_elsewhere", rec.callee, rec.caller, None);
                self.core
                    .send_ephemeral(rec.callee, &elsewhere, Some(auth.session));
                let _ = self.core.ephemeral.delete(&key("held", &rec.id)).await;
                Ok(())
            }
            (None, false, Signal::Reject | Signal::Hangup | Signal::EndState) => {
                if signal != Signal::EndState {
                    self.to_session(rec.caller, rec.caller_session, &fwd());
                }
                self.end_ringing(&rec, RingEnd::Rejected).await
            }
            (None, false, Signal::Connected) => Err(Error::CallNotFound),
            (None, false, _) => {
                self.to_session(rec.caller, rec.caller_session, &fwd());
                Ok(())
            }
            // Accepted or connected: only between the engaged pair.
            (Some(callee_session), _, _) => {
                let (peer_session, me) = if is_caller {
                    (callee_session, rec.caller)
                } else {
                    (rec.caller_session, rec.callee)
                };
                match signal {
                    Signal::Connected => {
                        if self
                            .core
                            .ephemeral
                            .set_if_absent(&key("conn", &rec.id), b"1", CALL_KEY_TTL)
                            .await?
                        {
                            let f = state_frame(&rec.id, "connected", me, peer, None);
                            self.to_session(peer, peer_session, &f);
                            self.to_session(me, auth.session, &f);
                        }
                        Ok(())
                    }
                    Signal::Hangup | Signal::Reject | Signal::EndState => {
                        if signal != Signal::EndState {
                            self.to_session(peer, peer_session, &fwd());
                        }
                        self.end_engaged(&rec, callee_session, me, None).await
                    }
                    _ => {
                        self.to_session(peer, peer_session, &fwd());
                        Ok(())
                    }
                }
            }
        }
    }

    /// Ends a ringing call if its decision is still open; announces to the caller device and
    /// every callee device.
    async fn end_ringing(&self, rec: &CallRecord, how: RingEnd) -> Result<()> {
        let tag: &[u8] = match how {
            RingEnd::Rejected => b"reject",
            RingEnd::Cancelled => b"cancel",
            RingEnd::TimedOut => b"timeout",
        };
        let eph = &self.core.ephemeral;
        if !eph
            .set_if_absent(&key("dec", &rec.id), tag, CALL_KEY_TTL)
            .await?
        {
            // Accepted (or ended) first: a caller's hangup now ends the accepted call.
            return match (how, self.engaged_callee(&rec.id).await?) {
                (RingEnd::Cancelled, Some(s)) => self.end_engaged(rec, s, rec.caller, None).await,
                _ => Ok(()),
            };
        }
        if !self.release(rec).await? {
            return Ok(());
        }
        let (state, from, to) = match how {
            RingEnd::Rejected => ("rejected", rec.callee, rec.caller),
            RingEnd::Cancelled => ("missed", rec.caller, rec.callee),
            RingEnd::TimedOut => ("missed", rec.callee, rec.caller),
        };
        let f = state_frame(&rec.id, state, from, to, None);
        self.to_session(rec.caller, rec.caller_session, &f);
        self.core.send_ephemeral(rec.callee, &f, None);
        Ok(())
    }

    /// Ends an accepted call (exactly once) and tells both engaged devices.
    async fn end_engaged(
        &self,
        rec: &CallRecord,
        callee_session: SessionId,
        by: UserId,
        reason: Option<&'static str>,
    ) -> Result<()> {
        if !self.release(rec).await? {
            return Ok(());
        }
        let other = if by == rec.caller {
            rec.callee
        } else {
            rec.caller
        };
        let f = state_frame(&rec.id, "ended", by, other, reason);
        self.to_session(rec.caller, rec.caller_session, &f);
        self.to_session(rec.callee, callee_session, &f);
        Ok(())
    }

    /// Takes the record (true for the one caller that ends the call) and frees every key.
    async fn release(&self, rec: &CallRecord) -> Result<bool> {
        let eph = &self.core.ephemeral;
        if eph.take(&key("rec", &rec.id)).await?.is_none() {
            return Ok(false);
        }
        for user in [rec.caller, rec.callee] {
            eph.delete_if(&key("busy", &user.to_string()), rec.id.as_bytes())
                .await?;
        }
        for kind in ["held", "conn"] {
            eph.delete(&key(kind, &rec.id)).await?;
        }
        Ok(true)
    }

    /// Frames a socket of `auth` must get after `sync_done`: while a call to this user rings, the
    /// `call_start` and the caller frames so far. Also marks an engaged device as back.
    pub(crate) async fn on_connect(&self, auth: &Authenticated) -> Vec<Bytes> {
        let Ok(Some(rec)) = self.active_call(auth.user).await else {
            return Vec::new();
        };
        let eph = &self.core.ephemeral;
        let _ = eph.delete(&lost_key(&rec.id, auth.session)).await;
        if rec.callee != auth.user || !matches!(self.engaged_callee(&rec.id).await, Ok(None)) {
            return Vec::new();
        }
        match eph.get(&key("held", &rec.id)).await {
            Ok(Some(sealed)) => self
                .open_held(&rec.id, &sealed)
                .into_iter()
                .map(Bytes::from)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The last socket of `auth`'s session closed: an engaged device gets
    /// `CALL_RECONNECT_GRACE` seconds to come back before the call ends.
    pub(crate) async fn on_disconnect(&self, auth: &Authenticated) {
        let Ok(Some(rec)) = self.active_call(auth.user).await else {
            return;
        };
        let Ok(engaged) = self.engaged_callee(&rec.id).await else {
            return;
        };
        let is_engaged = if auth.user == rec.caller {
            auth.session == rec.caller_session
        } else {
            engaged == Some(auth.session)
        };
        if is_engaged {
            self.lost(&rec, auth.user, auth.session).await;
        }
    }

    /// A session was revoked: a call it takes part in ends with `session_revoked`.
    pub(crate) async fn session_revoked(&self, user: UserId, session: SessionId) {
        let Ok(Some(rec)) = self.active_call(user).await else {
            return;
        };
        let involved = if user == rec.caller {
            session == rec.caller_session
        } else {
            matches!(self.engaged_callee(&rec.id).await, Ok(Some(s)) if s == session)
        };
        if involved {
            self.end_for(user, &rec, "session_revoked").await;
        }
    }

    /// Ends `rec` because `user`'s engaged device is gone.
    async fn end_for(&self, user: UserId, rec: &CallRecord, reason: &'static str) {
        let r = match self.engaged_callee(&rec.id).await {
            Ok(Some(s)) => self.end_engaged(rec, s, user, Some(reason)).await,
            // Still ringing: the caller's device is gone.
            Ok(None) => self.end_ringing(rec, RingEnd::Cancelled).await,
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            e.log("call end");
        }
    }

    fn to_session(&self, user: UserId, session: SessionId, frame: &Bytes) {
        self.core.send_to_session(user, session, frame);
    }
}
