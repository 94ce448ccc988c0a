//! Two example-binary nodes on one MySQL database and one Redis (issue 16), one of them killed
//! with SIGKILL:
//!
//! - under load: its users reconnect to the other node and receive every message that was
//!   answered `queued`, whichever node answered it;
//! - while it timed a ringing call: the surviving node ends the call at its ring timeout (the
//!   timer is a deadline in Redis, not a task of the dead process), and both users are free
//!   to call again.
//!
//! Needs `MELO_TEST_MYSQL_URL` and `MELO_TEST_REDIS_URL` (CI sets both; unset: skipped with a
//! note; set but unreachable: the test fails).

// The fresh-database guard of the audit test; this file uses only part of it.
#[allow(dead_code, unreachable_pub)]
#[path = "zk_audit/backends.rs"]
mod backends;
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::binary::{start_with, Server};
use common::realtime::{make_contacts, Target};
use common::ws::{is, WsClient, WAIT};
use common::{new_user, User};
use serde_json::{json, Value};

const FIXTURE: &str = "HTTP_PORT=0\nWS_PORT=0\nRATE_LIMIT_CALLS=100000\nFAILED_LOGIN_LIMIT=1000\n\
                       FAILED_LOGIN_IP_LIMIT=100000\nBCRYPT_COST=4\n\
                       WS_RATE_LIMIT_MESSAGES=10000000\nWS_RATE_LIMIT_GRACE=1000\n\
                       QUEUE_MAX=1000000\nCALL_RING_TIMEOUT=4\nCALL_RECONNECT_GRACE=4\n";

/// Only to keep a broken run from hanging: never a statement about speed.
const GENEROUS: Duration = Duration::from_secs(30);

fn env_urls() -> Option<(String, String)> {
    backends::mysql_and_redis("MELO_TEST_REDIS_URL")
}

/// Two nodes sharing a fresh database, one Redis and one key directory.
struct Pair {
    n1: Server,
    n2: Server,
    db: backends::MysqlDb,
    _dir: tempfile::TempDir,
}

async fn pair(mysql: &str, redis: &str) -> Pair {
    let (db, db_url) = backends::MysqlDb::create_empty(mysql).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".env"), FIXTURE).expect(".env");
    let data = dir.path().join("melo-data").display().to_string();
    let env = [
        ("DB_URL", db_url.as_str()),
        ("REDIS_URL", redis),
        ("MELO_DATA_DIR", data.as_str()),
    ];
    // The first node creates the keys and the schema; the second loads them.
    let n1 = start_with(dir.path(), &env);
    let n2 = start_with(dir.path(), &env);
    Pair {
        n1,
        n2,
        db,
        _dir: dir,
    }
}

fn target(s: &Server) -> Target {
    Target::new(s.client.clone(), s.http_addr(), s.http_addr())
}

fn sigkill(s: &mut Server) {
    s.child.kill().expect("SIGKILL");
    s.child.wait().expect("reaped");
}

async fn online(t: &Target, u: &User) -> WsClient {
    let mut ws = WsClient::open(t.http, &u.token).await;
    ws.sync().await;
    ws.ack_all().await;
    ws
}

fn queued_id(f: &Value) -> Option<String> {
    (is(f, "msg_status") && f["status"] == "queued")
        .then(|| f["message_id"].as_str().map(str::to_owned))
        .flatten()
}

/// Sends `n` DMs one after the other and returns the ids answered `queued` (the socket may
/// die midway: what was answered counts).
async fn send_until_closed(ws: &mut WsClient, to: &User, tag: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let cid = format!("{tag}-{i}");
        if ws
            .try_send_text(
                json!({"type": "relay", "target": to.uid, "payload": "S0lMTA==", "client_id": cid})
                    .to_string(),
            )
            .await
            .is_err()
        {
            break;
        }
        match ws
            .try_recv_where(
                |f| (is(f, "msg_status") && f["client_id"] == cid) || is(f, "error"),
                GENEROUS,
            )
            .await
        {
            Some(f) => match queued_id(&f) {
                Some(id) => ids.push(id),
                None => panic!("not queued: {f}"),
            },
            None => break,
        }
    }
    ids
}

/// Every DM id that reaches `ws` until `want` are all seen.
async fn receive_all(ws: &mut WsClient, want: &BTreeSet<String>, seen: &mut BTreeSet<String>) {
    while !want.is_subset(seen) {
        let f = ws
            .try_recv_where(|f| is(f, "relay_delivery"), GENEROUS)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "missing {:?} (closed: {:?})",
                    want.difference(seen).collect::<Vec<_>>(),
                    ws.closed
                )
            });
        if let Some(seq) = f["seq"].as_i64() {
            ws.send_json(&json!({"type": "ack_received", "seq": seq}))
                .await;
        }
        if let Some(id) = f["message_id"].as_str() {
            seen.insert(id.to_owned());
        }
    }
}

/// B and C are on node 1, A and D on node 2; A sends to B and C sends to D. Node 1 dies by
/// SIGKILL in the middle; B reconnects to node 2 and gets every message of A's answered
/// `queued` (before and after the kill), and D every one of C's answered before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_loses_nothing() {
    let Some((mysql, redis)) = env_urls() else {
        return;
    };
    let mut p = pair(&mysql, &redis).await;
    let (t1, t2) = (target(&p.n1), target(&p.n2));
    let a = new_user(&t2.client, "kla").await;
    let b = new_user(&t1.client, "klb").await;
    let c = new_user(&t1.client, "klc").await;
    let d = new_user(&t2.client, "kld").await;
    make_contacts(&t2, &a, &b).await;
    make_contacts(&t2, &c, &d).await;
    let mut wa = online(&t2, &a).await;
    let wb = online(&t1, &b).await;
    let mut wc = online(&t1, &c).await;
    let mut wd = online(&t2, &d).await;

    let mut to_b: BTreeSet<String> = send_until_closed(&mut wa, &b, "ab", 40)
        .await
        .into_iter()
        .collect();
    let to_d: BTreeSet<String> = {
        // C keeps sending while node 1 is killed under it.
        let sending = send_until_closed(&mut wc, &d, "cd", 400);
        let killing = async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            sigkill(&mut p.n1);
        };
        let (ids, ()) = tokio::join!(sending, killing);
        ids.into_iter().collect()
    };
    assert!(!to_d.is_empty(), "C sent nothing before the kill");
    // A goes on sending while B is offline.
    to_b.extend(send_until_closed(&mut wa, &b, "ab-after", 20).await);
    drop(wb);

    let mut seen_d = BTreeSet::new();
    receive_all(&mut wd, &to_d, &mut seen_d).await;
    let wb = online_collecting(&t2, &b, &to_b).await;
    wb.close().await;
    wd.close().await;
    wa.close().await;
    drop(wc);
    p.n2.child.kill().ok();
    p.db.drop_database().await;
}

/// B's device on node 2: its backlog and live frames until every id in `want` arrived.
async fn online_collecting(t: &Target, u: &User, want: &BTreeSet<String>) -> WsClient {
    let mut ws = WsClient::open(t.http, &u.token).await;
    let sync = ws.sync().await;
    let mut seen: BTreeSet<String> = sync
        .backlog
        .iter()
        .filter(|f| is(f, "relay_delivery"))
        .filter_map(|f| f["message_id"].as_str().map(str::to_owned))
        .collect();
    ws.ack_all().await;
    receive_all(&mut ws, want, &mut seen).await;
    ws
}

async fn call_state(ws: &mut WsClient, st: &str, within: Duration) -> Value {
    ws.recv_where(
        &format!("call_state {st}"),
        |f| is(f, "call_state") && f["state"] == st,
        within,
    )
    .await
}

/// A (node 1) calls B (node 2); node 1 dies by SIGKILL while it rings. Node 2 ends the call at
/// its ring timeout (B hears `missed`), and A, back on node 2, can call B again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_ends_when_the_node_that_timed_it_dies() {
    let Some((mysql, redis)) = env_urls() else {
        return;
    };
    let mut p = pair(&mysql, &redis).await;
    let (t1, t2) = (target(&p.n1), target(&p.n2));
    let a = new_user(&t1.client, "kca").await;
    let b = new_user(&t2.client, "kcb").await;
    make_contacts(&t1, &a, &b).await;
    let mut wa = online(&t1, &a).await;
    let mut wb = online(&t2, &b).await;
    wa.send_json(&json!({"type": "call_start", "target": b.uid}))
        .await;
    call_state(&mut wa, "ringing", WAIT).await;
    wb.recv_type("call_start", WAIT).await;
    sigkill(&mut p.n1);
    drop(wa);
    // The ring timeout is 4 s; the other node's sweep ends it.
    call_state(&mut wb, "missed", GENEROUS).await;
    // Neither user is left busy.
    let mut wa = online(&t2, &a).await;
    wa.send_json(&json!({"type": "call_start", "target": b.uid}))
        .await;
    call_state(&mut wa, "ringing", WAIT).await;
    wa.send_json(&json!({"type": "call_end", "target": b.uid}))
        .await;
    wa.close().await;
    wb.close().await;
    p.n2.child.kill().ok();
    p.db.drop_database().await;
}
