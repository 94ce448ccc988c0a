//! Web Push end to end: the server's built-in provider posts RFC 8291-encrypted, VAPID-signed,
//! content-free notifications to a real push service on 127.0.0.1 (tests/common/push_service.rs
//! verifies the JWT and decrypts with the subscription's private key).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::push_service::PushService;
use common::realtime::{hex32, make_contacts, online, relay, second_device, Target};
use common::{new_user, test_config, TestServer};
use melo::{Config, MemoryStore};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);

fn config() -> Config {
    let mut c = test_config();
    c.push.allow_http = true;
    c.push.allow_private = true;
    c.push.coalesce_seconds = 30;
    c
}

async fn server() -> TestServer {
    TestServer::start_with(config(), Arc::new(MemoryStore::new())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vapid_key_is_served_and_registration_is_validated() {
    let s = server().await;
    let c = &s.client;
    let r = c.get("/vapid_public_key", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let key = r.body["vapid_public_key"].as_str().expect("key");
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key)
        .expect("base64url without padding");
    assert_eq!((raw.len(), raw[0]), (65, 4), "uncompressed P-256 point");

    let a = new_user(c, "pa").await;
    let bad = [
        json!({}),
        json!({"platform": "web"}),
        json!({"subscription": {"endpoint": "https://x", "keys": {"p256dh": "k", "auth": "a"}}}),
        json!({"subscription": {"endpoint": "https://push.example/abc", "keys": {"p256dh": "", "auth": "a"}}}),
        json!({"subscription": {"endpoint": "ftp://push.example/abc", "keys": {"p256dh": "k", "auth": "a"}}}),
        json!({"platform": "android"}),
        json!({"platform": "symbian", "push_token": "t"}),
        json!({"subscription": "nope"}),
    ];
    for body in bad {
        let r = c.post("/register_push", Some(&a.token), &body).await;
        assert_eq!(r.status, 422, "{body} → {}", r.body);
        assert_eq!(r.body["error"]["reason"], "validation_failed", "{}", r.body);
    }
    for body in [
        json!({"platform": "android", "push_token": "fcm-token"}),
        json!({"platform": "ios", "token": "apns-token"}),
        json!({"subscription": {"endpoint": "https://push.example/abc", "keys": {"p256dh": "k", "auth": "a"}}}),
    ] {
        let r = c.post("/register_push", Some(&a.token), &body).await;
        assert_eq!(r.body, json!({"status": "ok"}), "{body}");
    }
    c.post("/register_push", None, &json!({}))
        .await
        .assert_error(401, "unauthenticated");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_devices_get_content_free_pushes_once() {
    let push = PushService::start().await;
    let s = server().await;
    let t = Target::of(&s);
    let a = new_user(&t.client, "pa").await;
    let b = new_user(&t.client, "pb").await;
    // B's phone registers, then goes offline (it has no socket).
    let r = t
        .client
        .post(
            "/register_push",
            Some(&b.token),
            &json!({"subscription": push.browser_subscription("/b")}),
        )
        .await;
    assert_eq!(r.body, json!({"status": "ok"}));

    // A contact request wakes B.
    make_contacts(&t, &a, &b).await;
    let got = push.wait_for(1, WAIT).await;
    assert_eq!(got[0].path, "/b");
    assert!(got[0].vapid_ok, "VAPID JWT verified: {:?}", got[0].error);
    assert_eq!(
        got[0].payload,
        json!({"type": "contact_request", "from": a.uid})
    );
    assert_eq!(got[0].content_encoding.as_deref(), Some("aes128gcm"));
    assert_eq!(got[0].ttl, Some(86_400));

    // Messages while B is offline: one push (coalesced), naming the first message only.
    let mut wa = online(&t, &a).await;
    let m1 = relay(&mut wa, &a, &b, "UEFZTE9BRDE=", "p1").await;
    relay(&mut wa, &a, &b, "UEFZTE9BRDI=", "p2").await;
    let got = push.wait_for(2, WAIT).await;
    assert_eq!(
        got[1].payload,
        json!({"type": "message", "message_id": m1, "chat_id": null})
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(push.received().len(), 2, "coalesced: {:?}", push.received());

    // An online device gets no push.
    let mut wb = online(&t, &b).await;
    relay(&mut wa, &a, &b, "UEFZTE9BRDM=", "p3").await;
    wb.recv_type("relay_delivery", WAIT).await;

    // A call to B while B's only device is offline: a `call` push, urgent.
    wb.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    wa.send_json(&json!({"type": "call_start", "target": b.uid}))
        .await;
    let ringing = wa.recv_type("call_state", WAIT).await;
    let call_id = hex32(&ringing["call_id"]);
    let got = push.wait_for(3, WAIT).await;
    assert_eq!(
        got[2].payload,
        json!({"type": "call", "call_id": call_id, "from": a.uid})
    );
    assert_eq!(got[2].urgency.as_deref(), Some("high"));
    assert!(got.iter().all(|r| r.vapid_ok));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_subscription_is_removed_and_revocation_removes_registrations() {
    let push = PushService::start().await;
    let s = server().await;
    let t = Target::of(&s);
    let a = new_user(&t.client, "ga").await;
    let b = new_user(&t.client, "gb").await;
    let b2 = second_device(&t, &b).await;
    push.respond_with("/gone", 410);
    for (u, path) in [(&b, "/gone"), (&b2, "/b2")] {
        let r = t
            .client
            .post(
                "/register_push",
                Some(&u.token),
                &json!({"subscription": push.browser_subscription(path)}),
            )
            .await;
        assert_eq!(r.body, json!({"status": "ok"}));
    }
    let store = s.store.clone();
    assert_eq!(
        store
            .push_registrations(b.uid.parse().expect("uid"))
            .await
            .expect("list")
            .len(),
        2
    );
    make_contacts(&t, &a, &b).await;
    push.wait_for(2, WAIT).await;
    // The 410 removed the first device's registration; the other stays.
    let mut left = Vec::new();
    for _ in 0..50 {
        left = store
            .push_registrations(b.uid.parse().expect("uid"))
            .await
            .expect("list");
        if left.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left.len(), 1, "the gone subscription was deleted");
    assert_eq!(left[0].0 .0, b2.session_id);
    // Revoking B2's session deletes its registration.
    let r = t
        .client
        .call(
            http::Method::DELETE,
            &format!("/sessions/{}", b2.session_id),
            Some(&b.token),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(store
        .push_registrations(b.uid.parse().expect("uid"))
        .await
        .expect("list")
        .is_empty());
    s.stop().await;
}
