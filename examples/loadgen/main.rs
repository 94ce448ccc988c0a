//! Load generator for a running Melo server: many WebSocket clients over loopback, closed-loop DM
//! traffic between pairs of contacts, and one JSON line of results.
//!
//! It registers `2 × pairs` users, makes each pair accepted contacts, opens one socket per user
//! (plus `--idle` extra authenticated sockets that only hold a connection), waits for every
//! `sync_done`, then for `--duration` seconds each sender keeps up to `--window` `relay` frames in
//! flight to its receiver, which acknowledges with batched `ack_received up_to_seq`. Latency is
//! measured from send to the receiver reading `relay_delivery` (the send instant travels in the
//! payload). The run stops by itself: senders stop at the deadline, receivers drain for at most
//! 5 more seconds.
//!
//! The server must allow the burst — run it with, for example:
//!
//! ```text
//! RATE_LIMIT_CALLS=1000000 WS_MAX_CONNECTIONS_PER_IP=1000000 WS_RATE_LIMIT_MESSAGES=100000000 \
//!   BCRYPT_COST=4 cargo run --release &
//! cargo run --release --example loadgen -- --url http://127.0.0.1:8088 --pairs 100 \
//!   --duration 10 --window 32 --payload 64 --idle 0 --pid $!
//! ```
//!
//! * `RATE_LIMIT_CALLS=1000000`: registration, logins and contact requests all come from one IP.
//! * `WS_MAX_CONNECTIONS_PER_IP` large: every socket comes from loopback (above 20,000 sockets the
//!   client spreads its source addresses over 127.0.0.0/8, 20,000 per address).
//! * `WS_RATE_LIMIT_MESSAGES` large: each sender sends far more than 100 frames a minute.
//! * `BCRYPT_COST=4`: every registration and login hashes a password.
//! * Both processes need `ulimit -n` above the number of sockets.
//!
//! Output (one JSON object on stdout): `pairs`, `duration_s`, `delivered` (deliveries within the
//! run), `msgs_per_s`, `latency_ms` `{p50, p99, max}`, `connections`, `server_rss_kb` (VmRSS of
//! `--pid` with every socket open, else null), `server_rss_base_kb` (before any socket was opened)
//! and `rss_per_conn_kb` = (`server_rss_kb` − `server_rss_base_kb`) / `connections`, plus
//! `errors` (error frames and lost sockets) and `setup_s`.
//!
//! Several nodes: `--url2` puts the receivers on a second node; `--url3` adds a third, and then
//! pair `i` has its sender on node `i mod 3` and its receiver on node `(i + 1) mod 3`. `--pid`
//! takes every node's pid (comma-separated): CPU and RSS are summed. `--redis host:port` (the
//! Redis the nodes share) adds `bus_messages`, the `PUBLISH`/`SPUBLISH` commands Redis ran over
//! the run, and `bus_messages_per_msg` per delivered DM (other clients of that Redis count too:
//! use one of its own). `bus_notes_received` (and `_per_msg`) sums what every node's
//! `GET /metrics` says it received from the others (`melo_bus_notes_total{direction="in"}`):
//! the copies the bus carried, which bundling into messages does not hide.
//!
//! CPU per delivered message: with `--pid`, `utime + stime` of `/proc/<pid>/stat` is sampled when
//! the senders start and again at the end of the run, the span over which `delivered` counts;
//! `server_cpu_s` is the server's CPU seconds over it and `server_cpu_us_per_msg` the CPU µs per
//! delivered message. `loadgen_cpu_s` and `loadgen_cpu_us_per_msg` are the same for the generator
//! itself (`/proc/self/stat`, always reported): on a small box it shares the cores with the
//! server. `--pid` must name the server process itself (`cargo run` execs the server in its own
//! place on Unix, so `$!` after `cargo run … &` does). To take as little of the box as it can, the
//! generator reads frames into small borrowed structs (no `serde_json::Value` per frame) and
//! writes them with typed structs.
//!
//! `--group N [--online M] [--rate R]` measures fan-out in a group chat instead (`group.rs`).
//!
//! `--bare` measures the yardstick, `examples/bare_relay.rs` (hyper + tokio-tungstenite relaying
//! DMs with no authentication and no storage), instead of Melo: no HTTP setup (no registration,
//! contacts or logins), socket `i` connects to `ws://ADDR/ws?uid=<10000001 + i>` (`--url`
//! defaults to `http://127.0.0.1:8090`), and the same DM traffic runs with the same report,
//! CPU figures included:
//!
//! ```text
//! cargo run --release --example bare_relay &
//! cargo run --release --example loadgen -- --bare --pairs 100 --duration 10 --window 4 \
//!   --payload 64 --pid $!
//! ```

#![allow(clippy::print_stdout)]

use std::fmt::Write as _;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;

/// Setup requests in flight at once.
const SETUP_CONCURRENCY: usize = 64;
/// Sockets per loopback source address.
const PER_SOURCE: usize = 20_000;
/// Every network step of the setup gives up after this long.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long receivers may drain after the senders stopped.
const DRAIN: Duration = Duration::from_secs(5);
/// Digits of the send instant at the start of each payload.
const STAMP: usize = 20;
/// `--bare`: the uid of the first socket (the others count up from it).
const BARE_FIRST_UID: u32 = 10_000_001;

mod args;
mod cpu;
mod frames;
mod group;
mod probe;
mod setup;

use args::parse_args;
use cpu::CpuWindow;
use frames::{ack, Frame, Relay};
use probe::{bus_notes_received, redis_publishes, rss_sum_kb};
use setup::{make_contacts, melo_users, register, Api};

/// Runs `f(0..count)` with at most `limit` in flight; results in index order.
async fn bounded<T, F, Fut>(count: usize, limit: usize, f: F) -> Result<Vec<T>>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let sem = Arc::new(Semaphore::new(limit));
    let mut set = JoinSet::new();
    for i in 0..count {
        let permit = sem.clone().acquire_owned().await?;
        let fut = f(i);
        set.spawn(async move {
            let r = fut.await;
            drop(permit);
            (i, r)
        });
    }
    let mut out: Vec<Option<T>> = (0..count).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (i, r) = joined?;
        out[i] = Some(r?);
    }
    out.into_iter()
        .map(|o| o.ok_or_else(|| anyhow!("a task did not report")))
        .collect()
}

// ---- WebSocket -----------------------------------------------------------------------------

/// The source address of the `i`-th socket: spread over 127.0.0.0/8 for large runs on loopback.
fn source_for(i: usize, server: IpAddr, total: usize) -> Option<Ipv4Addr> {
    if !server.is_loopback() || total <= PER_SOURCE {
        return None;
    }
    let block = i / PER_SOURCE;
    Some(Ipv4Addr::new(
        127,
        (block / 62_500) as u8,
        (block / 250 % 250) as u8,
        (block % 250 + 1) as u8,
    ))
}

/// How a socket says who it is.
#[derive(Clone)]
enum Login {
    /// Melo: an access token (`Authorization: Bearer`) on `/ws`.
    Token(String),
    /// The bare relay: `/ws?uid=`.
    Uid(u32),
}

/// Opens `/ws`, reads up to `sync_done`, and acks whatever was queued.
async fn ws_open(addr: SocketAddr, login: Login, source: Option<Ipv4Addr>) -> Result<Ws> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        sock.bind(SocketAddr::new(IpAddr::V4(ip), 0))
            .with_context(|| format!("binding source address {ip}"))?;
    }
    let stream = timeout(STEP_TIMEOUT, sock.connect(addr))
        .await
        .context("connect timed out")??;
    stream.set_nodelay(true)?;
    let req = match login {
        Login::Token(token) => {
            let mut req = format!("ws://{addr}/ws").into_client_request()?;
            req.headers_mut()
                .insert("authorization", format!("Bearer {token}").parse()?);
            req
        }
        Login::Uid(uid) => format!("ws://{addr}/ws?uid={uid}").into_client_request()?,
    };
    // Small read buffers keep thousands of idle client sockets cheap.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (mut ws, _) = timeout(
        STEP_TIMEOUT,
        tokio_tungstenite::client_async_with_config(req, stream, Some(config)),
    )
    .await
    .context("WebSocket handshake timed out")??;
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut max_seq = 0;
    loop {
        let msg = timeout_at(deadline, ws.next())
            .await
            .context("no sync_done")?
            .ok_or_else(|| anyhow!("socket closed before sync_done"))??;
        match msg {
            Message::Text(t) => {
                let f: Frame<'_> = serde_json::from_str(t.as_str())?;
                if let Some(s) = f.seq {
                    max_seq = max_seq.max(s);
                    // A backlog longer than the server's window needs acks to reach sync_done.
                    if s % 128 == 0 {
                        ws.send(ack(max_seq)).await?;
                    }
                }
                if f.kind == "sync_done" {
                    break;
                }
            }
            Message::Close(c) => bail!("socket closed before sync_done: {c:?}"),
            _ => {}
        }
    }
    if max_seq > 0 {
        ws.send(ack(max_seq)).await?;
    }
    Ok(ws)
}

// ---- the run -------------------------------------------------------------------------------

struct Shared {
    start: Instant,
    run_end: Instant,
    errors: AtomicU64,
    payload: usize,
}

fn payload(shared: &Shared) -> String {
    let nanos = shared.start.elapsed().as_nanos();
    let mut p = String::with_capacity(shared.payload.max(STAMP));
    let _ = write!(p, "{nanos:0width$}", width = STAMP);
    p.extend(std::iter::repeat_n('.', shared.payload - STAMP));
    p
}

/// Reads the sender's socket: tracks the highest `seq` (statuses to acknowledge) and errors.
async fn sender_reader(mut rx: SplitStream<Ws>, max_seq: Arc<AtomicI64>, shared: Arc<Shared>) {
    while let Some(msg) = rx.next().await {
        match msg {
            Ok(Message::Text(t)) => {
                let Ok(f) = serde_json::from_str::<Frame<'_>>(t.as_str()) else {
                    continue;
                };
                if let Some(s) = f.seq {
                    max_seq.fetch_max(s, Ordering::Relaxed);
                }
                if f.kind == "error" {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

async fn sender(
    mut tx: SplitSink<Ws, Message>,
    max_seq: Arc<AtomicI64>,
    target: String,
    window: Arc<Semaphore>,
    shared: Arc<Shared>,
) {
    let mut n: u64 = 0;
    let mut acked = 0;
    let mut client_id = String::new();
    while Instant::now() < shared.run_end {
        let slot = timeout(Duration::from_millis(50), window.acquire()).await;
        let idle = slot.is_err();
        if let Ok(Ok(permit)) = slot {
            permit.forget();
            n += 1;
            client_id.clear();
            let _ = write!(client_id, "lg-{n}");
            let frame = Relay {
                kind: "relay",
                target: Some(&target),
                chat_id: None,
                payload: &payload(&shared),
                client_id: &client_id,
            }
            .message();
            let Ok(frame) = frame else {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                return;
            };
            if tx.send(frame).await.is_err() {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let seq = max_seq.load(Ordering::Relaxed);
        if seq > acked && (n % 32 == 0 || idle) {
            if tx.send(ack(seq)).await.is_err() {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
            acked = seq;
        }
    }
    let seq = max_seq.load(Ordering::Relaxed);
    if seq > acked {
        let _ = tx.send(ack(seq)).await;
    }
}

struct Received {
    latencies_us: Vec<u64>,
    in_window: u64,
}

async fn receiver(
    mut ws: Ws,
    window: Arc<Semaphore>,
    window_size: usize,
    shared: Arc<Shared>,
) -> Received {
    let mut out = Received {
        latencies_us: Vec::new(),
        in_window: 0,
    };
    let hard_end = shared.run_end + DRAIN;
    let (mut max_seq, mut acked) = (0i64, 0i64);
    loop {
        let now = Instant::now();
        if now >= hard_end || (now >= shared.run_end && window.available_permits() >= window_size) {
            break;
        }
        let next = timeout(Duration::from_millis(20), ws.next()).await;
        match next {
            Ok(Some(Ok(Message::Text(t)))) => {
                let at = Instant::now();
                let Ok(f) = serde_json::from_str::<Frame<'_>>(t.as_str()) else {
                    continue;
                };
                if let Some(s) = f.seq {
                    max_seq = max_seq.max(s);
                }
                if f.kind == "relay_delivery" {
                    if let Some(nanos) = f.stamp() {
                        let sent_at = shared.start + Duration::from_nanos(nanos);
                        out.latencies_us
                            .push(at.saturating_duration_since(sent_at).as_micros() as u64);
                    }
                    if at < shared.run_end {
                        out.in_window += 1;
                    }
                    window.add_permits(1);
                } else if f.kind == "error" {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                }
                if max_seq - acked >= 32 {
                    if ws.send(ack(max_seq)).await.is_err() {
                        break;
                    }
                    acked = max_seq;
                }
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                break;
            }
            Ok(Some(Ok(_))) => {}
            Err(_) => {
                if max_seq > acked {
                    if ws.send(ack(max_seq)).await.is_err() {
                        break;
                    }
                    acked = max_seq;
                }
            }
        }
    }
    if max_seq > acked {
        let _ = ws.send(ack(max_seq)).await;
    }
    out
}

fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn percentile(sorted: &[u64], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = (sorted.len() * p / 100).min(sorted.len() - 1);
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    for pid in &args.pids {
        cpu::check_pid(*pid);
    }
    let setup_start = Instant::now();
    let authority = args
        .url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("--url must start with http:// (TLS is not supported here)"))?;
    let addr = tokio::net::lookup_host(authority)
        .await?
        .next()
        .ok_or_else(|| anyhow!("{authority}: no address"))?;
    // Other nodes: with --url2 alone, receivers connect to it (senders and setup stay on the
    // first); with --url3 too, pair i's sender is on node i mod 3 and its receiver on the next.
    let mut nodes = vec![addr];
    for (flag, u) in [("--url2", &args.url2), ("--url3", &args.url3)] {
        if let Some(u) = u {
            let authority = u
                .strip_prefix("http://")
                .ok_or_else(|| anyhow!("{flag} must start with http://"))?;
            nodes.push(
                tokio::net::lookup_host(authority)
                    .await?
                    .next()
                    .ok_or_else(|| anyhow!("{authority}: no address"))?,
            );
        }
    }
    let connections = 2 * args.pairs + args.idle;
    if let Some(limit) = open_file_limit() {
        if limit < connections + 64 {
            eprintln!("warning: open-file limit {limit} < {connections} sockets; raise ulimit -n");
        }
    }
    // Who each socket is (senders 0..pairs, receivers pairs..2·pairs, then idle sockets), and
    // each receiver's uid for its sender to target.
    let (logins, targets): (Vec<Login>, Vec<String>) = if args.bare {
        let uid = |i: usize| BARE_FIRST_UID + i as u32;
        (
            (0..connections).map(|i| Login::Uid(uid(i))).collect(),
            (args.pairs..2 * args.pairs)
                .map(|i| uid(i).to_string())
                .collect(),
        )
    } else {
        let api = Api {
            base: args.url.clone(),
            http: Client::builder(TokioExecutor::new()).build_http(),
        };
        let pem = Arc::new({
            use rsa::pkcs8::{EncodePublicKey, LineEnding};
            rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048)?
                .to_public_key()
                .to_public_key_pem(LineEnding::LF)
                .map_err(|e| anyhow!("encoding the E2E key: {e}"))?
        });
        if args.group > 0 {
            return group::run(&args, api, addr, pem).await;
        }
        melo_users(&args, api, pem).await?
    };

    let rss_base = rss_sum_kb(&args.pids);
    let nodes = Arc::new(nodes);
    let mut sockets = bounded(connections, SETUP_CONCURRENCY * 4, |i| {
        let login = logins[i].clone();
        let n = nodes.len();
        let node = match (n, i) {
            (1, _) => nodes[0],
            (2, i) if (args.pairs..2 * args.pairs).contains(&i) => nodes[1],
            (2, _) => nodes[0],
            (_, i) if i < args.pairs => nodes[i % n],
            (_, i) if i < 2 * args.pairs => nodes[(i - args.pairs + 1) % n],
            (_, i) => nodes[i % n],
        };
        async move { ws_open(node, login, source_for(i, node.ip(), connections)).await }
    })
    .await
    .context("opening sockets")?;
    // Idle sockets only answer pings until the process exits.
    for mut ws in sockets.split_off(2 * args.pairs) {
        tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
    }
    let receiver_ws = sockets.split_off(args.pairs);
    let setup_s = setup_start.elapsed().as_secs_f64();

    let start = Instant::now();
    let shared = Arc::new(Shared {
        start,
        run_end: start + Duration::from_secs(args.duration),
        errors: AtomicU64::new(0),
        payload: args.payload,
    });
    // CPU over [start, run_end): the span in which `delivered` counts deliveries.
    let cpu = CpuWindow::start(args.pids.clone(), shared.run_end);
    let node_urls: Vec<String> = std::iter::once(args.url.clone())
        .chain(args.url2.clone())
        .chain(args.url3.clone())
        .collect();
    let notes_before = if args.bare {
        None
    } else {
        bus_notes_received(&node_urls).await
    };
    let publishes_before = match &args.redis {
        Some(r) => Some(redis_publishes(r).await?),
        None => None,
    };
    let mut receiving = JoinSet::new();
    for ((ws_s, ws_r), target) in sockets.into_iter().zip(receiver_ws).zip(targets) {
        let window = Arc::new(Semaphore::new(args.window));
        let (tx, rx) = ws_s.split();
        let max_seq = Arc::new(AtomicI64::new(0));
        tokio::spawn(sender_reader(rx, max_seq.clone(), shared.clone()));
        tokio::spawn(sender(tx, max_seq, target, window.clone(), shared.clone()));
        receiving.spawn(receiver(ws_r, window, args.window, shared.clone()));
    }
    let mut latencies = Vec::new();
    let mut delivered = 0u64;
    while let Some(r) = receiving.join_next().await {
        let r = r?;
        delivered += r.in_window;
        latencies.extend(r.latencies_us);
    }
    let rss = rss_sum_kb(&args.pids);
    let notes_in = match notes_before {
        Some(before) => bus_notes_received(&node_urls)
            .await
            .map(|after| after.saturating_sub(before)),
        None => None,
    };
    let bus_messages = match (&args.redis, publishes_before) {
        (Some(r), Some(before)) => Some(redis_publishes(r).await?.saturating_sub(before)),
        _ => None,
    };
    let cpu = cpu.finish();
    let (server_per_msg, own_per_msg) = cpu.per_msg(delivered);
    latencies.sort_unstable();
    let per_conn = match (rss, rss_base) {
        (Some(end), Some(base)) => {
            Some((end.saturating_sub(base)) as f64 / connections.max(1) as f64)
        }
        _ => None,
    };
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    let report = json!({
        "pairs": args.pairs,
        "duration_s": args.duration,
        "delivered": delivered,
        "msgs_per_s": round(delivered as f64 / args.duration as f64),
        "latency_ms": {
            "p50": round(percentile(&latencies, 50)),
            "p99": round(percentile(&latencies, 99)),
            "max": round(latencies.last().map_or(0.0, |&m| m as f64 / 1000.0)),
        },
        "connections": connections,
        "server_rss_kb": rss,
        "server_rss_base_kb": rss_base,
        "rss_per_conn_kb": per_conn.map(round),
        "errors": shared.errors.load(Ordering::Relaxed),
        "setup_s": round(setup_s),
        "server_cpu_s": cpu.server_s.map(round),
        "server_cpu_us_per_msg": server_per_msg.map(round),
        "loadgen_cpu_s": cpu.own_s.map(round),
        "loadgen_cpu_us_per_msg": own_per_msg.map(round),
        "nodes": nodes.len(),
        "bus_messages": bus_messages,
        "bus_messages_per_msg": bus_messages
            .filter(|_| delivered > 0)
            .map(|b| round(b as f64 / delivered as f64)),
        "bus_notes_received": notes_in,
        "bus_notes_received_per_msg": notes_in
            .filter(|_| delivered > 0)
            .map(|n| round(n as f64 / delivered as f64)),
    });
    println!("{report}");
    Ok(())
}
