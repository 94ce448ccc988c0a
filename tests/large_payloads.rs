//! 1 MiB payloads (PROTOCOL §1.5 as amended) against the example binary on SQLite: a
//! reconnecting device's replay keeps at most 4 MiB unacknowledged, one `history` frame and one
//! HTTP history page stay within their bounds (2 MiB per frame, 8 MiB of payloads per page) and
//! say `has_more`, no server frame passes 2 MiB, nothing is dropped, and the server's memory
//! does not follow the backlog: a 48 MiB backlog replays with a bounded RSS.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::binary::{start, stop};
use common::realtime::{make_contacts, Target};
use common::ws::{is, WsClient};
use common::{new_user, User};
use serde_json::{json, Value};

const MIB: usize = 1024 * 1024;
/// Messages in the backlog.
const BACKLOG: usize = 48;
const WAIT: Duration = Duration::from_secs(30);

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// A 1 MiB payload that names message `n`.
fn payload(n: usize) -> String {
    let mut p = format!("m{n:04}-");
    p.push_str(&"x".repeat(MIB - p.len()));
    p
}

async fn send(t: &Target, from: &User, to: &User, data: &str) -> (u16, Value) {
    let r = t
        .client
        .post(
            "/messages/send",
            Some(&from.token),
            &json!({"target_id": to.uid, "data": data}),
        )
        .await;
    (r.status.as_u16(), r.body)
}

fn write_env(dir: &std::path::Path) {
    std::fs::write(
        dir.join(".env"),
        "HTTP_PORT=0\nWS_PORT=0\nRATE_LIMIT_CALLS=100000\nFAILED_LOGIN_IP_LIMIT=100000\n\
         BCRYPT_COST=4\n",
    )
    .expect("write .env");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mib_payloads_are_bounded_everywhere_and_nothing_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_env(dir.path());
    let server = start(dir.path());
    let t = Target::new(
        server.client.clone(),
        server.http_addr(),
        server.http_addr(),
    );
    let a = new_user(&t.client, "Alice").await;
    let b = new_user(&t.client, "Bob").await;
    make_contacts(&t, &a, &b).await;

    // A `chat_message` is its own payload: a 1 MiB frame of escaped quotes escapes again to
    // over 2 MiB inside a `relay_delivery`, so it is refused and nothing is stored.
    let mut wa = WsClient::open(t.http, &a.token).await;
    wa.sync().await;
    let head = format!(
        r#"{{"type":"chat_message","target":"{}","client_id":"big","x":""#,
        b.uid
    );
    let fill = (MIB - head.len() - 2) / 2;
    let frame = format!("{head}{}\"}}", "\\\"".repeat(fill));
    assert!(frame.len() <= MIB);
    wa.send_text(&frame).await;
    let e = wa.recv_type("error", WAIT).await;
    assert_eq!(
        (&e["reason"], &e["ref"]),
        (&json!("invalid_frame"), &json!("big")),
        "{e}"
    );
    wa.close().await;
    // A payload that escapes to just under 2 MiB goes through.
    let (status, body) = send(&t, &a, &b, &"\"".repeat(MIB - 4 * 1024)).await;
    assert_eq!(status, 200, "{body}");
    let escaped_id = body["message_id"].as_str().expect("id").to_owned();

    let mut ids = vec![escaped_id];
    for n in 0..BACKLOG {
        let (status, body) = send(&t, &a, &b, &payload(n)).await;
        assert_eq!(status, 200, "message {n}: {body}");
        ids.push(body["message_id"].as_str().expect("id").to_owned());
    }
    // A fresh process: its memory owes nothing to the sends above.
    stop(server);
    let server = start(dir.path());
    let t = Target::new(
        server.client.clone(),
        server.http_addr(),
        server.http_addr(),
    );
    let pid = server.child.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base = rss_kb(pid);

    // Replay: B reads without acknowledging until the window stops, then acknowledges.
    let mut ws = WsClient::open(t.http, &b.token).await;
    let mut got: Vec<String> = Vec::new();
    let mut last_seq = 0;
    let mut peak = base;
    let sync = loop {
        let mut unacked_bytes = 0;
        let mut unacked = 0;
        let sync = loop {
            let f = ws
                .try_recv_where(
                    |f| f.get("seq").is_some() || is(f, "sync_done"),
                    Duration::from_millis(700),
                )
                .await;
            peak = peak.max(rss_kb(pid));
            let Some(f) = f else { break None };
            if is(&f, "sync_done") {
                break Some(f);
            }
            let seq = f["seq"].as_i64().expect("seq");
            assert!(seq > last_seq, "seq order: {seq} after {last_seq}");
            last_seq = seq;
            unacked += 1;
            // B's queue also holds A's contact request, from before B ever connected.
            if is(&f, "relay_delivery") {
                got.push(f["message_id"].as_str().expect("id").to_owned());
                unacked_bytes += f["payload"].as_str().expect("payload").len();
            }
        };
        if sync.is_none() {
            // The window stopped: at most 4 MiB of frames (at least one) in flight.
            assert!(unacked >= 1, "the window always lets one frame through");
            assert!(
                unacked == 1 || unacked_bytes <= 4 * MIB,
                "{unacked} frames, {unacked_bytes} payload bytes unacknowledged"
            );
            assert!(
                unacked < 5,
                "1 MiB frames: at most 4 fit in 4 MiB, got {unacked}"
            );
        }
        ws.ack_all().await;
        if let Some(s) = sync {
            break s;
        }
    };
    assert_eq!(got, ids, "every message, in order, once");
    assert_eq!(
        sync["count"],
        ids.len() + 1,
        "the messages and the contact request: {sync}"
    );
    assert!(
        ws.max_frame <= 2 * MIB,
        "largest frame {} bytes",
        ws.max_frame
    );
    let grown_mib = (peak.saturating_sub(base)) / 1024;
    eprintln!(
        "replay of {} MiB: RSS {base} kB before, peak {peak} kB",
        ids.len()
    );
    assert!(
        grown_mib < 40,
        "the server's RSS grew by {grown_mib} MiB replaying a {} MiB backlog",
        ids.len()
    );

    // get_history: one frame of at most 2 MiB per reply; the pages walk back over everything.
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut frame = json!({"type": "get_history", "target": a.uid, "limit": 100});
        if let Some(b) = &before {
            frame["before"] = json!(b);
        }
        ws.send_json(&frame).await;
        let h = ws.recv_type("history", WAIT).await;
        let items = h["items"].as_array().expect("items");
        assert!(!items.is_empty(), "{h}");
        for i in items.iter().rev() {
            seen.push(i["message_id"].as_str().expect("id").to_owned());
        }
        if h["has_more"] != true {
            assert!(h["next_before"].is_null(), "{h}");
            break;
        }
        before = Some(h["next_before"].as_str().expect("cursor").to_owned());
        assert_eq!(before.as_deref(), items[0]["message_id"].as_str());
    }
    assert!(
        ws.max_frame <= 2 * MIB,
        "largest frame {} bytes",
        ws.max_frame
    );
    seen.reverse();
    assert_eq!(seen, ids, "history holds every message once, in order");

    // HTTP history: at most 8 MiB of payloads per page, `has_more` and the cursor when cut.
    let mut pages = 0;
    let mut seen = HashSet::new();
    let mut before: Option<String> = None;
    loop {
        let path = match &before {
            Some(b) => format!("/messages/history/dm/{}?limit=100&before={b}", a.uid),
            None => format!("/messages/history/dm/{}?limit=100", a.uid),
        };
        let r = t.client.get(&path, Some(&b.token)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let payloads: usize = r.body["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m.as_str().expect("payload").len())
            .sum();
        assert!(payloads <= 8 * MIB, "page of {payloads} payload bytes");
        for i in r.body["items"].as_array().expect("items") {
            assert!(seen.insert(i["message_id"].as_str().expect("id").to_owned()));
        }
        pages += 1;
        if r.body["has_more"] != true {
            break;
        }
        before = Some(r.body["next_before"].as_str().expect("cursor").to_owned());
    }
    assert_eq!(seen.len(), ids.len(), "HTTP history holds every message");
    assert!(
        pages >= ids.len() / 8,
        "{pages} pages for {} MiB",
        ids.len()
    );
    ws.close().await;
    stop(server);
}
