//! The wire contract's S14 (calls) against a [`Target`], run in-process (tests/calls.rs) and against
//! the example binary (tests/example_binary.rs). Expects the §7 fixture: `CALL_RING_TIMEOUT=5`,
//! `TURN_URLS=turn:127.0.0.1:3478`, `TURN_SECRET=s3cret`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha1::Sha1;

use super::new_user;
use super::realtime::{hex32, make_contacts, online, second_device, Target};
use super::ws::{is, WsClient, WAIT};

/// The next `call_state` frame with `state`.
pub async fn state(ws: &mut WsClient, st: &str) -> Value {
    ws.recv_where(
        &format!("call_state {st}"),
        |f| is(f, "call_state") && f["state"] == st,
        WAIT,
    )
    .await
}

fn assert_state(f: &Value, call: &str, from: &str, to: &str) {
    assert_eq!(f["call_id"], call, "call_id: {f}");
    assert_eq!(f["from"], from, "from: {f}");
    assert_eq!(f["to"], to, "to: {f}");
    assert!(f.get("seq").is_none(), "call frames are not durable: {f}");
}

/// The next frame of type `ty` (a forwarded call frame).
pub async fn forwarded(ws: &mut WsClient, ty: &str, call: &str, from: &str) -> Value {
    let f = ws
        .recv_where(
            &format!("{ty} of call {call}"),
            |f| is(f, ty) && f["call_id"] == call,
            WAIT,
        )
        .await;
    assert_eq!(f["from"], from, "forwarded from: {f}");
    assert!(f["ts"].is_string(), "forwarded ts: {f}");
    assert!(f.get("seq").is_none(), "call frames are not durable: {f}");
    f
}

fn is_call_frame(f: &Value) -> bool {
    let t = f["type"].as_str().unwrap_or("");
    t.starts_with("call")
        || matches!(
            t,
            "offer" | "answer" | "candidate" | "ice" | "hangup" | "ringing"
        )
}

async fn error(ws: &mut WsClient, reason: &str) -> Value {
    let f = ws.recv_type("error", WAIT).await;
    assert_eq!(f["reason"], reason, "error reason: {f}");
    f
}

/// S14 Calls.
pub async fn s14(t: &Target) {
    let a = new_user(&t.client, "s14a").await;
    let b = new_user(&t.client, "s14b").await;
    let c = new_user(&t.client, "s14c").await;
    make_contacts(t, &a, &b).await;
    make_contacts(t, &c, &b).await;
    let b2 = second_device(t, &b).await;
    let mut wa = online(t, &a).await;
    let mut wb = online(t, &b).await;
    let mut wb2 = online(t, &b2).await;
    let mut wc = online(t, &c).await;

    // 1) ICE servers with TURN REST credentials.
    let r = t.client.get("/ice_servers", Some(&a.token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let servers = r.body["ice_servers"].as_array().expect("ice_servers");
    assert!(servers
        .iter()
        .any(|s| s["urls"].as_str().is_some_and(|u| u.starts_with("stun:"))));
    let turn = servers
        .iter()
        .find(|s| s["urls"].as_str().is_some_and(|u| u.starts_with("turn:")))
        .expect("a turn entry");
    let username = turn["username"].as_str().expect("username");
    let (expiry, uid) = username.split_once(':').expect("expiry:uid");
    assert_eq!(uid, a.uid);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let expiry: i64 = expiry.parse().expect("expiry");
    assert!((expiry - (now + 86_400)).abs() <= 5, "expiry ≈ now + 86400");
    let mut mac = Hmac::<Sha1>::new_from_slice(b"s3cret").expect("hmac");
    mac.update(username.as_bytes());
    assert_eq!(
        turn["credential"].as_str(),
        Some(STANDARD.encode(mac.finalize().into_bytes()).as_str()),
        "credential = base64(HMAC-SHA1(secret, username))"
    );

    // 2) A calls B: A rings, both of B's devices get call_start.
    wa.send_json(&json!({"type": "call_start", "target": b.uid}))
        .await;
    let ringing = state(&mut wa, "ringing").await;
    let x = hex32(&ringing["call_id"]);
    assert_state(&ringing, &x, &a.uid, &b.uid);
    for ws in [&mut wb, &mut wb2] {
        let f = forwarded(ws, "call_start", &x, &a.uid).await;
        assert_eq!(f["media"], "audio");
    }
    // 3) The offer reaches both devices.
    let offer = json!({"type": "call_signal", "target": b.uid, "call_id": x,
        "payload": {"signal": "offer", "sdp": "v=0 offer"}});
    wa.send_json(&offer).await;
    for ws in [&mut wb, &mut wb2] {
        let f = forwarded(ws, "call_signal", &x, &a.uid).await;
        assert_eq!(f["payload"]["sdp"], "v=0 offer");
    }
    // 4) B2 accepts: A and B2 `accepted`, B `answered_elsewhere`.
    wb2.send_json(&json!({"type": "call_accept", "target": a.uid, "call_id": x}))
        .await;
    assert_state(&state(&mut wa, "accepted").await, &x, &b.uid, &a.uid);
    assert_state(&state(&mut wb2, "accepted").await, &x, &b.uid, &a.uid);
    state(&mut wb, "answered_elsewhere").await;
    // 5) SDP/ICE only between A and B2.
    wb2.send_json(&json!({"type": "answer", "target": a.uid, "sdp": "v=0 answer"}))
        .await;
    let f = forwarded(&mut wa, "answer", &x, &b.uid).await;
    assert_eq!(f["sdp"], "v=0 answer");
    let cand = json!({"candidate": "candidate:1 1 UDP 1 127.0.0.1 9 typ host", "sdpMid": "0"});
    wa.send_json(&json!({"type": "candidate", "target": b.uid, "candidate": cand}))
        .await;
    let f = forwarded(&mut wb2, "candidate", &x, &a.uid).await;
    assert_eq!(f["candidate"], cand);
    wb.send_json(&json!({"type": "candidate", "target": a.uid, "candidate": cand}))
        .await;
    error(&mut wb, "call_not_found").await;
    // 6) Connected, announced to both.
    wb2.send_json(&json!({"type": "call_connected", "target": a.uid}))
        .await;
    state(&mut wa, "connected").await;
    state(&mut wb2, "connected").await;
    // 7) A ends: B2 gets call_end and `ended`, A `ended`.
    wa.send_json(&json!({"type": "call_end", "target": b.uid, "call_id": x}))
        .await;
    forwarded(&mut wb2, "call_end", &x, &a.uid).await;
    assert_state(&state(&mut wb2, "ended").await, &x, &a.uid, &b.uid);
    assert_state(&state(&mut wa, "ended").await, &x, &a.uid, &b.uid);
    // B saw none of the SDP/ICE after the accept.
    wb.expect_no(
        "a frame of the engaged pair",
        |f| is(f, "answer") || is(f, "candidate"),
        t.quiet,
    )
    .await;

    // 8) A standalone offer starts a call: call_start (audio) first, then the offer.
    wa.send_json(&json!({"type": "offer", "target": b.uid, "sdp": "v=0 o2"}))
        .await;
    let y = hex32(&state(&mut wa, "ringing").await["call_id"]);
    assert_ne!(x, y);
    for ws in [&mut wb, &mut wb2] {
        let f = ws
            .recv_where(
                "call_start or offer",
                |f| is(f, "call_start") || is(f, "offer"),
                WAIT,
            )
            .await;
        assert!(is(&f, "call_start"), "call_start before the offer: {f}");
        assert_eq!(
            (f["call_id"].as_str(), f["media"].as_str()),
            (Some(y.as_str()), Some("audio"))
        );
        let f = forwarded(ws, "offer", &y, &a.uid).await;
        assert_eq!(f["sdp"], "v=0 o2");
    }
    wb.send_json(&json!({"type": "call_reject", "target": a.uid}))
        .await;
    for ws in [&mut wa, &mut wb, &mut wb2] {
        assert_state(&state(ws, "rejected").await, &y, &b.uid, &a.uid);
    }

    // 9) No answer within CALL_RING_TIMEOUT (5 s): missed, from B to A.
    wa.send_json(&json!({"type": "call_start", "target": b.uid}))
        .await;
    let z = hex32(&state(&mut wa, "ringing").await["call_id"]);
    for ws in [&mut wb, &mut wb2] {
        forwarded(ws, "call_start", &z, &a.uid).await;
    }
    for ws in [&mut wa, &mut wb, &mut wb2] {
        let f = ws
            .recv_where(
                "missed",
                |f| is(f, "call_state") && f["state"] == "missed",
                Duration::from_secs(10),
            )
            .await;
        assert_state(&f, &z, &b.uid, &a.uid);
    }

    // 10) B busy: C gets `busy`, B `missed` for C's call; both from B to C.
    wa.send_json(&json!({"type": "call_start", "target": b.uid, "media": "video"}))
        .await;
    let w = hex32(&state(&mut wa, "ringing").await["call_id"]);
    let f = forwarded(&mut wb, "call_start", &w, &a.uid).await;
    assert_eq!(f["media"], "video");
    wb.send_json(&json!({"type": "call_accept", "target": a.uid}))
        .await;
    forwarded(&mut wa, "call_accept", &w, &b.uid).await;
    state(&mut wa, "accepted").await;
    wc.send_json(&json!({"type": "call_start", "target": b.uid}))
        .await;
    let busy = state(&mut wc, "busy").await;
    let v = hex32(&busy["call_id"]);
    assert_ne!(v, w);
    assert_state(&busy, &v, &b.uid, &c.uid);
    let missed = wb
        .recv_where(
            "missed of C's call",
            |f| is(f, "call_state") && f["call_id"] == v.as_str(),
            WAIT,
        )
        .await;
    assert_eq!(missed["state"], "missed");
    assert_state(&missed, &v, &b.uid, &c.uid);
    wa.send_json(&json!({"type": "hangup", "target": b.uid}))
        .await;
    state(&mut wa, "ended").await;
    state(&mut wb, "ended").await;

    // 11) Strangers cannot call; frames without a call are refused.
    wc.send_json(&json!({"type": "call_start", "target": a.uid}))
        .await;
    error(&mut wc, "not_a_contact").await;
    wc.send_json(&json!({"type": "hangup", "target": b.uid}))
        .await;
    error(&mut wc, "call_not_found").await;
    wa.expect_no(
        "a frame of C's refused call",
        |f| is_call_frame(f) && f["from"] == c.uid.as_str(),
        t.quiet,
    )
    .await;

    // Nothing of the calls was stored: history and B's next backlog hold no call frame.
    let r = t
        .client
        .get(&format!("/messages/history/dm/{}", b.uid), Some(&a.token))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["messages"], json!([]), "no call frame in history");
    wb.close().await;
    let mut wb = WsClient::open(t.http, &b.token).await;
    let backlog = wb.sync().await;
    assert!(
        !backlog.backlog.iter().any(is_call_frame),
        "no call frame in the backlog: {:?}",
        backlog.backlog
    );
    for ws in [wa, wb, wb2, wc] {
        ws.close().await;
    }
}
