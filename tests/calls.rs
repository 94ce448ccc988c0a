//! Call signalling in-process: PROTOCOL §7 S14 and the paths it does not reach — a callee device
//! that connects while the call rings, the reconnect grace period, revocation ending a call.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::calls::{self, forwarded, state};
use common::realtime::{hex32, make_contacts, online, second_device, Target, ALLOWED_ORIGIN};
use common::ws::{is, WsClient, WAIT};
use common::{new_user, test_config, TestServer};
use melo::{Config, MemoryStore};
use serde_json::json;

fn fixture() -> Config {
    let mut c = test_config();
    c.http.cors_origins = vec![ALLOWED_ORIGIN.into()];
    c.realtime.call_ring_timeout = 5;
    c.realtime.call_reconnect_grace = 1;
    c.realtime.turn_urls = vec!["turn:127.0.0.1:3478".into()];
    c.realtime.turn_secret = Some(melo::config::Secret::new("s3cret"));
    c
}

async fn server() -> TestServer {
    TestServer::start_with(fixture(), Arc::new(MemoryStore::new())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s14_calls() {
    let s = server().await;
    calls::s14(&Target::of(&s)).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_connecting_while_it_rings_gets_the_call_and_the_offer() {
    let s = server().await;
    let t = Target::of(&s);
    let a = new_user(&t.client, "ca").await;
    let b = new_user(&t.client, "cb").await;
    make_contacts(&t, &a, &b).await;
    let mut wa = online(&t, &a).await;
    wa.send_json(&json!({"type": "offer", "target": b.uid, "sdp": "v=0 late"}))
        .await;
    let x = hex32(&state(&mut wa, "ringing").await["call_id"]);
    let mut wb = WsClient::open(t.http, &b.token).await;
    wb.sync().await;
    let start = forwarded(&mut wb, "call_start", &x, &a.uid).await;
    assert_eq!(start["media"], "audio");
    let offer = forwarded(&mut wb, "offer", &x, &a.uid).await;
    assert_eq!(offer["sdp"], "v=0 late");
    // The late device can accept.
    wb.send_json(&json!({"type": "answer", "target": a.uid, "sdp": "v=0 ans"}))
        .await;
    forwarded(&mut wa, "answer", &x, &b.uid).await;
    state(&mut wa, "accepted").await;
    state(&mut wb, "accepted").await;
    wa.send_json(&json!({"type": "hangup", "target": b.uid}))
        .await;
    state(&mut wb, "ended").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engaged_device_may_reconnect_within_the_grace_period_and_not_after() {
    let s = server().await;
    let t = Target::of(&s);
    let a = new_user(&t.client, "ga").await;
    let b = new_user(&t.client, "gb").await;
    make_contacts(&t, &a, &b).await;
    let mut wa = online(&t, &a).await;
    let wb = online(&t, &b).await;
    let mut wb = wb;
    wa.send_json(&json!({"type": "call_start", "target": b.uid}))
        .await;
    let x = hex32(&state(&mut wa, "ringing").await["call_id"]);
    wb.send_json(&json!({"type": "call_accept", "target": a.uid}))
        .await;
    state(&mut wa, "accepted").await;
    // B drops and comes back at once: the call goes on (grace is 1 s).
    wb.close().await;
    let mut wb = online(&t, &b).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    wa.send_json(&json!({"type": "candidate", "target": b.uid, "candidate": {"c": 1}}))
        .await;
    forwarded(&mut wb, "candidate", &x, &a.uid).await;
    // B drops for longer than the grace period: A gets `ended` with `connection_lost`.
    wb.close().await;
    let ended = wa
        .recv_where(
            "ended",
            |f| is(f, "call_state") && f["state"] == "ended",
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(ended["reason"], "connection_lost");
    assert_eq!(ended["from"], b.uid.as_str());
    // Both are free again.
    wa.send_json(&json!({"type": "call_start", "target": b.uid}))
        .await;
    state(&mut wa, "ringing").await;
    s.stop().await;
}

/// How B's engaged second session is ended.
enum EndSession {
    /// `DELETE /sessions/{id}` from B's first session.
    Revoke,
    /// A password change from B's first session (revokes every other session).
    PasswordChange,
}

/// A's call is accepted on B's second device, then that session ends `how`: its socket closes
/// 1008 `token_revoked`, A's call ends with `session_revoked`, and both are free again.
async fn ending_an_engaged_session_ends_the_call(how: EndSession) {
    let s = server().await;
    let t = Target::of(&s);
    let a = new_user(&t.client, "ra").await;
    let b = new_user(&t.client, "rb").await;
    make_contacts(&t, &a, &b).await;
    let b2 = second_device(&t, &b).await;
    let mut wa = online(&t, &a).await;
    let mut wb2 = online(&t, &b2).await;
    wa.send_json(&json!({"type": "call_start", "target": b.uid}))
        .await;
    state(&mut wa, "ringing").await;
    wb2.send_json(&json!({"type": "call_accept", "target": a.uid}))
        .await;
    state(&mut wa, "accepted").await;
    let c = &t.client;
    let r = match how {
        EndSession::Revoke => {
            let path = format!("/sessions/{}", b2.session_id);
            c.call(http::Method::DELETE, &path, Some(&b.token), None)
                .await
        }
        EndSession::PasswordChange => {
            let body = json!({"password": "N3w-Passw0rd!", "current_password": b.password});
            c.put("/profile", Some(&b.token), &body).await
        }
    };
    assert_eq!(r.status, 200, "{}", r.body);
    let (code, reason) = wb2.expect_close(WAIT).await;
    assert_eq!((code, reason.as_str()), (1008, "token_revoked"));
    let ended = state(&mut wa, "ended").await;
    assert_eq!(ended["reason"], "session_revoked");
    wa.send_json(&json!({"type": "call_start", "target": b.uid}))
        .await;
    state(&mut wa, "ringing").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_an_engaged_session_ends_the_call() {
    ending_an_engaged_session_ends_the_call(EndSession::Revoke).await;
}

/// A password change revokes every other session as `DELETE /sessions/{id}` does, calls
/// included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_ends_the_other_sessions_calls() {
    ending_an_engaged_session_ends_the_call(EndSession::PasswordChange).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_cancel_while_ringing_is_missed_for_both_and_frees_them() {
    let s = server().await;
    let t = Target::of(&s);
    let a = new_user(&t.client, "xa").await;
    let b = new_user(&t.client, "xb").await;
    make_contacts(&t, &a, &b).await;
    let mut wa = online(&t, &a).await;
    let mut wb = online(&t, &b).await;
    wa.send_json(&json!({"type": "call_start", "target": b.uid}))
        .await;
    let x = hex32(&state(&mut wa, "ringing").await["call_id"]);
    forwarded(&mut wb, "call_start", &x, &a.uid).await;
    // Only the calling device drives the call: A's second device cannot hang it up.
    let a2 = second_device(&t, &a).await;
    let mut wa2 = online(&t, &a2).await;
    wa2.send_json(&json!({"type": "hangup", "target": b.uid}))
        .await;
    let e = wa2.recv_type("error", WAIT).await;
    assert_eq!(e["reason"], "call_not_found");
    // A second call_start while in a call is refused.
    wa.send_json(&json!({"type": "call_start", "target": b.uid}))
        .await;
    assert_eq!(
        wa.recv_type("error", WAIT).await["reason"],
        "call_in_progress"
    );
    wa.send_json(&json!({"type": "hangup", "target": b.uid, "call_id": x}))
        .await;
    forwarded(&mut wb, "hangup", &x, &a.uid).await;
    for ws in [&mut wa, &mut wb] {
        let f = state(ws, "missed").await;
        assert_eq!(
            (f["from"].as_str(), f["to"].as_str()),
            (Some(a.uid.as_str()), Some(b.uid.as_str()))
        );
    }
    // The ring timeout of the cancelled call changes nothing later; both can call again.
    wb.send_json(&json!({"type": "call_start", "target": a.uid}))
        .await;
    let y = hex32(&state(&mut wb, "ringing").await["call_id"]);
    assert_ne!(x, y);
    s.stop().await;
}
