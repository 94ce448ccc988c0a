//! The WebSocket real-time core in-process: PROTOCOL §7 S4, S6–S11, and the guarantees of §3.4,
//! §4.6 and §5 that the scenarios do not reach (HTTP sends to open sockets, offline replay,
//! receipts for offline senders, typing never queued, history privacy, frame limits, the WS rate
//! limit, slow consumers).

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::realtime::{
    self, connect, delivery, hex32, http_send, make_contacts, online, pair, queued_reply, relay,
    second_device, statuses, Target, ALLOWED_ORIGIN,
};
use common::ws::{is, WsClient, WAIT};
use common::{new_user, test_config, TestServer};
use melo::{Config, MemoryStore};
use serde_json::{json, Value};

/// The §7 fixture's settings that matter in-process.
fn fixture() -> Config {
    let mut c = test_config();
    c.http.cors_origins = vec![ALLOWED_ORIGIN.into()];
    c.realtime.call_ring_timeout = 5;
    c
}

async fn server_with(config: Config) -> TestServer {
    TestServer::start_with(config, Arc::new(MemoryStore::new())).await
}

async fn server() -> TestServer {
    server_with(fixture()).await
}

macro_rules! scenario {
    ($name:ident, $f:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let s = server().await;
            $f(&Target::of(&s)).await;
            s.stop().await;
        }
    };
}

scenario!(s4_contacts, realtime::s4);
scenario!(s6_live_dm_and_receipts, realtime::s6);
scenario!(s7_offline_queue_and_redelivery, realtime::s7);
scenario!(s8_idempotency_and_history, realtime::s8);
scenario!(s9_multi_device, realtime::s9);
scenario!(s10_authorization_errors_and_admission, realtime::s10);
scenario!(s11_presence_and_typing, realtime::s11);

fn seq(f: &Value) -> i64 {
    f["seq"].as_i64().unwrap_or_else(|| panic!("seq: {f}"))
}

/// §4.6: an HTTP send is stored, delivered live to open sockets (with `signature`), copied to
/// the sender's other devices, and the calling device gets neither a copy nor a status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_send_reaches_open_sockets() {
    let s = server().await;
    let t = Target::of(&s);
    let c = &t.client;
    let (a, b) = pair(&t, "Alice", "Bob").await;
    let a2 = second_device(&t, &a).await;
    let stranger = new_user(c, "Stranger").await;
    let mut wa = online(&t, &a).await;
    let mut wa2 = online(&t, &a2).await;
    let mut wb = online(&t, &b).await;

    let r = c
        .post(
            "/messages/send",
            Some(&a.token),
            &json!({"target_id": b.uid, "data": "HTTP-1", "client_id": "h-1", "signature": "sig-1"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let m = hex32(&r.body["message_id"]);
    assert_eq!(
        (&r.body["ok"], &r.body["status"]),
        (&json!(true), &json!("queued"))
    );
    let f = delivery(&mut wb, &a, &b).await;
    assert_eq!(f["message_id"], m.as_str());
    assert_eq!(f["payload"], "HTTP-1");
    assert_eq!(f["signature"], "sig-1", "signature passed through: {f}");
    let f = delivery(&mut wa2, &a, &b).await;
    assert_eq!((&f["message_id"], &f["self"]), (&json!(m), &json!(true)));
    wa2.ack_all().await;
    wa.expect_no(
        "a copy or status of the HTTP send on the calling device",
        |f| f["message_id"] == m.as_str(),
        t.quiet,
    )
    .await;
    wb.ack_all().await;
    statuses(&mut wa, "delivered", std::slice::from_ref(&m), &b, &a).await;
    statuses(&mut wa2, "delivered", std::slice::from_ref(&m), &b, &a).await;

    // The WS form passes `signature` through as well.
    wa.send_json(&json!({"type": "relay", "target": b.uid, "payload": "WS-1", "signature": "sig-2", "client_id": "w-1"}))
        .await;
    queued_reply(&mut wa, "w-1").await;
    let f = delivery(&mut wb, &a, &b).await;
    assert_eq!(
        (&f["payload"], &f["signature"]),
        (&json!("WS-1"), &json!("sig-2"))
    );

    // Refusals change nothing.
    let send = |token: &str, body: Value| {
        let token = token.to_owned();
        async move { c.post("/messages/send", Some(&token), &body).await }
    };
    send(&a.token, json!({"target_id": a.uid, "data": "x"}))
        .await
        .assert_error(400, "invalid_target");
    send(&a.token, json!({"target_id": stranger.uid, "data": "x"}))
        .await
        .assert_error(403, "not_a_contact");
    send(&stranger.token, json!({"target_id": b.uid, "data": "x"}))
        .await
        .assert_error(403, "not_a_contact");
    for body in [
        json!({"target_id": b.uid, "data": ""}),
        json!({"target_id": b.uid}),
        json!({"target_id": b.uid, "chat_id": 1, "data": "x"}),
        json!({"data": "x"}),
    ] {
        send(&a.token, body)
            .await
            .assert_error(422, "validation_failed");
    }
    wb.expect_no_frame("relay_delivery", t.quiet).await;
    let r = c
        .get(&format!("/messages/history/dm/{}", b.uid), Some(&a.token))
        .await;
    assert_eq!(r.body["messages"], json!(["HTTP-1", "WS-1"]), "{}", r.body);

    wa.ack_and_close().await;
    wa2.ack_and_close().await;
    wb.ack_and_close().await;
    s.stop().await;
}

/// §5.3: 50 messages sent over WS and HTTP while the recipient is offline arrive in order, with
/// consecutive `seq`s, each once; a partial ack leaves exactly the rest for the next connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_replay_is_ordered_without_loss_or_duplicates() {
    let s = server().await;
    let t = Target::of(&s);
    let (a, b) = pair(&t, "Alice", "Bob").await;
    let mut wa = online(&t, &a).await;
    let mut ids = Vec::new();
    for i in 0..50 {
        let payload = format!("MIX-{i}");
        ids.push(if i % 2 == 0 {
            relay(&mut wa, &a, &b, &payload, &format!("mix-{i}")).await
        } else {
            http_send(&t, &a, &b, &payload).await
        });
    }
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        50,
        "distinct message ids"
    );

    let (wb, sync) = connect(&t, &b).await;
    assert_eq!(sync.backlog.len(), 50, "every message: {:?}", sync.backlog);
    let s1 = seq(&sync.backlog[0]);
    for (i, f) in sync.backlog.iter().enumerate() {
        realtime::assert_dm_delivery(f, &a, &b);
        assert_eq!(f["message_id"], ids[i].as_str(), "order at #{i}");
        assert_eq!(f["payload"], format!("MIX-{i}"));
        assert_eq!(seq(f), s1 + i as i64, "consecutive seq at #{i}");
    }
    assert_eq!((sync.count, sync.last_seq), (50, s1 + 49));
    // Ack the first 25 only.
    let mut wb = wb;
    wb.ack_up_to(s1 + 24).await;
    wb.ping().await;
    wb.close().await;
    let (wb, again) = connect(&t, &b).await;
    assert_eq!(
        again.backlog,
        sync.backlog[25..].to_vec(),
        "exactly the unacked half, unchanged"
    );
    assert_eq!((again.count, again.last_seq), (25, s1 + 49));
    wb.ack_and_close().await;
    let (wb, last) = connect(&t, &b).await;
    assert_eq!(
        (last.count, last.last_seq),
        (0, s1 + 49),
        "{:?}",
        last.backlog
    );
    wb.close().await;
    statuses(&mut wa, "delivered", &ids, &b, &a).await;
    wa.ack_and_close().await;
    s.stop().await;
}

/// §5.3: `delivered` and `read` are durable for the sender: a sender that was offline when the
/// recipient acked and read finds them in its backlog. `ack_read` also clears the reader's queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_reach_an_offline_sender() {
    let s = server().await;
    let t = Target::of(&s);
    let (a, b) = pair(&t, "Alice", "Bob").await;
    let mut wa = online(&t, &a).await;
    let mut wb = online(&t, &b).await;
    let m1 = relay(&mut wa, &a, &b, "R-1", "r-1").await;
    let m2 = relay(&mut wa, &a, &b, "R-2", "r-2").await;
    for id in [&m1, &m2] {
        let f = delivery(&mut wb, &a, &b).await;
        assert_eq!(&f["message_id"], id.as_str());
    }
    wa.ack_and_close().await;
    // A is offline now.
    wb.send_json(&json!({"type": "ack_received", "message_id": m1}))
        .await;
    wb.send_json(&json!({"type": "ack_read", "message_id": m2}))
        .await;
    wb.ping().await;
    wb.expect_no_frame("error", Duration::ZERO).await;

    let (wa, sync) = connect(&t, &a).await;
    assert!(
        sync.backlog.iter().all(|f| is(f, "msg_status")),
        "only statuses are queued for A: {:?}",
        sync.backlog
    );
    let find = |status: &str, id: &str| {
        sync.backlog
            .iter()
            .filter(|f| f["status"] == status && f["message_id"] == id)
            .count()
    };
    assert_eq!(find("delivered", &m1), 1, "{:?}", sync.backlog);
    assert_eq!(find("read", &m2), 1, "{:?}", sync.backlog);
    assert_eq!(find("read", &m1), 0, "M1 was not read: {:?}", sync.backlog);
    for f in &sync.backlog {
        assert_eq!(
            (&f["from"], &f["to"]),
            (&json!(b.uid), &json!(a.uid)),
            "{f}"
        );
    }
    let first = seq(&sync.backlog[0]);
    for (i, f) in sync.backlog.iter().enumerate() {
        assert_eq!(seq(f), first + i as i64, "consecutive seq");
    }
    assert_eq!(sync.count, sync.backlog.len() as i64);
    let r = t
        .client
        .get(&format!("/messages/history/dm/{}", b.uid), Some(&a.token))
        .await;
    let items = r.body["items"].as_array().expect("items");
    assert_eq!(
        (&items[0]["status"], &items[1]["status"]),
        (&json!("delivered"), &json!("read")),
        "{}",
        r.body
    );
    wa.ack_and_close().await;
    // Both acks removed B's entries.
    wb.close().await;
    let (wb, sync) = connect(&t, &b).await;
    assert_eq!(sync.count, 0, "B's queue is empty: {:?}", sync.backlog);
    wb.close().await;
    s.stop().await;
}

/// §5.6: typing is a direct frame, never stored or queued; sending a message ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_is_never_replayed() {
    let s = server().await;
    let t = Target::of(&s);
    let (a, b) = pair(&t, "Alice", "Bob").await;
    let mut wa = online(&t, &a).await;
    let mut wb = online(&t, &b).await;
    wb.send_json(&json!({"type": "typing_start", "target": a.uid}))
        .await;
    let f = wa.recv_type("typing_start", WAIT).await;
    assert!(f.get("seq").is_none(), "{f}");
    // A message from B in that conversation forwards typing_stop.
    let m = relay(&mut wb, &b, &a, "after typing", "t-1").await;
    let stop = wa.recv_type("typing_stop", WAIT).await;
    assert_eq!(stop["user_id"], b.uid.as_str(), "{stop}");
    let f = delivery(&mut wa, &b, &a).await;
    assert_eq!(f["message_id"], m.as_str());
    wa.ack_and_close().await;
    // Reconnecting replays nothing of the typing.
    let (mut wa, sync) = connect(&t, &a).await;
    assert_eq!(sync.count, 0, "nothing queued: {:?}", sync.backlog);
    wa.expect_no(
        "a typing frame after reconnecting",
        |f| is(f, "typing_start") || is(f, "typing_stop"),
        t.quiet,
    )
    .await;
    wa.close().await;
    // Typing while A is offline is not kept for A either.
    wb.send_json(&json!({"type": "typing_start", "target": a.uid}))
        .await;
    wb.send_json(&json!({"type": "typing_stop", "target": a.uid}))
        .await;
    wb.ping().await;
    wb.expect_no_frame("error", Duration::ZERO).await;
    let (mut wa, sync) = connect(&t, &a).await;
    assert_eq!(sync.count, 0, "{:?}", sync.backlog);
    wa.expect_no(
        "a typing frame after reconnecting",
        |f| is(f, "typing_start") || is(f, "typing_stop"),
        t.quiet,
    )
    .await;
    wa.close().await;
    wb.ack_and_close().await;
    s.stop().await;
}

/// §4.6: history is the caller's own conversation only; the legacy route needs a current contact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_the_callers_own_conversation() {
    let s = server().await;
    let t = Target::of(&s);
    let c = &t.client;
    let (a, b) = pair(&t, "Alice", "Bob").await;
    let cu = new_user(c, "Carol").await;
    make_contacts(&t, &cu, &b).await;
    http_send(&t, &a, &b, "AB-1").await;
    http_send(&t, &b, &a, "BA-1").await;
    http_send(&t, &cu, &b, "CB-1").await;
    let get = |u: &common::User, path: String| {
        let token = u.token.clone();
        async move { c.get(&path, Some(&token)).await }
    };
    let msgs = |r: &common::Resp| {
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["messages"].clone()
    };
    // C is not A's contact.
    get(&cu, format!("/history/{}", a.uid))
        .await
        .assert_error(403, "not_a_contact");
    get(&cu, "/history/10000000".into())
        .await
        .assert_error(403, "not_a_contact");
    assert_eq!(
        msgs(&get(&cu, format!("/messages/history/dm/{}", a.uid)).await),
        json!([])
    );
    assert_eq!(
        msgs(&get(&cu, "/messages/history/dm/10000000".into()).await),
        json!([])
    );
    // C's conversation with B holds only C's message, on both routes.
    for path in [
        format!("/messages/history/dm/{}", b.uid),
        format!("/history/{}", b.uid),
    ] {
        let r = get(&cu, path).await;
        assert_eq!(msgs(&r), json!(["CB-1"]));
        assert_eq!(r.body["items"][0]["from"], cu.uid.as_str());
        assert_eq!(r.body["items"][0]["to"], b.uid.as_str());
        assert_eq!(r.body["total"], 1);
    }
    // `status` only on DM messages the caller sent.
    let r = get(&b, format!("/messages/history/dm/{}", a.uid)).await;
    assert_eq!(msgs(&r), json!(["AB-1", "BA-1"]));
    let items = r.body["items"].as_array().expect("items");
    assert!(
        items[0].get("status").is_none() || items[0]["status"].is_null(),
        "no status on a received message: {}",
        items[0]
    );
    assert_eq!(items[1]["status"], "queued", "{}", items[1]);
    // Ending the contact closes the legacy route, not the DM route.
    let r = c
        .post(
            "/unsubscribe",
            Some(&a.token),
            &json!({"target_id": b.uid, "csrf_token": a.csrf}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    get(&a, format!("/history/{}", b.uid))
        .await
        .assert_error(403, "not_a_contact");
    assert_eq!(
        msgs(&get(&a, format!("/messages/history/dm/{}", b.uid)).await),
        json!(["AB-1", "BA-1"])
    );
    s.stop().await;
}

/// §1.5/§5.1/§5.2: a frame of exactly 1 MiB is processed, one byte more closes 1009; malformed
/// frames are answered with `error` frames and the socket stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_size_limit_and_malformed_frames() {
    let s = server().await;
    let t = Target::of(&s);
    let (a, b) = pair(&t, "Alice", "Bob").await;
    let mut wa = online(&t, &a).await;
    let mut wb = online(&t, &b).await;

    let frame = |cid: &str, len: usize| {
        let base = json!({"type": "relay", "target": b.uid, "client_id": cid, "payload": ""})
            .to_string()
            .len();
        let text =
            json!({"type": "relay", "target": b.uid, "client_id": cid, "payload": "x".repeat(len - base)})
                .to_string();
        assert_eq!(text.len(), len);
        text
    };
    wa.send_text(&frame("big-1", 1_048_576)).await;
    let m = hex32(&queued_reply(&mut wa, "big-1").await["message_id"]);
    let f = delivery(&mut wb, &a, &b).await;
    assert_eq!(f["message_id"], m.as_str());
    assert!(f["payload"].as_str().is_some_and(|p| p.len() > 1_048_000));
    wb.ack_all().await;
    let _ = wa.try_send_text(frame("big-2", 1_048_577)).await;
    assert_eq!(wa.expect_close(WAIT).await.0, 1009, "a frame over 1 MiB");
    wb.expect_no_frame("relay_delivery", t.quiet).await;

    let mut wa = online(&t, &a).await;
    let cases: Vec<(Value, &str, Option<Value>)> = vec![
        (json!([1, 2]), "invalid_json", Some(Value::Null)),
        (json!("str"), "invalid_json", Some(Value::Null)),
        (json!({}), "invalid_frame", Some(Value::Null)),
        (json!({"type": 5}), "invalid_frame", None),
        (
            json!({"type": "relay", "target": b.uid.parse::<u64>().expect("uid"), "payload": "x", "client_id": "m-1"}),
            "invalid_frame",
            Some(json!("m-1")),
        ),
        (
            json!({"type": "relay", "payload": "x", "client_id": "m-2"}),
            "invalid_frame",
            Some(json!("m-2")),
        ),
        (
            json!({"type": "relay", "target": b.uid, "client_id": "m-3"}),
            "invalid_frame",
            Some(json!("m-3")),
        ),
        (
            json!({"type": "relay", "target": b.uid, "payload": 5, "client_id": "m-4"}),
            "invalid_frame",
            Some(json!("m-4")),
        ),
        (
            json!({"type": "relay", "target": b.uid, "payload": "", "client_id": "m-5"}),
            "invalid_frame",
            Some(json!("m-5")),
        ),
        (
            json!({"type": "relay", "target": a.uid, "payload": "x", "client_id": "m-6"}),
            "invalid_target",
            Some(json!("m-6")),
        ),
        (
            json!({"type": "relay", "target": "10000000", "payload": "x", "client_id": "m-7"}),
            "not_a_contact",
            Some(json!("m-7")),
        ),
        (
            json!({"type": "ack_received"}),
            "invalid_frame",
            Some(json!("ack_received")),
        ),
        (
            json!({"type": "presence", "status": "busy"}),
            "invalid_frame",
            Some(json!("presence")),
        ),
        (
            json!({"type": "ack_read", "message_id": "0123456789abcdef0123456789abcdef"}),
            "unknown_message",
            Some(json!("ack_read")),
        ),
    ];
    for (frame, reason, reference) in cases {
        wa.send_text(&frame.to_string()).await;
        let e = wa.recv_type("error", WAIT).await;
        assert_eq!(e["reason"], reason, "reply to {frame}: {e}");
        assert!(e["message"].is_string(), "{e}");
        if let Some(r) = reference {
            assert_eq!(e["ref"], r, "ref of the reply to {frame}: {e}");
        }
    }
    wa.ping().await;
    assert!(wa.closed.is_none());
    wb.expect_no_frame("relay_delivery", t.quiet).await;
    wa.ack_and_close().await;
    wb.ack_and_close().await;
    s.stop().await;
}

/// §3.4: per-connection frame budget; acks are free; the grace-th refused frame closes 1008.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_rate_limit_refuses_then_closes() {
    let mut config = fixture();
    config.ws.rate_limit_messages = 10;
    config.ws.rate_limit_period = 60;
    config.ws.rate_limit_grace = 3;
    let s = server_with(config).await;
    let t = Target::of(&s);
    let (a, b) = pair(&t, "Alice", "Bob").await;
    let mut wa = online(&t, &a).await;
    let mut wb = online(&t, &b).await;
    // Acks do not count against the budget.
    for _ in 0..30 {
        wa.ack_up_to(1).await;
    }
    for _ in 0..10 {
        wa.ping().await;
    }
    // Over budget: not processed, answered `rate_limited`.
    wa.send_json(&json!({"type": "relay", "target": b.uid, "payload": "x", "client_id": "over-1"}))
        .await;
    let e = wa.recv_type("error", WAIT).await;
    assert_eq!(
        (&e["reason"], &e["ref"]),
        (&json!("rate_limited"), &json!("over-1")),
        "{e}"
    );
    wa.send_json(&json!({"type": "ping"})).await;
    let e = wa.recv_type("error", WAIT).await;
    assert_eq!(
        (&e["reason"], &e["ref"]),
        (&json!("rate_limited"), &json!("ping")),
        "{e}"
    );
    for _ in 0..5 {
        wa.ack_up_to(1).await;
    }
    wa.expect_no(
        "a reply to an ack",
        |f| is(f, "error") || is(f, "pong"),
        t.quiet,
    )
    .await;
    // The third refused frame closes.
    wa.send_json(&json!({"type": "ping"})).await;
    assert_eq!(
        wa.expect_close(WAIT).await,
        (1008, "rate_limited".to_owned())
    );
    assert!(
        !wa.pending.iter().any(|f| is(f, "pong")),
        "no pong past the budget: {:?}",
        wa.pending
    );
    wb.expect_no_frame("relay_delivery", t.quiet).await;
    // The budget is per connection: a new socket starts afresh.
    let mut wa = online(&t, &a).await;
    wa.ping().await;
    wa.close().await;
    wb.close().await;
    s.stop().await;
}

/// DESIGN guarantee 5 and §5.3: a socket that never reads while thousands of large messages are
/// queued for it is closed; it never blocks the sender or another pair's live delivery; and
/// nothing queued for it is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_closed_and_others_are_unaffected() {
    const FLOOD: usize = 2000;
    const CHUNK: usize = 50;
    let mut config = fixture();
    config.ws.rate_limit_messages = 1_000_000;
    // Keepalive must not be what closes the slow socket.
    config.ws.ping_interval = 3600;
    let s = server_with(config).await;
    let t = Target::of(&s);
    let (a, slow) = pair(&t, "Flood", "Slow").await;
    let (p, q) = pair(&t, "Pat", "Quinn").await;
    let mut ws_slow = WsClient::open(t.http, &slow.token).await;
    ws_slow.sync().await; // then it stops reading
    let mut wp = online(&t, &p).await;
    let mut wq = online(&t, &q).await;

    let mut wa = online(&t, &a).await;
    let (fa, fslow) = (a.clone(), slow.clone());
    let flood = tokio::spawn(async move {
        let payload = "s".repeat(64 * 1024);
        let mut ids = Vec::with_capacity(FLOOD);
        for chunk in 0..FLOOD / CHUNK {
            for i in 0..CHUNK {
                let n = chunk * CHUNK + i;
                wa.send_json(
                    &json!({"type": "relay", "target": fslow.uid, "payload": payload,
                                     "client_id": format!("f-{n}")}),
                )
                .await;
            }
            for i in 0..CHUNK {
                let cid = format!("f-{}", chunk * CHUNK + i);
                let q = queued_reply(&mut wa, &cid).await;
                assert_eq!(q["from"], fa.uid.as_str());
                ids.push(hex32(&q["message_id"]));
            }
        }
        (wa, ids)
    });
    // Live delivery between P and Q continues during the flood.
    let mut live = 0;
    while !flood.is_finished() || live < 20 {
        let m = relay(
            &mut wp,
            &p,
            &q,
            &format!("live-{live}"),
            &format!("l-{live}"),
        )
        .await;
        let f = delivery(&mut wq, &p, &q).await;
        assert_eq!(f["message_id"], m.as_str(), "live delivery #{live}");
        wq.ack_all().await;
        live += 1;
        assert!(live < 100_000, "flood never finished");
    }
    let (wa, ids) = tokio::time::timeout(Duration::from_secs(300), flood)
        .await
        .expect("the sender was never blocked")
        .expect("flood task");
    assert_eq!(ids.len(), FLOOD);

    // The slow socket was closed by the server (close frame or dropped connection).
    // `expect_close` reads what is buffered and panics unless the connection ends.
    let (code, reason) = ws_slow.expect_close(Duration::from_secs(60)).await;
    eprintln!(
        "slow consumer closed with {code} {reason:?} after {} frames; {live} live deliveries meanwhile",
        ws_slow.received.len()
    );
    drop(ws_slow);

    // Nothing is lost: the device's queue still holds every message, in order.
    let mut ws = WsClient::open(t.http, &slow.token).await;
    let mut got_ids = Vec::with_capacity(FLOOD);
    let sync = loop {
        let f = ws
            .recv_where(
                "backlog or sync_done",
                |f| f.get("seq").is_some() || is(f, "sync_done"),
                WAIT,
            )
            .await;
        if is(&f, "sync_done") {
            break f;
        }
        realtime::assert_dm_delivery(&f, &a, &slow);
        got_ids.push(f["message_id"].as_str().expect("id").to_owned());
        // 64 KiB frames: the 4 MiB window (PROTOCOL §1.5) holds about 60 of them.
        if got_ids.len() % 16 == 0 {
            ws.ack_all().await;
        }
    };
    assert_eq!(got_ids, ids, "every flooded message, in order, once");
    assert_eq!(sync["count"], FLOOD, "{sync}");
    ws.ack_and_close().await;
    wa.ack_and_close().await;
    wp.ack_and_close().await;
    wq.ack_and_close().await;
    s.stop().await;
}

/// §5.1 admission and §3.2 revocation: `Origin: null` is accepted, an expired token gets 1008
/// `token_expired`, revoking a session (by a password change) closes its open socket 1008
/// `token_revoked` and refuses new ones; `?token=` works next to other query parameters on any path of the second port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_expiry_and_revocation() {
    let s = server().await;
    let t = Target::of(&s);
    let c = &t.client;
    let (a, _b) = pair(&t, "Alice", "Bob").await;
    let a2 = second_device(&t, &a).await;

    let mut ws = WsClient::connect(t.http, "/ws", Some(&a.token), true, Some("null")).await;
    ws.sync().await;
    ws.close().await;
    let mut ws = WsClient::connect(
        t.ws,
        "/x?foo=1",
        Some(&a.token),
        false,
        Some(ALLOWED_ORIGIN),
    )
    .await;
    ws.sync().await;
    ws.close().await;

    let expired = melo::crypto::jwt::TokenCodec::new(
        common::keys(),
        "pixeltoo.ru".into(),
        "mvp_clients".into(),
        -60,
    )
    .issue(
        a.uid.parse().expect("uid"),
        melo::model::SessionId(a.session_id),
    )
    .await
    .expect("issue");
    let mut ws = WsClient::connect(t.http, "/ws", Some(&expired), true, None).await;
    assert_eq!(
        ws.expect_close(WAIT).await,
        (1008, "token_expired".to_owned())
    );

    let mut wa = online(&t, &a).await;
    let mut wa2 = WsClient::connect(t.ws, "/anything", Some(&a2.token), false, None).await;
    wa2.sync().await;
    // A password change revokes every other session (§4.3, §3.2).
    let r = c
        .put(
            "/profile",
            Some(&a.token),
            &json!({"password": "Passw0rd-New1", "current_password": a.password}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        wa2.expect_close(WAIT).await,
        (1008, "token_revoked".to_owned()),
        "the revoked session's socket"
    );
    let mut again = WsClient::connect(t.http, "/ws", Some(&a2.token), true, None).await;
    assert_eq!(
        again.expect_close(WAIT).await,
        (1008, "token_revoked".to_owned())
    );
    // The other session is untouched.
    wa.ping().await;
    wa.ack_and_close().await;
    s.stop().await;
}

/// §3.4/§5.1: at most `WS_MAX_CONNECTIONS_PER_IP` live sockets per IP; the check comes first in
/// admission (even before the token), and a closed socket frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_ip_are_limited() {
    let mut config = fixture();
    config.ws.max_connections_per_ip = 3;
    let s = server_with(config).await;
    let t = Target::of(&s);
    let a = new_user(&t.client, "Alice").await;
    let a2 = second_device(&t, &a).await;
    let a3 = second_device(&t, &a).await;
    let a4 = second_device(&t, &a).await;
    let w1 = online(&t, &a).await;
    let w2 = online(&t, &a2).await;
    let mut w3 = WsClient::connect(t.ws, "/", Some(&a3.token), true, None).await;
    w3.sync().await;
    for (addr, token) in [(t.http, Some(a4.token.as_str())), (t.ws, None)] {
        let path = if addr == t.http { "/ws" } else { "/" };
        let mut ws = WsClient::connect(addr, path, token, true, None).await;
        assert_eq!(
            ws.expect_close(WAIT).await,
            (1013, "too_many_connections".to_owned()),
            "a fourth socket on {addr}"
        );
    }
    // A closed socket frees its place (give the server a moment to forget it); the refused
    // sockets never counted.
    w1.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut w4 = online(&t, &a4).await;
    w4.ping().await;
    w4.close().await;
    w2.close().await;
    w3.close().await;
    s.stop().await;
}
