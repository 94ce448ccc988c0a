//! One socket: a single task owns the stream, the device's delivery window and its limits.
//!
//! Delivery (PROTOCOL §5.3): the device queue in the store is the truth. Backlog entries
//! (seq ≤ H, the highest seq at admission) are read from the store in windows of at most 256
//! unacknowledged frames, then `sync_done`; live entries arrive from the hub with their seq and
//! are sent directly when they are the next expected seq and the window has room; anything else
//! (a gap, a full window, a lost notification) marks the connection dirty and is read back from
//! the store.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use super::{close_frame, Socket};
use crate::http::App;
use crate::model::{AckSelector, QueueItem, Timestamp, UserId};
use crate::service::hub::{with_seq, Outbound, SocketHandle, SocketState, OUTBOUND_CAPACITY};
use crate::service::{Authenticated, MessagesService};

/// Most sent-but-unacknowledged durable frames per connection.
pub(crate) const WINDOW: usize = 256;
/// Most live frames held while the window is full before falling back to the store.
const MAX_BUFFERED: usize = 1024;
/// A write that takes longer than this means the peer cannot keep up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// An unanswered server ping closes the socket after this long.
const PONG_TIMEOUT: Duration = Duration::from_secs(20);

/// Why the loop ended.
pub(super) enum End {
    Closed,
    Close(u16, &'static str),
}

pub(super) struct Conn {
    pub(super) app: Arc<App>,
    pub(super) auth: Authenticated,
    ws: Socket,
    // Delivery state.
    h: i64,
    synced: bool,
    backlog_count: u64,
    sent_upto: i64,
    known_upto: i64,
    in_flight: BTreeSet<i64>,
    buffered: BTreeMap<i64, Bytes>,
    dirty: bool,
    // Frame rate limit.
    window_start: Instant,
    frames: u64,
    refused: u64,
    /// Frames fed but not flushed yet.
    unflushed: bool,
    /// `in_flight` was checked against the store since the last ack.
    reconciled: bool,
    /// This socket's share of `melo_ws_unacked_frames`.
    reported_unacked: i64,
    // Presence.
    pub(super) state: Arc<SocketState>,
    last_active: Instant,
    pub(super) declared_away: bool,
    pub(super) typing_peers: HashSet<UserId>,
}

pub(super) async fn run(
    app: Arc<App>,
    ws: Socket,
    auth: Authenticated,
    shutdown: CancellationToken,
) {
    let core = app.services.core().clone();
    let (tx, rx) = mpsc::channel(OUTBOUND_CAPACITY);
    let kill = CancellationToken::new();
    let state = Arc::new(SocketState {
        away: AtomicBool::new(false),
    });
    let handle = SocketHandle {
        id: core.hub.next_id(),
        session: auth.session,
        tx,
        kill: kill.clone(),
        state: state.clone(),
    };
    let id = handle.id;
    let h = match core.store.last_seq(auth.session).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "queue unavailable at connect");
            let mut ws = ws;
            let _ = ws.close(Some(close_frame(1011, "internal_error"))).await;
            return;
        }
    };
    if let Some(old) = core.hub.register(auth.user, handle) {
        if old.tx.try_send(Outbound::Close(4001, "replaced")).is_err() {
            old.kill.cancel();
        }
    }
    // A revocation between admission and registration found no socket to close: check again
    // now that this one is registered (a later revocation will find it).
    if !matches!(core.store.session(auth.session).await, Ok(Some(s)) if s.active) {
        core.hub.unregister(auth.user, id);
        let mut ws = ws;
        let _ = ws.close(Some(close_frame(1008, "token_revoked"))).await;
        return;
    }
    tracing::debug!(user_id = %auth.user, session_id = %auth.session, "socket open");
    core.metrics.ws_connections.inc();
    app.services.presence.refresh(auth.user).await;
    let mut conn = Conn {
        app: app.clone(),
        auth,
        ws,
        h,
        synced: false,
        backlog_count: 0,
        sent_upto: 0,
        known_upto: 0,
        in_flight: BTreeSet::new(),
        buffered: BTreeMap::new(),
        dirty: false,
        window_start: Instant::now(),
        frames: 0,
        refused: 0,
        unflushed: false,
        reconciled: false,
        reported_unacked: 0,
        state,
        last_active: Instant::now(),
        declared_away: false,
        typing_peers: HashSet::new(),
    };
    let end = conn.main_loop(rx, kill, shutdown).await;
    if let End::Close(code, reason) = end {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            conn.ws.close(Some(close_frame(code, reason))),
        )
        .await;
    }
    core.metrics.ws_connections.dec();
    core.metrics.ws_unacked.sub(conn.reported_unacked);
    let last = core.hub.unregister(conn.auth.user, id);
    if !core.hub.has_session(conn.auth.user, conn.auth.session) {
        app.services.calls.on_disconnect(&conn.auth).await;
    }
    if last {
        let peers: Vec<UserId> = conn.typing_peers.iter().copied().collect();
        app.services
            .presence
            .stop_typing_all(conn.auth.user, &peers)
            .await;
    }
    app.services.presence.refresh(conn.auth.user).await;
    tracing::debug!(user_id = %conn.auth.user, "socket closed");
}

/// The `type` of a serialized frame, for metrics: typed frames start with it; `json!` frames
/// (sorted keys) have it near the end, so the first 512 bytes are searched.
fn frame_type(frame: &[u8]) -> &str {
    const KEY: &[u8] = b"\"type\":\"";
    let head = &frame[..frame.len().min(512)];
    head.windows(KEY.len())
        .position(|w| w == KEY)
        .and_then(|at| {
            let rest = &head[at + KEY.len()..];
            let end = rest.iter().position(|c| *c == b'"')?;
            std::str::from_utf8(&rest[..end]).ok()
        })
        .unwrap_or("other")
}

/// The `gap` frame of a gap entry (without `seq`).
fn gap_frame(seq: i64, g: &crate::model::Gap) -> Bytes {
    let frame = serde_json::json!({
        "type": "gap",
        "from_seq": g.from_seq,
        "to_seq": seq,
        "count": g.count,
        "reason": if g.overflow { "overflow" } else { "expired" },
        "ts": g.at,
    });
    Bytes::from(frame.to_string())
}

impl Conn {
    async fn main_loop(
        &mut self,
        mut rx: mpsc::Receiver<Outbound>,
        kill: CancellationToken,
        shutdown: CancellationToken,
    ) -> End {
        let cfg = &self.app.services.core().config;
        let ping_every = Duration::from_secs(cfg.ws.ping_interval.max(1));
        let away_after = Duration::from_secs(cfg.realtime.presence_away_after.max(1));
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        let mut pong_deadline: Option<Instant> = None;
        if let Err(end) = self.pump().await {
            return end;
        }
        if let Err(end) = self.flush().await {
            return end;
        }
        loop {
            let away_at = self.last_active + away_after;
            let idle = !self.state.away.load(Ordering::Relaxed);
            // Unbiased: a busy hub queue must not starve reading the client's acks.
            let result = tokio::select! {
                _ = shutdown.cancelled() => return End::Close(1001, "going_away"),
                _ = kill.cancelled() => return End::Close(1013, "slow_consumer"),
                out = rx.recv() => match out {
                    Some(Outbound::Durable { seq, frame }) => self.on_live(seq, frame).await,
                    Some(Outbound::Ephemeral(frame)) => self.send_bytes(frame).await,
                    Some(Outbound::Close(code, reason)) => return End::Close(code, reason),
                    None => return End::Close(1011, "internal_error"),
                },
                msg = self.ws.next() => match msg {
                    None => return End::Closed,
                    Some(Ok(Message::Text(text))) => self.on_text(text.as_str()).await,
                    Some(Ok(Message::Binary(_))) => self.error("invalid_frame", "binary frames are not supported", None).await,
                    Some(Ok(Message::Pong(_))) => { pong_deadline = None; Ok(()) }
                    Some(Ok(Message::Ping(_))) | Some(Ok(Message::Frame(_))) => Ok(()),
                    Some(Ok(Message::Close(_))) => return End::Closed,
                    Some(Err(tungstenite::Error::Capacity(_))) => return End::Close(1009, "message_too_big"),
                    Some(Err(_)) => return End::Closed,
                },
                _ = ping.tick() => {
                    if pong_deadline.is_none() {
                        pong_deadline = Some(Instant::now() + PONG_TIMEOUT);
                    }
                    self.send(Message::Ping(Bytes::new())).await
                }
                _ = tokio::time::sleep_until(pong_deadline.unwrap_or_else(Instant::now)), if pong_deadline.is_some() => {
                    return End::Close(1011, "keepalive_timeout");
                }
                _ = tokio::time::sleep_until(away_at), if idle => {
                    self.state.away.store(true, Ordering::Relaxed);
                    self.app.services.presence.refresh(self.auth.user).await;
                    Ok(())
                }
            };
            if let Err(end) = result {
                return end;
            }
            if let Err(end) = self.drain_ready(&mut rx).await {
                return end;
            }
            if let Err(end) = self.flush().await {
                return end;
            }
            self.report_unacked();
        }
    }

    /// Brings `melo_ws_unacked_frames` up to date with this socket's window.
    fn report_unacked(&mut self) {
        let now = self.in_flight.len() as i64;
        if now != self.reported_unacked {
            let gauge = &self.app.services.core().metrics.ws_unacked;
            gauge.add(now - self.reported_unacked);
            self.reported_unacked = now;
        }
    }

    /// Marks the socket active (any frame but ping, acks and presence).
    pub(super) async fn activity(&mut self) {
        self.last_active = Instant::now();
        if !self.declared_away && self.state.away.swap(false, Ordering::Relaxed) {
            self.app.services.presence.refresh(self.auth.user).await;
        }
    }

    pub(super) async fn set_away(&mut self, away: bool) {
        self.declared_away = away;
        if away {
            self.state.away.store(true, Ordering::Relaxed);
        } else {
            self.last_active = Instant::now();
            self.state.away.store(false, Ordering::Relaxed);
        }
        self.app.services.presence.refresh(self.auth.user).await;
    }

    /// Counts a frame against the per-connection budget. `Ok(true)`: process it;
    /// `Ok(false)`: refused (an `error` was sent); `Err`: close.
    pub(super) async fn admit_frame(&mut self, reference: Option<&str>) -> Result<bool, End> {
        let ws = &self.app.services.core().config.ws;
        let now = Instant::now();
        if now >= self.window_start + Duration::from_secs(ws.rate_limit_period.max(1)) {
            self.window_start = now;
            self.frames = 0;
            self.refused = 0;
        }
        if self.frames < ws.rate_limit_messages {
            self.frames += 1;
            return Ok(true);
        }
        self.refused += 1;
        if self.refused >= ws.rate_limit_grace.max(1) {
            return Err(End::Close(1008, "rate_limited"));
        }
        self.app
            .services
            .core()
            .metrics
            .limited(crate::metrics::Limit::Ws);
        self.error("rate_limited", "too many frames; slow down", reference)
            .await?;
        Ok(false)
    }

    /// Queues a frame in the socket's write buffer; [`Conn::flush`] writes it out. Frames
    /// produced while handling one event (and the hub frames already waiting) leave in as few
    /// writes as possible.
    pub(super) async fn send(&mut self, msg: Message) -> Result<(), End> {
        self.unflushed = true;
        match tokio::time::timeout(WRITE_TIMEOUT, self.ws.feed(msg)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Closed),
            Err(_) => Err(End::Close(1013, "slow_consumer")),
        }
    }

    async fn flush(&mut self) -> Result<(), End> {
        if !self.unflushed {
            return Ok(());
        }
        self.unflushed = false;
        match tokio::time::timeout(WRITE_TIMEOUT, self.ws.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Closed),
            Err(_) => Err(End::Close(1013, "slow_consumer")),
        }
    }

    /// Handles hub frames that are already waiting, without blocking (bounded).
    async fn drain_ready(&mut self, rx: &mut mpsc::Receiver<Outbound>) -> Result<(), End> {
        for _ in 0..64 {
            match rx.try_recv() {
                Ok(Outbound::Durable { seq, frame }) => self.on_live(seq, frame).await?,
                Ok(Outbound::Ephemeral(frame)) => self.send_bytes(frame).await?,
                Ok(Outbound::Close(code, reason)) => return Err(End::Close(code, reason)),
                Err(_) => break,
            }
        }
        Ok(())
    }

    pub(super) async fn send_bytes(&mut self, frame: Bytes) -> Result<(), End> {
        self.app
            .services
            .core()
            .metrics
            .frame(false, frame_type(&frame));
        match tungstenite::Utf8Bytes::try_from(frame) {
            Ok(text) => self.send(Message::Text(text)).await,
            Err(_) => Ok(()),
        }
    }

    pub(super) async fn error(
        &mut self,
        reason: &str,
        message: &str,
        reference: Option<&str>,
    ) -> Result<(), End> {
        let frame = crate::service::frames::to_bytes(&crate::service::frames::ErrorFrame {
            kind: "error",
            reason,
            message,
            reference,
        });
        self.send_bytes(frame).await
    }

    /// A durable frame from the hub.
    async fn on_live(&mut self, seq: i64, frame: Bytes) -> Result<(), End> {
        if seq <= self.sent_upto {
            return Ok(());
        }
        // Hold a live frame only when it can go out now; otherwise the store has it and the
        // connection reads it back when the window opens (no per-socket pile of 1 MiB frames).
        if !self.synced || self.in_flight.len() >= WINDOW || self.buffered.len() >= MAX_BUFFERED {
            self.buffered.clear();
            self.dirty = true;
            return Ok(());
        }
        self.buffered.insert(seq, frame);
        self.pump().await
    }

    async fn send_durable(&mut self, seq: i64, frame: Bytes) -> Result<(), End> {
        self.in_flight.insert(seq);
        self.sent_upto = self.sent_upto.max(seq);
        self.send_bytes(frame).await
    }

    /// Sends whatever the window allows: backlog first, then `sync_done`, then live entries.
    pub(super) async fn pump(&mut self) -> Result<(), End> {
        let core = self.app.services.core().clone();
        loop {
            let room = WINDOW.saturating_sub(self.in_flight.len());
            if room == 0 {
                // Entries dropped by the expiry/overflow sweep while in flight can never be
                // acked: once per full window, keep only the in-flight seqs the queue still has.
                if self.reconciled {
                    return Ok(());
                }
                self.reconciled = true;
                self.reconcile_in_flight().await?;
                continue;
            }
            if !self.synced || self.dirty {
                let upto = (!self.synced).then_some(self.h);
                let entries = match core
                    .store
                    .queue_after(self.auth.session, self.sent_upto, upto, room as u64)
                    .await
                {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!(error = %e, "queue read failed");
                        return Err(End::Close(1011, "internal_error"));
                    }
                };
                let complete = entries.len() < room;
                for entry in entries {
                    let base = match &entry.item {
                        QueueItem::Message { message, self_copy } => {
                            MessagesService::delivery_frame(message, *self_copy)
                        }
                        QueueItem::Event(b) => match core.open_event(b) {
                            Ok(frame) => frame,
                            Err(e) => {
                                tracing::warn!(error = %e, seq = entry.seq, "queued event unreadable");
                                return Err(End::Close(1011, "internal_error"));
                            }
                        },
                        QueueItem::Gap(g) => gap_frame(entry.seq, g),
                    };
                    if !self.synced {
                        self.backlog_count += 1;
                    }
                    core.metrics.delivered(false, 1);
                    self.send_durable(entry.seq, with_seq(&base, entry.seq))
                        .await?;
                }
                if !complete {
                    return Ok(());
                }
                if !self.synced {
                    self.synced = true;
                    self.dirty = true;
                    self.known_upto = self.h.max(self.sent_upto);
                    self.send_sync_done().await?;
                    continue;
                }
                // Everything buffered was committed before this read began (the task is the
                // only consumer of its channel), so the read returned it if it still exists.
                self.dirty = false;
                self.known_upto = self.known_upto.max(self.sent_upto);
                self.buffered.clear();
                continue;
            }
            // Live path: only the next expected seq goes out directly.
            let Some((&seq, _)) = self.buffered.iter().next() else {
                return Ok(());
            };
            if seq <= self.sent_upto {
                self.buffered.remove(&seq);
                continue;
            }
            if seq != self.known_upto + 1 {
                self.dirty = true;
                continue;
            }
            if let Some(frame) = self.buffered.remove(&seq) {
                self.known_upto = seq;
                core.metrics.delivered(true, 1);
                self.send_durable(seq, frame).await?;
            }
        }
    }

    async fn send_sync_done(&mut self) -> Result<(), End> {
        let metrics = &self.app.services.core().metrics;
        metrics.ws_backlog.observe(self.backlog_count as f64);
        let frame = serde_json::json!({
            "type": "sync_done",
            "count": self.backlog_count,
            "last_seq": self.h,
            "ts": Timestamp::now(),
        });
        self.send_bytes(Bytes::from(frame.to_string())).await?;
        // A call ringing for this user: its `call_start` and the caller's frames so far.
        let calls = self.app.services.calls.clone();
        for f in calls.on_connect(&self.auth).await {
            self.send_bytes(f).await?;
        }
        Ok(())
    }

    async fn reconcile_in_flight(&mut self) -> Result<(), End> {
        let Some(&low) = self.in_flight.first() else {
            return Ok(());
        };
        let store = &self.app.services.core().store;
        match store
            .queue_after(
                self.auth.session,
                low - 1,
                Some(self.sent_upto),
                WINDOW as u64,
            )
            .await
        {
            Ok(entries) => {
                let present: BTreeSet<i64> = entries.iter().map(|e| e.seq).collect();
                self.in_flight.retain(|s| present.contains(s));
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "queue read failed");
                Err(End::Close(1011, "internal_error"))
            }
        }
    }

    /// Applies an acknowledgement and emits receipts.
    pub(super) async fn ack(&mut self, sel: AckSelector) -> Result<(), End> {
        let sel = match sel {
            AckSelector::UpTo(n) => AckSelector::UpTo(n.min(self.sent_upto)),
            AckSelector::Seq(n) if n > self.sent_upto => return Ok(()),
            other => other,
        };
        // Acks are not rate limited: never spend a store write on one that removes nothing.
        let nothing = match sel {
            AckSelector::UpTo(n) => self.in_flight.first().is_none_or(|low| n < *low),
            AckSelector::Seq(n) => !self.in_flight.contains(&n),
            AckSelector::Message(_) => false,
        };
        if nothing {
            return Ok(());
        }
        self.reconciled = false;
        let core = self.app.services.core().clone();
        let acked = match core.store.ack(self.auth.session, sel).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "ack failed");
                return self
                    .error("internal_error", "acknowledgement not stored", None)
                    .await;
            }
        };
        for a in &acked {
            self.in_flight.remove(&a.seq);
        }
        if let AckSelector::UpTo(n) = sel {
            self.in_flight = self.in_flight.split_off(&(n + 1));
        }
        if let Err(e) = self.app.services.messages.acked(&self.auth, &acked).await {
            tracing::warn!(error = %e, "receipts not emitted");
        }
        self.pump().await
    }
}
