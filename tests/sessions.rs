//! Session management: list, revoke one, revoke all others, logout (PROTOCOL §3.2, §4.2, S3, S15.1).

mod common;

use common::realtime::Target;
use common::{new_user, session_scenarios, TestServer};

#[tokio::test]
async fn list_is_current_and_device_fields() {
    let s = TestServer::start().await;
    session_scenarios::s3_sessions(&Target::of(&s)).await;
    s.stop().await;
}

#[tokio::test]
async fn revoking_closes_sockets_and_rejects_tokens() {
    let s = TestServer::start().await;
    session_scenarios::s15_revocation(&Target::of(&s)).await;
    s.stop().await;
}

/// PROTOCOL S3 steps 3–10: device tokens rotate on use, refresh and revoke, and linking.
#[tokio::test]
async fn s3_device_tokens_and_linking() {
    let s = TestServer::start().await;
    session_scenarios::s3_device_tokens_and_linking(&Target::of(&s)).await;
    s.stop().await;
}

/// PROTOCOL S14 step 1: TURN REST credentials, checked with an independent HMAC-SHA1.
#[tokio::test]
async fn ice_servers_with_turn_credentials() {
    use hmac::{Hmac, Mac};
    let mut cfg = common::test_config();
    cfg.realtime.turn_urls = vec!["turn:127.0.0.1:3478".into()];
    cfg.realtime.turn_secret = Some(melo::config::Secret::new("s3cret"));
    let s = TestServer::start_with(cfg, std::sync::Arc::new(melo::MemoryStore::new())).await;
    let a = new_user(&s.client, "Alice").await;
    let r = s.client.get("/ice_servers", Some(&a.token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["ttl"], 86400);
    let list = r.body["ice_servers"].as_array().expect("list");
    assert!(list.iter().any(
        |e| e["urls"].as_str().is_some_and(|u| u.starts_with("stun:"))
            && e.get("username").is_none()
    ));
    let turn = list
        .iter()
        .find(|e| e["urls"] == "turn:127.0.0.1:3478")
        .expect("turn entry");
    let username = turn["username"].as_str().expect("username");
    let (expiry, uid) = username.split_once(':').expect("expiry:uid");
    assert_eq!(uid, a.uid);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let expiry: i64 = expiry.parse().expect("int");
    assert!((expiry - (now + 86400)).abs() <= 5, "{expiry} vs {now}");
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(b"s3cret").expect("key");
    mac.update(username.as_bytes());
    use base64::Engine;
    let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(turn["credential"], want.as_str());
    // Without a secret there are no TURN entries.
    let plain = TestServer::start().await;
    let b = new_user(&plain.client, "Bob").await;
    let r = plain.client.get("/ice_servers", Some(&b.token)).await;
    assert!(r.body["ice_servers"]
        .as_array()
        .expect("list")
        .iter()
        .all(|e| e.get("credential").is_none()));
    plain.stop().await;
    s.stop().await;
}

/// A link code dies with the session that made it: once that session is revoked, redeeming the
/// code fails as a wrong code does.
#[tokio::test]
async fn a_revoked_sessions_link_code_is_refused() {
    use serde_json::json;
    let s = TestServer::start().await;
    let c = &s.client;
    let a = new_user(c, "Alice").await;
    let a2 = common::realtime::second_device(&Target::of(&s), &a).await;
    let r = c
        .post("/devices/link_code", Some(&a2.token), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let code = r.body["link_code"].as_str().expect("code").to_owned();
    let r = c
        .call(
            http::Method::DELETE,
            &format!("/sessions/{}", a2.session_id),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body =
        json!({"identifier": a.uid, "device_id": common::random_device(), "link_code": code});
    c.post("/devices/authorize", None, &body)
        .await
        .assert_error(401, "invalid_credentials");
    s.stop().await;
}
