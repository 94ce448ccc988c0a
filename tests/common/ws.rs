//! A WebSocket test client speaking PROTOCOL §5: JSON text frames, durable frames with `seq`,
//! `sync_done`, acks and close codes. Server pings are answered by tungstenite while we read.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

/// How long a test waits for a frame that must come.
pub const WAIT: Duration = Duration::from_secs(10);

/// The `sync_done` of a connection: `count`, `last_seq`, and the durable frames before it.
#[derive(Debug, Clone)]
pub struct SyncDone {
    pub count: i64,
    pub last_seq: i64,
    pub backlog: Vec<Value>,
}

pub struct WsClient {
    ws: WebSocketStream<TcpStream>,
    /// Frames received but not consumed yet (frames `recv_type` and friends stepped over).
    pub pending: VecDeque<Value>,
    /// Every frame this connection ever received, in order.
    pub received: Vec<Value>,
    /// The highest `seq` received on this connection (0 = none).
    pub max_seq: i64,
    /// The longest text frame received, in bytes.
    pub max_frame: usize,
    /// The close this connection observed: the server's close frame, or 1006 for a lost
    /// connection without one.
    pub closed: Option<(u16, String)>,
}

/// Is `f` a frame of type `ty`?
pub fn is(f: &Value, ty: &str) -> bool {
    f["type"] == ty
}

impl WsClient {
    /// Opens a socket at `path` on `addr`. The token goes in `Authorization: Bearer` when
    /// `via_header`, else in the `token` query parameter. Panics if the upgrade fails (PROTOCOL
    /// §5.1: admission failures complete the upgrade, then close).
    pub async fn connect(
        addr: SocketAddr,
        path: &str,
        token: Option<&str>,
        via_header: bool,
        origin: Option<&str>,
    ) -> Self {
        Self::try_connect(addr, path, token, via_header, origin)
            .await
            .unwrap_or_else(|e| panic!("WebSocket upgrade at ws://{addr}{path}: {e}"))
    }

    pub async fn try_connect(
        addr: SocketAddr,
        path: &str,
        token: Option<&str>,
        via_header: bool,
        origin: Option<&str>,
    ) -> Result<Self, tungstenite::Error> {
        let mut url = format!("ws://{addr}{path}");
        if let (Some(t), false) = (token, via_header) {
            url.push(if path.contains('?') { '&' } else { '?' });
            url.push_str("token=");
            url.push_str(t);
        }
        let mut req = url.into_client_request()?;
        if let (Some(t), true) = (token, via_header) {
            req.headers_mut().insert(
                "authorization",
                format!("Bearer {t}").parse().expect("header value"),
            );
        }
        if let Some(o) = origin {
            req.headers_mut()
                .insert("origin", o.parse().expect("header value"));
        }
        Self::handshake(addr, req).await
    }

    /// `GET /ws` on the HTTP port with the token in the header and extra request headers
    /// (e.g. `User-Agent`, `X-Forwarded-For`).
    pub async fn open_with_headers(
        http: SocketAddr,
        token: &str,
        headers: &[(&str, &str)],
    ) -> Self {
        let mut req = format!("ws://{http}/ws")
            .into_client_request()
            .expect("request");
        let h = req.headers_mut();
        h.insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header value"),
        );
        for (name, value) in headers {
            let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes()).expect("name");
            h.insert(name, value.parse().expect("header value"));
        }
        Self::handshake(http, req)
            .await
            .unwrap_or_else(|e| panic!("WebSocket upgrade at ws://{http}/ws: {e}"))
    }

    /// Opens a socket at `path` on `addr` with the token in the header, from the local address
    /// `local` (another loopback address such as 127.0.0.2 is another client IP).
    pub async fn connect_from(
        local: std::net::IpAddr,
        addr: SocketAddr,
        path: &str,
        token: &str,
    ) -> Self {
        let mut req = format!("ws://{addr}{path}")
            .into_client_request()
            .expect("request");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header value"),
        );
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::new(local, 0)).expect("bind");
        let stream = socket.connect(addr).await.expect("connect");
        Self::handshake_on(stream, req)
            .await
            .unwrap_or_else(|e| panic!("WebSocket upgrade at ws://{addr}{path} from {local}: {e}"))
    }

    async fn handshake(
        addr: SocketAddr,
        req: tungstenite::handshake::client::Request,
    ) -> Result<Self, tungstenite::Error> {
        let stream = TcpStream::connect(addr).await?;
        Self::handshake_on(stream, req).await
    }

    async fn handshake_on(
        stream: TcpStream,
        req: tungstenite::handshake::client::Request,
    ) -> Result<Self, tungstenite::Error> {
        stream.set_nodelay(true)?;
        let (ws, resp) = tokio_tungstenite::client_async(req, stream).await?;
        assert_eq!(resp.status(), 101, "upgrade answered 101");
        Ok(Self {
            ws,
            pending: VecDeque::new(),
            received: Vec::new(),
            max_seq: 0,
            max_frame: 0,
            closed: None,
        })
    }

    /// `GET /ws` on the HTTP port with the token in the header.
    pub async fn open(http: SocketAddr, token: &str) -> Self {
        Self::connect(http, "/ws", Some(token), true, None).await
    }

    pub async fn send_json(&mut self, v: &Value) {
        self.send_text(&v.to_string()).await;
    }

    pub async fn send_text(&mut self, s: &str) {
        self.ws
            .send(Message::text(s.to_owned()))
            .await
            .expect("send text frame");
    }

    pub async fn send_binary(&mut self, b: Vec<u8>) {
        self.ws
            .send(Message::binary(b))
            .await
            .expect("send binary frame");
    }

    /// Sends a text frame; a failure (the server may close while a large frame is in flight)
    /// is returned, not a panic.
    pub async fn try_send_text(&mut self, s: String) -> Result<(), tungstenite::Error> {
        self.ws.send(Message::text(s)).await
    }

    /// Reads one frame from the socket until `deadline`. None: deadline, or closed.
    async fn read_frame(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            if self.closed.is_some() {
                return None;
            }
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(m) => m,
            };
            match msg {
                Some(Ok(Message::Text(t))) => {
                    self.max_frame = self.max_frame.max(t.len());
                    let v: Value = serde_json::from_str(t.as_str()).unwrap_or_else(|e| {
                        panic!("server text frame is not JSON ({e}): {}", t.as_str())
                    });
                    assert!(
                        v.is_object() && v["type"].is_string(),
                        "server frame is an object with a string type (§5.2): {v}"
                    );
                    if let Some(seq) = v["seq"].as_i64() {
                        self.max_seq = self.max_seq.max(seq);
                    }
                    self.received.push(v.clone());
                    return Some(v);
                }
                Some(Ok(Message::Binary(b))) => {
                    panic!(
                        "server sent a binary frame ({} bytes); §5.2: text only",
                        b.len()
                    )
                }
                Some(Ok(Message::Close(frame))) => {
                    self.closed = Some(match frame {
                        Some(f) => (u16::from(f.code), f.reason.as_str().to_owned()),
                        None => (1005, String::new()),
                    });
                    return None;
                }
                Some(Ok(_)) => continue, // ping / pong: tungstenite answers pings itself
                Some(Err(e)) => {
                    self.closed = Some((1006, e.to_string()));
                    return None;
                }
                None => {
                    self.closed = Some((1006, "end of stream".into()));
                    return None;
                }
            }
        }
    }

    /// The next frame (pending first), or None on timeout or close.
    pub async fn recv_json(&mut self, timeout: Duration) -> Option<Value> {
        if let Some(v) = self.pending.pop_front() {
            return Some(v);
        }
        self.read_frame(Instant::now() + timeout).await
    }

    /// The next frame matching `pred`; frames stepped over stay in `pending`, in order.
    pub async fn try_recv_where(
        &mut self,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<Value> {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.read_frame(deadline).await?;
            if pred(&v) {
                return Some(v);
            }
            self.pending.push_back(v);
        }
    }

    /// The next frame matching `pred`; panics naming `what` when none comes within `timeout`.
    pub async fn recv_where(
        &mut self,
        what: &str,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Value {
        match self.try_recv_where(pred, timeout).await {
            Some(v) => v,
            None => panic!(
                "expected {what} within {timeout:?}; closed: {:?}; pending: {:?}",
                self.closed, self.pending
            ),
        }
    }

    /// The next frame of type `ty` (others are kept in `pending`).
    pub async fn recv_type(&mut self, ty: &str, timeout: Duration) -> Value {
        self.recv_where(&format!("a `{ty}` frame"), |f| is(f, ty), timeout)
            .await
    }

    /// Asserts that no frame matching `pred` is pending or arrives within `quiet`; other frames
    /// are kept in `pending`.
    pub async fn expect_no(&mut self, what: &str, pred: impl Fn(&Value) -> bool, quiet: Duration) {
        if let Some(f) = self.pending.iter().find(|f| pred(f)) {
            panic!("expected no {what}, but got {f}");
        }
        let deadline = Instant::now() + quiet;
        while let Some(v) = self.read_frame(deadline).await {
            assert!(
                !pred(&v),
                "expected no {what} within {quiet:?}, but got {v}"
            );
            self.pending.push_back(v);
        }
    }

    /// "No frame" of type `ty` within `quiet` (PROTOCOL §7 uses 2 s).
    pub async fn expect_no_frame(&mut self, ty: &str, quiet: Duration) {
        self.expect_no(&format!("`{ty}` frame"), |f| is(f, ty), quiet)
            .await;
    }

    /// Nothing at all arrives (or is pending) within `quiet`, and the socket stays open.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        self.expect_no("frame at all", |_| true, quiet).await;
        assert!(self.closed.is_none(), "socket closed: {:?}", self.closed);
    }

    /// Waits for the connection to end and returns the close code and reason (1006 when the
    /// connection was lost without a close frame). Frames before it are kept in `pending`.
    pub async fn expect_close(&mut self, timeout: Duration) -> (u16, String) {
        let deadline = Instant::now() + timeout;
        while self.closed.is_none() {
            match self.read_frame(deadline).await {
                Some(v) => self.pending.push_back(v),
                None if self.closed.is_none() => panic!(
                    "expected the server to close within {timeout:?}; pending: {:?}",
                    self.pending
                ),
                None => {}
            }
        }
        self.closed.clone().expect("closed")
    }

    /// Reads until `sync_done` (§5.3). Durable frames (with `seq`) before it are the backlog;
    /// ephemeral ones go to `pending`. Checks the `sync_done` shape.
    pub async fn sync(&mut self) -> SyncDone {
        self.sync_within(WAIT).await
    }

    pub async fn sync_within(&mut self, timeout: Duration) -> SyncDone {
        let deadline = Instant::now() + timeout;
        let mut backlog = Vec::new();
        let mut other = Vec::new();
        loop {
            let next = match self.pending.pop_front() {
                Some(v) => Some(v),
                None => self.read_frame(deadline).await,
            };
            let Some(v) = next else {
                panic!(
                    "expected sync_done within {timeout:?}; closed: {:?}; got {} durable frames, others: {other:?}",
                    self.closed,
                    backlog.len()
                );
            };
            if is(&v, "sync_done") {
                assert!(v.get("seq").is_none(), "sync_done is ephemeral: {v}");
                super::realtime::assert_ts(&v["ts"]);
                let count = v["count"].as_i64().expect("sync_done.count");
                let last_seq = v["last_seq"].as_i64().expect("sync_done.last_seq");
                self.pending.extend(other);
                return SyncDone {
                    count,
                    last_seq,
                    backlog,
                };
            }
            if v.get("seq").is_some() {
                backlog.push(v);
            } else {
                other.push(v);
            }
        }
    }

    /// `ack_received` with `up_to_seq`.
    pub async fn ack_up_to(&mut self, seq: i64) {
        self.send_json(&json!({"type": "ack_received", "up_to_seq": seq}))
            .await;
    }

    /// Acks every durable frame received so far (nothing when none was).
    pub async fn ack_all(&mut self) {
        if self.max_seq > 0 {
            self.ack_up_to(self.max_seq).await;
        }
    }

    /// `ping` → the next `pong`. Frames are processed in order, so this also means every earlier
    /// frame of this socket has been handled.
    pub async fn ping(&mut self) -> Value {
        self.send_json(&json!({"type": "ping"})).await;
        let pong = self.recv_type("pong", WAIT).await;
        assert!(pong.get("seq").is_none(), "pong is ephemeral: {pong}");
        pong
    }

    /// Acks all, waits until the server has handled it, then closes.
    pub async fn ack_and_close(mut self) {
        self.ack_all().await;
        self.ping().await;
        self.close().await;
    }

    /// Closes the socket and waits (briefly) for the server's side of the close handshake.
    pub async fn close(mut self) {
        if self.closed.is_some() {
            return;
        }
        let _ = self.ws.close(None).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.closed.is_none() {
            if self.read_frame(deadline).await.is_none() && self.closed.is_none() {
                break;
            }
        }
    }
}
