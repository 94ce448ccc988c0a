//! The bare relay: a yardstick for the delivery path. The same HTTP and WebSocket stack as Melo
//! (hyper 1 with upgrades, tokio-tungstenite) relaying DMs between sockets, with no
//! authentication, no storage, no queue and no receipts. What Melo costs per message above this is
//! what its features cost; what this costs is the floor of the stack on the box.
//!
//! ```text
//! cargo run --release --example bare_relay -- --addr 127.0.0.1:8090 &
//! cargo run --release --example loadgen -- --bare --url http://127.0.0.1:8090 --pairs 100 \
//!   --duration 10 --window 4 --payload 64 --pid $!
//! ```
//!
//! A client connects with `GET /ws?uid=NNNNNNNN` (any `u32`; a second socket with the same uid
//! takes its place) and gets `{"type":"sync_done"}` once it is registered. It sends
//! `{"type":"relay","target":"<uid>","payload":"…","client_id":"…"}`; the target's socket gets
//! `{"seq":N,"type":"relay_delivery","message_id":"<32 hex>","from":"<uid>","to":"<uid>",
//! "payload":"…","ts":"…"}` (`seq` counts up per receiving socket) and the sender
//! `{"type":"msg_status","message_id":…,"status":"queued","from":…,"to":…,"client_id":…,"ts":…}`,
//! or an `error` frame when the target has no socket. `ack_received` and every other frame are
//! read and ignored.
//!
//! Each socket has one task, as in Melo: it reads the client's frames and a bounded queue (1024)
//! of deliveries for it, feeds every frame that is ready and flushes once.

#![allow(clippy::print_stdout)]

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use bytes::{BufMut, Bytes, BytesMut};
use dashmap::DashMap;
use futures_util::{SinkExt, StreamExt};
use http::{header, Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use melo::model::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

/// Deliveries queued per socket.
const QUEUE: usize = 1024;
/// Largest frame read or written (Melo's default too).
const MAX_FRAME: usize = 64 * 1024;

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Every open socket: its uid and the queue of deliveries for it (without `seq`).
type Sockets = Arc<DashMap<u32, mpsc::Sender<Bytes>>>;

/// Message ids: a per-process prefix and a counter, as 32 hex digits.
struct Ids {
    prefix: u64,
    next: AtomicU64,
}

impl Ids {
    fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}{n:016x}", self.prefix)
    }
}

struct Relay {
    sockets: Sockets,
    ids: Ids,
}

/// A client frame: only `relay` is acted on.
#[derive(Deserialize)]
struct ClientFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    target: Option<Text<'a>>,
    #[serde(borrow, default)]
    payload: Option<Text<'a>>,
    #[serde(borrow, default)]
    client_id: Option<Text<'a>>,
}

/// A JSON string, borrowed unless it holds escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// `relay_delivery`, without `seq` (the receiving socket puts it in front).
#[derive(Serialize)]
struct Delivery<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message_id: &'a str,
    from: &'a str,
    to: &'a str,
    payload: &'a str,
    ts: Timestamp,
}

/// The `queued` answer to the sender.
#[derive(Serialize)]
struct Queued<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message_id: &'a str,
    status: &'static str,
    from: &'a str,
    to: &'a str,
    client_id: Option<&'a str>,
    ts: Timestamp,
}

fn to_bytes<T: Serialize>(frame: &T) -> Bytes {
    serde_json::to_vec(frame)
        .map(Bytes::from)
        .unwrap_or_else(|_| {
            Bytes::from_static(
                br#"{"type":"error","reason":"internal_error","message":"serialization failed"}"#,
            )
        })
}

fn error_frame(message: &str) -> Bytes {
    let v = serde_json::json!({"type": "error", "reason": "invalid_frame", "message": message});
    Bytes::from(v.to_string())
}

/// `{"seq":N,` in front of a frame built without it.
fn with_seq(frame: &[u8], seq: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(frame.len() + 24);
    b.put_slice(b"{\"seq\":");
    b.put_slice(seq.to_string().as_bytes());
    b.put_u8(b',');
    b.put_slice(frame.get(1..).unwrap_or(b"}"));
    b.freeze()
}

fn text(frame: Bytes) -> Option<Message> {
    Utf8Bytes::try_from(frame).ok().map(Message::Text)
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(4 * MAX_FRAME)
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME))
}

/// The socket task: client frames in, queued deliveries out, one flush per burst.
async fn socket(relay: Arc<Relay>, mut ws: Socket, uid: u32) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
    relay.sockets.insert(uid, tx.clone());
    let me = uid.to_string();
    let mut seq = 0u64;
    let mut ok = match text(Bytes::from_static(br#"{"type":"sync_done"}"#)) {
        Some(m) => ws.send(m).await.is_ok(),
        None => false,
    };
    while ok {
        let step = tokio::select! {
            out = rx.recv() => match out {
                Some(frame) => {
                    seq += 1;
                    feed(&mut ws, with_seq(&frame, seq)).await
                }
                None => false,
            },
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => match on_text(&relay, &me, t.as_str()).await {
                    Some(answer) => feed(&mut ws, answer).await,
                    None => true,
                },
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => false,
                Some(Ok(_)) => true,
            },
        };
        ok = step;
        // Whatever else is queued leaves with the same flush.
        while ok {
            let Ok(frame) = rx.try_recv() else { break };
            seq += 1;
            ok = feed(&mut ws, with_seq(&frame, seq)).await;
        }
        ok = ok && ws.flush().await.is_ok();
    }
    // Unregister unless a newer socket of the same uid took the slot.
    relay
        .sockets
        .remove_if(&uid, |_, current| current.same_channel(&tx));
}

async fn feed(ws: &mut Socket, frame: Bytes) -> bool {
    match text(frame) {
        Some(m) => ws.feed(m).await.is_ok(),
        None => true,
    }
}

/// Handles one client frame; the answer for the client's own socket, if any.
async fn on_text(relay: &Relay, me: &str, raw: &str) -> Option<Bytes> {
    let Ok(f) = serde_json::from_str::<ClientFrame<'_>>(raw) else {
        return Some(error_frame("not a frame"));
    };
    if f.kind != "relay" {
        return None; // ack_received and anything else
    }
    let (Some(target), Some(payload)) = (&f.target, &f.payload) else {
        return Some(error_frame("relay needs target and payload"));
    };
    let Ok(to) = target.0.parse::<u32>() else {
        return Some(error_frame("target is not a uid"));
    };
    // Clone the queue out of the map: no shard lock across the await.
    let Some(queue) = relay.sockets.get(&to).map(|q| q.clone()) else {
        return Some(error_frame("target has no socket"));
    };
    let id = relay.ids.next();
    let ts = Timestamp::now();
    let delivery = to_bytes(&Delivery {
        kind: "relay_delivery",
        message_id: &id,
        from: me,
        to: &target.0,
        payload: &payload.0,
        ts,
    });
    if queue.send(delivery).await.is_err() {
        return Some(error_frame("target socket closed"));
    }
    Some(to_bytes(&Queued {
        kind: "msg_status",
        message_id: &id,
        status: "queued",
        from: me,
        to: &target.0,
        client_id: f.client_id.as_ref().map(|c| c.0.as_ref()),
        ts,
    }))
}

type Body = Empty<Bytes>;

fn status(code: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::new());
    *r.status_mut() = code;
    r
}

/// `GET /ws?uid=N` with a WebSocket upgrade; anything else is refused.
async fn handle(
    relay: Arc<Relay>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    if req.uri().path() != "/ws" {
        return Ok(status(StatusCode::NOT_FOUND));
    }
    let uid = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("uid=")))
        .and_then(|v| v.parse::<u32>().ok());
    let key = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned();
    let (Some(uid), Some(key)) = (uid, key) else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return Ok(status(StatusCode::UPGRADE_REQUIRED));
    };
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config()))
                .await;
        socket(relay, ws, uid).await;
    });
    let mut resp = status(StatusCode::SWITCHING_PROTOCOLS);
    let h = resp.headers_mut();
    h.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    Ok(resp)
}

fn parse_addr() -> Result<SocketAddr> {
    let mut addr = "127.0.0.1:8090".to_owned();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--addr" => addr = it.next().ok_or_else(|| anyhow!("--addr needs a value"))?,
            "--help" | "-h" => {
                println!("usage: bare_relay [--addr 127.0.0.1:8090]");
                std::process::exit(0);
            }
            other => bail!("unknown flag {other}\nusage: bare_relay [--addr 127.0.0.1:8090]"),
        }
    }
    addr.parse().with_context(|| format!("--addr {addr}"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let addr = parse_addr()?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    println!("bare relay listening on http://{}", listener.local_addr()?);
    let relay = Arc::new(Relay {
        sockets: Arc::new(DashMap::new()),
        ids: Ids {
            prefix: rand::random(),
            next: AtomicU64::new(1),
        },
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (relay, builder) = (relay.clone(), builder.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(relay.clone(), req));
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .await;
        });
    }
}
