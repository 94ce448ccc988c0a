//! SIGKILL crash test over real processes (DESIGN guarantee 1, PROTOCOL §5.3): the example binary
//! is killed with SIGKILL at random moments while a sender keeps a window of DMs in flight and
//! the recipient is online, and restarted on the same data (working directory, `MELO_DATA_DIR`
//! and keys, `DB_URL`) each time. At the end every message answered `queued` has reached the
//! recipient; within each connection durable frames come in strictly increasing `seq`; a frame
//! received but not acknowledged is replayed, with the same `seq` and `message_id`, on the next
//! connection; a resend with the same `client_id` is answered with the first `message_id`; and
//! nothing arrives that was never sent.
//!
//! Backends: SQLite always; MySQL + Redis when `MELO_TEST_MYSQL_URL` and `MELO_TEST_REDIS_URL`
//! are set (CI). Unset: skipped with a note; set but unreachable: the test fails.
//!
//! The random choices (kill delays, ack policies) come from one seed, printed at the start;
//! `MELO_CRASH_SEED=<n>` repeats them (the timing of the processes still varies).

// The fresh-database guard of the audit test; this file uses only part of it.
#[allow(dead_code, unreachable_pub)]
#[path = "zk_audit/backends.rs"]
mod backends;
mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::binary::{start_with, stop, Server};
use common::realtime::{make_contacts, Target};
use common::ws::{is, WsClient};
use common::{new_user, User};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;

/// SIGKILLs per backend.
const KILLS: usize = 12;
/// A kill comes this many milliseconds into a round: after the (re)started server announced its
/// address and both clients' tasks started.
const KILL_AFTER_MS: std::ops::RangeInclusive<u64> = 50..=900;
/// `relay` frames the sender keeps in flight without an answer.
const WINDOW: usize = 8;
/// In most rounds the sender stays at most this many messages ahead of what the recipient has
/// received, so that the recipient is mostly live; in the others (`UNTHROTTLED_ONE_IN`) it
/// sends as fast as the server answers, and the backlog grows past the server's window.
const LEAD: usize = 48;
const UNTHROTTLED_ONE_IN: u32 = 3;
/// The sender acks its durable frames (`delivered` statuses) every this many.
const SENDER_ACK_EVERY: usize = 16;
/// Ack policies of the recipient, one drawn per connection: `ack_received` with `up_to_seq`
/// after every this many durable frames (200: hardly ever before a kill, so that a kill leaves
/// many frames unacknowledged and the replay is exercised; below the server's window of 256).
const RECIPIENT_ACK_EVERY: [usize; 5] = [1, 3, 8, 32, 200];
/// Only to keep a broken run from hanging: never a statement about speed.
const GENEROUS: Duration = Duration::from_secs(30);

/// The fixture: any free port, limits out of the way (a socket sends hundreds of frames).
const FIXTURE: &str = "HTTP_PORT=0\nWS_PORT=0\nRATE_LIMIT_CALLS=100000\nFAILED_LOGIN_LIMIT=1000\n\
                       FAILED_LOGIN_IP_LIMIT=100000\nBCRYPT_COST=4\n\
                       WS_RATE_LIMIT_MESSAGES=10000000\nWS_RATE_LIMIT_GRACE=1000\n\
                       QUEUE_MAX=1000000\n";

fn payload_of(cid: &str) -> String {
    format!("crash-payload-of-{cid}")
}

fn cid_of(payload: &str) -> Option<&str> {
    payload.strip_prefix("crash-payload-of-")
}

// ---- the sender -----------------------------------------------------------------------------

/// A's side: what was sent, what was answered.
struct Sender {
    user: User,
    target: String,
    /// The next new `client_id` is `c-{next}`.
    next: u64,
    /// Sent, not answered yet (in send order): resent after a reconnection.
    in_flight: Vec<String>,
    /// Every `client_id` answered `queued`, with its `message_id`.
    queued: HashMap<String, String>,
    by_id: HashMap<String, String>,
    /// Answered `client_id`s resent once after a reconnection: must come back `duplicate`.
    probes: HashSet<String>,
    fresh: u64,
    duplicates: u64,
    resent: u64,
    probes_answered: u64,
    connections: u64,
    /// How many distinct messages the recipient has received (for the throttle).
    received: Arc<AtomicUsize>,
    violations: Vec<String>,
}

impl Sender {
    fn new(user: User, target: &User, received: Arc<AtomicUsize>) -> Self {
        Self {
            user,
            target: target.uid.clone(),
            next: 0,
            in_flight: Vec::new(),
            queued: HashMap::new(),
            by_id: HashMap::new(),
            probes: HashSet::new(),
            fresh: 0,
            duplicates: 0,
            resent: 0,
            probes_answered: 0,
            connections: 0,
            received,
            violations: Vec::new(),
        }
    }

    /// Room for another new message under the throttle.
    fn may_send(&self, throttled: bool) -> bool {
        self.in_flight.len() < WINDOW
            && (!throttled
                || self.queued.len() + self.in_flight.len()
                    < self.received.load(Ordering::Relaxed) + LEAD)
    }

    async fn send(&self, ws: &mut WsClient, cid: &str) -> bool {
        let frame = json!({"type": "relay", "target": self.target, "payload": payload_of(cid),
                           "client_id": cid});
        ws.try_send_text(frame.to_string()).await.is_ok()
    }

    /// A `msg_status queued` reply (ephemeral: no `seq`).
    fn answer(&mut self, f: &Value) {
        let cid = f["client_id"].as_str().unwrap_or_default().to_owned();
        let id = f["message_id"].as_str().unwrap_or_default().to_owned();
        let duplicate = f["duplicate"] == true;
        if f["status"] != "queued" || id.len() != 32 {
            self.violations
                .push(format!("a relay was answered other than queued: {f}"));
            return;
        }
        if let Some(i) = self.in_flight.iter().position(|c| *c == cid) {
            self.in_flight.remove(i);
            if let Some(other) = self.by_id.get(&id) {
                self.violations.push(format!(
                    "client_id {cid} answered with message_id {id}, already the answer to {other}: {f}"
                ));
            }
            self.queued.insert(cid.clone(), id.clone());
            self.by_id.insert(id, cid);
            if duplicate {
                self.duplicates += 1;
            } else {
                self.fresh += 1;
            }
        } else if self.probes.remove(&cid) {
            self.probes_answered += 1;
            let first = self.queued.get(&cid).cloned().unwrap_or_default();
            if !duplicate || id != first {
                self.violations.push(format!(
                    "a resend of client_id {cid} (first answered {first}) was answered {f}"
                ));
            }
        } else {
            self.violations
                .push(format!("an answer to a client_id not in flight: {f}"));
        }
    }

    /// One connection: resends what is in flight, probes one answered `client_id`, then keeps
    /// the window full until the connection dies (`graceful`: sends nothing new, returns once
    /// everything is answered).
    async fn round(mut self, http: SocketAddr, graceful: bool, throttled: bool) -> Self {
        let Ok(mut ws) =
            WsClient::try_connect(http, "/ws", Some(&self.user.token), true, None).await
        else {
            return self;
        };
        self.connections += 1;
        for cid in self.in_flight.clone() {
            if !self.send(&mut ws, &cid).await {
                return self;
            }
            self.resent += 1;
        }
        // The latest answered client_id, sent again: nothing new may be stored.
        let latest = self
            .queued
            .keys()
            .filter_map(|c| Some((c.strip_prefix("c-")?.parse::<u64>().ok()?, c)))
            .max()
            .map(|(_, c)| c.clone());
        if let Some(cid) = latest {
            self.probes.insert(cid.clone());
            if !self.send(&mut ws, &cid).await {
                self.probes.clear();
                return self;
            }
        }
        let mut unacked = 0;
        let deadline = Instant::now() + GENEROUS;
        loop {
            if !graceful {
                while self.may_send(throttled) {
                    let cid = format!("c-{}", self.next);
                    self.next += 1;
                    self.in_flight.push(cid.clone());
                    if !self.send(&mut ws, &cid).await {
                        self.probes.clear();
                        return self;
                    }
                }
            } else if self.in_flight.is_empty() && self.probes.is_empty() {
                if ws.max_seq > 0 {
                    ws.ack_up_to(ws.max_seq).await;
                }
                ws.ping().await;
                ws.close().await;
                return self;
            }
            if Instant::now() > deadline {
                self.violations.push(format!(
                    "no answer within {GENEROUS:?} to the relays {:?} / resends {:?}",
                    self.in_flight, self.probes
                ));
                return self;
            }
            let Some(f) = ws.recv_json(Duration::from_millis(10)).await else {
                if ws.closed.is_some() {
                    // Whatever was not answered stays in flight; a probe is not sent again.
                    self.probes.clear();
                    return self;
                }
                continue;
            };
            if is(&f, "msg_status") && f.get("seq").is_none() && f.get("client_id").is_some() {
                self.answer(&f);
            } else if is(&f, "error") {
                self.violations
                    .push(format!("an error frame on the sender's socket: {f}"));
            } else if f.get("seq").is_some() {
                unacked += 1;
                if unacked >= SENDER_ACK_EVERY {
                    unacked = 0;
                    let ack = json!({"type": "ack_received", "up_to_seq": ws.max_seq});
                    if ws.try_send_text(ack.to_string()).await.is_err() {
                        self.probes.clear();
                        return self;
                    }
                }
            }
        }
    }
}

// ---- the recipient --------------------------------------------------------------------------

/// B's side: what arrived, on which connection, and what it owes the next connection.
struct Recipient {
    user: User,
    /// message_id → (seq, payload) of every `relay_delivery` received.
    received: HashMap<String, (i64, String)>,
    /// seq → what it carried (message_id, or the frame type for other durable frames).
    by_seq: HashMap<i64, String>,
    /// Received but not covered by an `ack_received` sent: the next connection must replay them.
    owed: BTreeMap<i64, String>,
    connections: u64,
    synced_connections: u64,
    deliveries: u64,
    replays: u64,
    /// Frames replayed because they were unacknowledged when the server was killed.
    owed_replayed: u64,
    /// Frames replayed although an `ack_received` covering them had been sent (allowed: the
    /// server may not have applied it before the kill).
    acked_replayed: u64,
    /// The highest `up_to_seq` sent.
    acked_upto: i64,
    /// `received.len()`, for the sender's throttle.
    count: Arc<AtomicUsize>,
    violations: Vec<String>,
}

/// When the final connection of the recipient may end.
#[derive(Clone, Default)]
struct Finish {
    /// Every `message_id` answered `queued`, once the sender has finished.
    expected: Option<Arc<HashSet<String>>>,
}

impl Recipient {
    fn new(user: User, count: Arc<AtomicUsize>) -> Self {
        Self {
            user,
            received: HashMap::new(),
            by_seq: HashMap::new(),
            owed: BTreeMap::new(),
            connections: 0,
            synced_connections: 0,
            deliveries: 0,
            replays: 0,
            owed_replayed: 0,
            acked_replayed: 0,
            acked_upto: 0,
            count,
            violations: Vec::new(),
        }
    }

    /// One connection, acking `up_to_seq` after every `ack_every` durable frames, until it dies
    /// (`finish`: the final round; the connection ends once `sync_done` came, the sender has
    /// finished, every expected message arrived and nothing more arrives for a second).
    async fn round(
        mut self,
        http: SocketAddr,
        ack_every: usize,
        mut finish: Option<watch::Receiver<Finish>>,
    ) -> Self {
        let Ok(mut ws) =
            WsClient::try_connect(http, "/ws", Some(&self.user.token), true, None).await
        else {
            return self;
        };
        self.connections += 1;
        let conn = self.connections;
        // What the previous connections received and did not ack: replayed before sync_done.
        let mut owed_before = self.owed.clone();
        let mut last_seq = 0i64;
        let mut since_ack = 0usize;
        let mut synced = false;
        let mut last_frame = Instant::now();
        let deadline = Instant::now() + GENEROUS;
        loop {
            let Some(f) = ws.recv_json(Duration::from_millis(100)).await else {
                if ws.closed.is_some() {
                    return self;
                }
                if let Some(rx) = finish.as_mut() {
                    let expected = rx.borrow().expected.clone();
                    if let Some(expected) = expected {
                        let missing = expected
                            .iter()
                            .filter(|id| !self.received.contains_key(*id))
                            .count();
                        let quiet = last_frame.elapsed() > Duration::from_secs(1);
                        if synced && quiet && (missing == 0 || Instant::now() > deadline) {
                            if ws.max_seq > 0 {
                                ws.ack_up_to(ws.max_seq).await;
                                self.owed.retain(|s, _| *s > ws.max_seq);
                            }
                            ws.ping().await;
                            ws.close().await;
                            return self;
                        }
                    }
                }
                continue;
            };
            last_frame = Instant::now();
            if is(&f, "sync_done") {
                synced = true;
                self.synced_connections += 1;
                if !owed_before.is_empty() {
                    self.violations.push(format!(
                        "connection {conn}: sync_done {f} without the replay of unacknowledged \
                         seqs {owed_before:?}"
                    ));
                    owed_before.clear();
                }
                continue;
            }
            let Some(seq) = f["seq"].as_i64() else {
                continue; // ephemeral: presence, pong, ...
            };
            if seq <= last_seq {
                self.violations.push(format!(
                    "connection {conn}: seq {seq} after seq {last_seq} (not increasing): {f}"
                ));
            }
            last_seq = last_seq.max(seq);
            let skipped: Vec<_> = owed_before.range(..seq).map(|(s, _)| *s).collect();
            if !skipped.is_empty() {
                self.violations.push(format!(
                    "connection {conn}: unacknowledged seqs {skipped:?} not replayed before \
                     seq {seq}: {f}"
                ));
                owed_before.retain(|s, _| *s > seq);
            }
            if owed_before.remove(&seq).is_some() {
                self.owed_replayed += 1;
            }
            let what = match f["message_id"].as_str() {
                Some(id) => id.to_owned(),
                None => f["type"].as_str().unwrap_or_default().to_owned(),
            };
            if let Some(before) = self.by_seq.insert(seq, what.clone()) {
                if before != what {
                    self.violations.push(format!(
                        "connection {conn}: seq {seq} carried {before} before and now {f}"
                    ));
                }
            }
            if is(&f, "relay_delivery") {
                self.deliveries += 1;
                let payload = f["payload"].as_str().unwrap_or_default().to_owned();
                match self.received.get(&what) {
                    Some((s, p)) => {
                        self.replays += 1;
                        if seq <= self.acked_upto {
                            self.acked_replayed += 1;
                        }
                        if *s != seq || *p != payload {
                            self.violations.push(format!(
                                "connection {conn}: message {what} came with seq {s} and payload \
                                 {p:?} before, now {f}"
                            ));
                        }
                    }
                    None => {
                        self.received.insert(what.clone(), (seq, payload));
                        self.count.store(self.received.len(), Ordering::Relaxed);
                    }
                }
            }
            self.owed.insert(seq, what);
            since_ack += 1;
            if since_ack >= ack_every {
                since_ack = 0;
                let ack = json!({"type": "ack_received", "up_to_seq": last_seq});
                if ws.try_send_text(ack.to_string()).await.is_err() {
                    return self;
                }
                // The server may have applied it: no longer owed to the next connection.
                self.owed.retain(|s, _| *s > last_seq);
                self.acked_upto = self.acked_upto.max(last_seq);
            }
        }
    }
}

// ---- one backend ----------------------------------------------------------------------------

async fn crash_rounds(label: &str, workdir: &Path, env: &[(&str, &str)]) {
    let seed = std::env::var("MELO_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("[{label}] seed {seed} (MELO_CRASH_SEED={seed} repeats the random choices)");
    let mut rng = StdRng::seed_from_u64(seed);
    let began = std::time::Instant::now();

    let server = start_with(workdir, env);
    let http = server.http_addr();
    let t = Target::new(server.client.clone(), http, http);
    let a = new_user(&t.client, "Alice").await;
    let b = new_user(&t.client, "Bob").await;
    make_contacts(&t, &a, &b).await;
    let count = Arc::new(AtomicUsize::new(0));
    let mut sender = Sender::new(a, &b, count.clone());
    let mut recipient = Recipient::new(b, count);
    let mut server = Some(server);

    for round in 1..=KILLS {
        let mut s = match server.take() {
            Some(s) => s,
            None => start_with(workdir, env),
        };
        let http = s.http_addr();
        let ack_every = RECIPIENT_ACK_EVERY[rng.gen_range(0..RECIPIENT_ACK_EVERY.len())];
        let delay = Duration::from_millis(rng.gen_range(KILL_AFTER_MS));
        let throttled = rng.gen_ratio(UNTHROTTLED_ONE_IN - 1, UNTHROTTLED_ONE_IN);
        let before = (
            sender.queued.len(),
            recipient.received.len(),
            recipient.replays,
            recipient.synced_connections,
        );
        let send = tokio::spawn(sender.round(http, false, throttled));
        let recv = tokio::spawn(recipient.round(http, ack_every, None));
        tokio::time::sleep(delay).await;
        kill(&mut s);
        sender = tokio::time::timeout(GENEROUS, send)
            .await
            .expect("the sender notices the kill")
            .expect("sender task");
        recipient = tokio::time::timeout(GENEROUS, recv)
            .await
            .expect("the recipient notices the kill")
            .expect("recipient task");
        eprintln!(
            "[{label}] round {round:2}: SIGKILL after {:3} ms ({}, recipient acks every \
             {ack_every:3}, {}): +{} queued, {} in flight at the kill, +{} received, +{} replayed",
            delay.as_millis(),
            if throttled { "throttled" } else { "full speed" },
            if recipient.synced_connections > before.3 {
                "live after sync_done"
            } else {
                "killed during the replay"
            },
            sender.queued.len() - before.0,
            sender.in_flight.len(),
            recipient.received.len() - before.1,
            recipient.replays - before.2,
        );
    }

    // The final round: the sender resends what is still in flight and stops; the recipient
    // drains until sync_done, every answered message, and a quiet second.
    let s = start_with(workdir, env);
    let http = s.http_addr();
    let (done_tx, done_rx) = watch::channel(Finish::default());
    let recv = tokio::spawn(recipient.round(http, 1, Some(done_rx)));
    let sender = tokio::time::timeout(GENEROUS * 2, sender.round(http, true, false))
        .await
        .expect("the final sender round ends");
    let expected: HashSet<String> = sender.queued.values().cloned().collect();
    done_tx.send_replace(Finish {
        expected: Some(Arc::new(expected)),
    });
    let mut recipient = tokio::time::timeout(GENEROUS * 2, recv)
        .await
        .expect("the final recipient round ends")
        .expect("recipient task");
    // One more connection: whatever is still queued for B (nothing new may appear).
    let late = {
        let mut ws = WsClient::open(http, &recipient.user.token).await;
        let sync = ws.sync_within(GENEROUS).await;
        ws.ack_and_close().await;
        sync.backlog
    };
    stop(s);

    // ---- verdict ----
    let mut violations = std::mem::take(&mut recipient.violations);
    violations.extend(sender.violations.iter().cloned());
    let mut late_new = 0;
    for f in &late {
        let id = f["message_id"].as_str().unwrap_or_default();
        if is(f, "relay_delivery") && !recipient.received.contains_key(id) {
            late_new += 1;
            violations.push(format!(
                "queued while B was online, but only delivered by a later connection: {f}"
            ));
            let payload = f["payload"].as_str().unwrap_or_default().to_owned();
            let seq = f["seq"].as_i64().unwrap_or_default();
            recipient.received.insert(id.to_owned(), (seq, payload));
        }
    }
    if !sender.in_flight.is_empty() {
        violations.push(format!("never answered: {:?}", sender.in_flight));
    }
    let mut lost: Vec<(&String, &String)> = sender
        .queued
        .iter()
        .filter(|(_, id)| !recipient.received.contains_key(*id))
        .collect();
    lost.sort();
    for (cid, id) in &lost {
        violations.push(format!(
            "LOST: client_id {cid} was answered queued as {id}, never received by B"
        ));
    }
    for (id, (seq, payload)) in &recipient.received {
        match (sender.by_id.get(id), cid_of(payload)) {
            (Some(cid), Some(named)) if cid == named => {}
            (Some(cid), _) => violations.push(format!(
                "message {id} (seq {seq}) was answered for client_id {cid} but carries {payload:?}"
            )),
            (None, Some(named)) => violations.push(format!(
                "message {id} (seq {seq}) for client_id {named} was never answered queued \
                 (answer for {named}: {:?}): stored twice?",
                sender.queued.get(named)
            )),
            (None, None) => violations.push(format!(
                "message {id} (seq {seq}) was never sent: payload {payload:?}"
            )),
        }
    }
    let seqs: BTreeSet<i64> = recipient.received.values().map(|(s, _)| *s).collect();
    eprintln!(
        "[{label}] summary: {KILLS} SIGKILLs + 1 graceful round in {:.1} s; {} relays sent \
         ({} resent after a kill), {} queued ({} fresh, {} duplicate answers to resends, {} \
         duplicate probes); B: {} connections ({} reached sync_done), {} deliveries, {} distinct \
         messages (seqs {:?}..={:?}), {} replays ({} of frames unacknowledged at a kill, {} of \
         frames whose ack was sent but evidently not applied before the kill), {} late; {} \
         violations",
        began.elapsed().as_secs_f64(),
        sender.next,
        sender.resent,
        sender.queued.len(),
        sender.fresh,
        sender.duplicates,
        sender.probes_answered,
        recipient.connections,
        recipient.synced_connections,
        recipient.deliveries,
        recipient.received.len(),
        seqs.first(),
        seqs.last(),
        recipient.replays,
        recipient.owed_replayed,
        recipient.acked_replayed,
        late_new,
        violations.len(),
    );
    for v in &violations {
        eprintln!("[{label}] VIOLATION: {v}");
    }
    assert!(
        violations.is_empty(),
        "[{label}] {} violations (first: {})",
        violations.len(),
        violations[0]
    );
    assert!(
        sender.queued.len() >= KILLS,
        "[{label}] the test sent too little to mean anything: {} queued",
        sender.queued.len()
    );
}

/// SIGKILL (`Child::kill` on Unix), and the process reaped.
fn kill(s: &mut Server) {
    s.child.kill().expect("SIGKILL the server");
    s.child.wait().expect("reap the killed server");
}

// ---- the backends ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_nothing_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".env"), FIXTURE).expect(".env");
    // SQLite and the keys under ./melo-data of the same working directory on every restart.
    crash_rounds("sqlite", dir.path(), &[]).await;
    assert!(dir.path().join("melo-data").join("melo.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_nothing_mysql_redis() {
    let var = |name: &str| std::env::var(name).ok().filter(|u| !u.is_empty());
    let (mysql, redis) = (var("MELO_TEST_MYSQL_URL"), var("MELO_TEST_REDIS_URL"));
    let (Some(mysql), Some(redis)) = (mysql.clone(), redis.clone()) else {
        let unset: Vec<&str> = [
            ("MELO_TEST_MYSQL_URL", &mysql),
            ("MELO_TEST_REDIS_URL", &redis),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_none())
        .map(|(name, _)| name)
        .collect();
        eprintln!(
            "{} unset: the MySQL + Redis crash test is skipped",
            unset.join(" and ")
        );
        return;
    };
    redis_reachable(&redis).await;
    // A fresh `melo_t_…` database, dropped at the end or after a panic.
    let (db, db_url) = backends::MysqlDb::create_empty(&mysql).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".env"), FIXTURE).expect(".env");
    let data = dir.path().join("melo-data");
    let data = data.display().to_string();
    let env = [
        ("DB_URL", db_url.as_str()),
        ("REDIS_URL", redis.as_str()),
        ("MELO_DATA_DIR", data.as_str()),
    ];
    crash_rounds("mysql+redis", dir.path(), &env).await;
    db.drop_database().await;
}

async fn redis_reachable(url: &str) {
    let client = redis::Client::open(url)
        .unwrap_or_else(|e| panic!("MELO_TEST_REDIS_URL is set but not a Redis URL: {e}"));
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("MELO_TEST_REDIS_URL is set but Redis is unreachable: {e}"));
    let pong: String = redis::cmd("PING")
        .query_async(&mut con)
        .await
        .unwrap_or_else(|e| panic!("MELO_TEST_REDIS_URL is set but Redis does not answer: {e}"));
    assert_eq!(pong, "PONG");
}
