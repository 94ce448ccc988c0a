//! One socket: a single task owns the stream and moves frames between it and the services.
//!
//! Delivery (docs/protocol.md §5.3) is the [`Feed`]'s: the task hands it the hub's durable frames and
//! the client's acknowledgements and writes out what it releases. Client frames that arrive
//! together are handled together, so a burst of acknowledgements is one store write.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use super::{close_frame, Socket};
use crate::http::App;
use crate::model::UserId;
use crate::service::cache::SESSION_RECHECK;
use crate::service::delivery::Feed;
use crate::service::frames::{self, ErrorFrame, ServerFrame};
use crate::service::hub::{Outbound, SocketHandle, SocketState, OUTBOUND_CAPACITY};
use crate::service::{Authenticated, WsReason};

/// With several nodes: a new socket re-reads its queue once after this long, for frames other
/// nodes sent before they heard this node announce it.
const ANNOUNCE_SETTLE: Duration = Duration::from_secs(2);
/// A write that takes longer than this means the peer cannot keep up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// An unanswered server ping closes the socket after this long.
const PONG_TIMEOUT: Duration = Duration::from_secs(20);
/// Client frames already received that are handled before acknowledgements are written.
const READ_BURST: usize = 64;
/// Hub frames already queued that are handled before the socket is flushed.
const HUB_BURST: usize = 64;

/// Why the loop ended.
pub(super) enum End {
    Closed,
    Close(u16, &'static str),
}

pub(super) struct Conn {
    pub(super) app: Arc<App>,
    pub(super) auth: Authenticated,
    ws: Socket,
    pub(super) feed: Feed,
    /// Frames released by the feed, to write.
    out: Vec<Bytes>,
    /// The feed needs a store read (backlog, or live frames were lost).
    pump: bool,
    // Frame rate limit.
    window_start: Instant,
    frames: u64,
    refused: u64,
    /// Frames fed but not flushed yet.
    unflushed: bool,
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
    mut ws: Socket,
    auth: Authenticated,
    shutdown: CancellationToken,
) {
    let core = app.services.core().clone();
    let (tx, rx) = mpsc::channel(OUTBOUND_CAPACITY);
    let kill = CancellationToken::new();
    let state = Arc::new(SocketState::default());
    let handle = SocketHandle {
        id: core.hub.next_id(),
        session: auth.session,
        tx,
        kill: kill.clone(),
        state: state.clone(),
    };
    let id = handle.id;
    if let Some(old) = core.hub.register(auth.user, handle) {
        if old.tx.try_send(Outbound::Close(4001, "replaced")).is_err() {
            old.kill.cancel();
        }
    }
    // Opened after registering: a revocation between admission and registration found no
    // socket to close, so the feed checks the session again (a later one finds this socket).
    let feed = match app.services.delivery.open(&auth).await {
        Ok(feed) => feed,
        Err(e) => {
            core.hub.unregister(auth.user, id);
            e.log("websocket open");
            let (code, reason) = e.close();
            let _ = ws.close(Some(close_frame(code, reason))).await;
            return;
        }
    };
    tracing::debug!(user_id = %auth.user, session_id = %auth.session, "socket open");
    core.metrics.ws_connections.inc();
    core.hooks.emit(|| crate::hooks::Event::SocketOpened {
        user: auth.user,
        session: auth.session,
    });
    app.services.presence.refresh(auth.user).await;
    let mut conn = Conn {
        app: app.clone(),
        auth,
        ws,
        feed,
        out: Vec::new(),
        pump: true,
        window_start: Instant::now(),
        frames: 0,
        refused: 0,
        unflushed: false,
        reported_unacked: 0,
        state,
        last_active: Instant::now(),
        declared_away: false,
        typing_peers: HashSet::new(),
    };
    let end = conn.main_loop(rx, kill, shutdown).await;
    // Acknowledgements gathered but not written yet still count.
    if let Err(e) = conn.feed.flush_acks(&mut Vec::new()).await {
        e.log("acknowledgements at close");
    }
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
        app.services
            .presence
            .stop_chat_typing_on_close(conn.auth.user)
            .await;
    }
    app.services.presence.refresh(conn.auth.user).await;
    tracing::debug!(user_id = %conn.auth.user, "socket closed");
    core.hooks.emit(|| crate::hooks::Event::SocketClosed {
        user: conn.auth.user,
        session: conn.auth.session,
    });
}

/// The `type` of a serialized frame, for metrics: every [`ServerFrame`] starts with it (a
/// durable one after its `seq`); the first 512 bytes are searched.
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
        // With several nodes a revocation through another node may reach this one only
        // through the store (its bus note can be lost): the session is re-checked, through
        // the sessions cache, on a short period.
        let clustered = self.app.services.core().cluster.is_some();
        let mut recheck =
            tokio::time::interval_at(Instant::now() + SESSION_RECHECK, SESSION_RECHECK);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Other nodes address this socket's frames here once they heard this node announce
        // it; what they sent before that is read back from the queue once, a little later.
        let mut settle = clustered.then(|| Instant::now() + ANNOUNCE_SETTLE);
        if let Err(end) = self.deliver().await {
            return end;
        }
        loop {
            let away_at = self.last_active + away_after;
            let idle = !self.state.is_away();
            let ack_at = self.feed.ack_deadline();
            // Unbiased: a busy hub queue must not starve reading the client's acks.
            let result = tokio::select! {
                _ = shutdown.cancelled() => return End::Close(1001, "going_away"),
                _ = kill.cancelled() => return End::Close(1013, "slow_consumer"),
                out = rx.recv() => match out {
                    Some(out) => self.on_hub(out).await,
                    None => return End::Close(1011, "internal_error"),
                },
                msg = self.ws.next() => match self.on_socket(msg).await {
                    // Whatever else the client sent meanwhile, before acknowledgements are written.
                    Ok(true) => self.read_burst(&mut pong_deadline).await,
                    Ok(false) => { pong_deadline = None; Ok(()) }
                    Err(end) => Err(end),
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
                _ = tokio::time::sleep_until(ack_at.unwrap_or_else(Instant::now)), if ack_at.is_some() => {
                    self.flush_acks().await
                }
                _ = recheck.tick(), if clustered => self.recheck_session().await,
                _ = tokio::time::sleep_until(settle.unwrap_or_else(Instant::now)), if settle.is_some() => {
                    settle = None;
                    self.feed.suspect_loss();
                    self.pump = true;
                    Ok(())
                }
                _ = tokio::time::sleep_until(away_at), if idle => {
                    self.state.set_away(true);
                    self.app.services.presence.refresh(self.auth.user).await;
                    Ok(())
                }
            };
            if let Err(end) = result {
                return end;
            }
            if let Err(end) = self.drain_hub(&mut rx).await {
                return end;
            }
            if let Err(end) = self.deliver().await {
                return end;
            }
            self.report_unacked();
        }
    }

    /// Closes the socket once its session is no longer active (revoked through another node).
    /// A store that cannot answer keeps the socket: the next check asks again.
    async fn recheck_session(&mut self) -> Result<(), End> {
        let core = self.app.services.core();
        match core.session_alive(self.auth.user, self.auth.session).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                tracing::debug!(session_id = %self.auth.session, "session no longer active; socket closed");
                let (code, reason) = crate::service::Error::TokenRevoked.close();
                Err(End::Close(code, reason))
            }
            Err(e) => {
                // Every socket asks twice a second: a store outage must not flood the log (the
                // requests that fail meanwhile say so).
                tracing::debug!(error = %e, "session re-check failed; asked again shortly");
                Ok(())
            }
        }
    }

    /// One message from the socket; `Ok(true)` when it was a client frame, `Ok(false)` for a
    /// pong.
    async fn on_socket(
        &mut self,
        msg: Option<Result<Message, tungstenite::Error>>,
    ) -> Result<bool, End> {
        match msg {
            None => Err(End::Closed),
            Some(Ok(Message::Text(text))) => self.on_text(text.as_str()).await.map(|()| true),
            Some(Ok(Message::Binary(_))) => self
                .error(
                    WsReason::InvalidFrame,
                    "binary frames are not supported",
                    None,
                )
                .await
                .map(|()| true),
            Some(Ok(Message::Pong(_))) => Ok(false),
            Some(Ok(Message::Ping(_))) | Some(Ok(Message::Frame(_))) => Ok(true),
            Some(Ok(Message::Close(_))) => Err(End::Closed),
            Some(Err(tungstenite::Error::Capacity(_))) => Err(End::Close(1009, "message_too_big")),
            Some(Err(_)) => Err(End::Closed),
        }
    }

    /// Handles client frames that already arrived (bounded), then writes the acknowledgements
    /// gathered so far unless the feed says they can wait.
    async fn read_burst(&mut self, pong_deadline: &mut Option<Instant>) -> Result<(), End> {
        for _ in 0..READ_BURST {
            if self.feed.acks_due() {
                self.flush_acks().await?;
            }
            let Some(msg) = self.ws.next().now_or_never() else {
                break;
            };
            if !self.on_socket(msg).await? {
                *pong_deadline = None;
            }
        }
        self.flush_acks().await
    }

    /// Writes the gathered acknowledgements (and their receipts).
    async fn flush_acks(&mut self) -> Result<(), End> {
        match self.feed.flush_acks(&mut self.out).await {
            Ok(synced) => self.after_sync(synced).await,
            Err(e) => {
                e.log("acknowledgements");
                self.pump = true;
                self.error(
                    WsReason::InternalError,
                    "acknowledgement not stored",
                    Some("ack_received"),
                )
                .await
            }
        }
    }

    async fn on_hub(&mut self, out: Outbound) -> Result<(), End> {
        match out {
            Outbound::Durable { seq, frame, meta } => {
                self.pump |= self.feed.on_live(seq, frame, meta, &mut self.out);
                Ok(())
            }
            Outbound::Ephemeral(frame) => self.send_bytes(frame).await,
            Outbound::Close(code, reason) => Err(End::Close(code, reason)),
            Outbound::Pump => {
                self.feed.suspect_loss();
                self.pump = true;
                Ok(())
            }
        }
    }

    /// Handles hub frames that are already waiting, without blocking (bounded).
    async fn drain_hub(&mut self, rx: &mut mpsc::Receiver<Outbound>) -> Result<(), End> {
        for _ in 0..HUB_BURST {
            match rx.try_recv() {
                Ok(out) => self.on_hub(out).await?,
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Lets the feed read the store if it needs to, then writes every released frame and
    /// flushes the socket.
    async fn deliver(&mut self) -> Result<(), End> {
        if self.pump {
            self.pump = false;
            match self.feed.pump(&mut self.out).await {
                Ok(synced) => self.after_sync(synced).await?,
                Err(e) => {
                    e.log("queue read");
                    return Err(End::Close(1011, "internal_error"));
                }
            }
        }
        for frame in std::mem::take(&mut self.out) {
            self.send_bytes(frame).await?;
        }
        self.flush().await
    }

    /// After `sync_done`: a call ringing for this user (its `call_start` and the caller's
    /// frames so far).
    async fn after_sync(&mut self, synced: bool) -> Result<(), End> {
        if synced {
            let calls = self.app.services.calls.clone();
            self.out.extend(calls.on_connect(&self.auth).await);
        }
        Ok(())
    }

    /// Brings `melo_ws_unacked_frames` up to date with this socket's window.
    fn report_unacked(&mut self) {
        let now = self.feed.in_flight() as i64;
        if now != self.reported_unacked {
            let gauge = &self.app.services.core().metrics.ws_unacked;
            gauge.add(now - self.reported_unacked);
            self.reported_unacked = now;
        }
    }

    /// Marks the socket active (any frame but ping, acks and presence).
    pub(super) async fn activity(&mut self) {
        self.last_active = Instant::now();
        if !self.declared_away && self.state.wake() {
            self.app.services.presence.refresh(self.auth.user).await;
        }
    }

    pub(super) async fn set_away(&mut self, away: bool) {
        self.declared_away = away;
        if !away {
            self.last_active = Instant::now();
        }
        self.state.set_away(away);
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
        self.error(
            WsReason::RateLimited,
            "too many frames; slow down",
            reference,
        )
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

    /// Sends an `error` frame (docs/protocol.md §5.2).
    pub(super) async fn error(
        &mut self,
        reason: WsReason,
        message: &str,
        reference: Option<&str>,
    ) -> Result<(), End> {
        let frame = frames::to_bytes(&ServerFrame::Error(ErrorFrame {
            reason,
            message,
            reference,
        }));
        self.send_bytes(frame).await
    }
}
