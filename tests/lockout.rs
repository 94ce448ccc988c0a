//! The client address behind trusted proxies and the failed-login lockout as amended
//! (PROTOCOL §3.4): the right-most untrusted `X-Forwarded-For` entry, CIDR proxies, IPv6 by
//! /64; lockout per (account, IP), per account and per IP; a valid device token never locked.

mod common;

use std::sync::Arc;

use common::{login, new_user, register, test_config, Client, Resp, TestServer};
use http::Method;
use melo::MemoryStore;
use serde_json::{json, Value};

/// `POST /login` with `body`, sent with `X-Forwarded-For: xff` when given.
async fn login_via(c: &Client, xff: Option<&str>, body: Value) -> Resp {
    let mut req = c
        .request(Method::POST, "/login", None)
        .header("content-type", "application/json");
    if let Some(v) = xff {
        req = req.header("x-forwarded-for", v);
    }
    let body =
        http_body_util::Full::new(bytes::Bytes::from(serde_json::to_vec(&body).expect("json")));
    c.send(req.body(body).expect("request")).await
}

async fn password_login(c: &Client, xff: Option<&str>, id: &str, password: &str) -> Resp {
    let body = json!({"identifier": id, "password": password, "device_id": "a1b2c3d4e5f60718"});
    login_via(c, xff, body).await
}

const P: &str = "198.51.100.7";

#[tokio::test]
async fn a_forged_left_entry_does_not_move_the_client() {
    let mut cfg = test_config();
    cfg.limits.failed_login_ip_limit = 3;
    cfg.http.trusted_proxies = vec!["127.0.0.1".parse().expect("range")];
    let s = TestServer::start_with(cfg, Arc::new(MemoryStore::new())).await;
    let c = &s.client;
    let (_, phone, password) = register(c, "Yvonne").await;
    // Three failures from P (unknown accounts), each with a different forged left entry.
    for i in 0..3 {
        let xff = format!("203.0.113.{i}, {P}");
        password_login(c, Some(&xff), &common::random_phone(), "Wrong-Passw0rd")
            .await
            .assert_error(401, "invalid_credentials");
    }
    // P is locked however the left part is forged; Y still logs in from elsewhere.
    for xff in [
        P.to_owned(),
        format!("203.0.113.99, {P}"),
        format!("10.9.9.9, {P}"),
    ] {
        password_login(c, Some(&xff), &phone, &password)
            .await
            .assert_error(429, "login_locked");
    }
    let r = password_login(c, Some("192.0.2.7"), &phone, &password).await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.stop().await;
}

#[tokio::test]
async fn cidr_proxies_are_skipped_and_ipv6_clients_share_their_64() {
    let mut cfg = test_config();
    cfg.limits.failed_login_limit = 2;
    cfg.http.trusted_proxies = vec![
        "127.0.0.1".parse().expect("range"),
        "10.0.0.0/8".parse().expect("range"),
    ];
    let s = TestServer::start_with(cfg, Arc::new(MemoryStore::new())).await;
    let c = &s.client;
    let (_, phone, password) = register(c, "Xavier").await;
    // Two failures from two addresses of one /64, each behind a chain of CIDR-trusted hops.
    for client in ["2001:db8:1:2::1", "2001:db8:1:2:ffff:1:2:3"] {
        let xff = format!("{client}, 10.1.1.1, 10.2.2.2");
        password_login(c, Some(&xff), &phone, "Wrong-Passw0rd")
            .await
            .assert_error(401, "invalid_credentials");
    }
    password_login(c, Some("2001:db8:1:2::abcd"), &phone, &password)
        .await
        .assert_error(429, "login_locked");
    // Another /64 is another client.
    let r = password_login(c, Some("2001:db8:1:3::1"), &phone, &password).await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.stop().await;
}

#[tokio::test]
async fn the_lock_is_per_account_and_ip_and_a_device_token_always_works() {
    let mut cfg = test_config();
    cfg.limits.failed_login_limit = 5;
    cfg.limits.failed_login_ip_limit = 10;
    cfg.http.trusted_proxies = vec!["127.0.0.1".parse().expect("range")];
    let s = TestServer::start_with(cfg, Arc::new(MemoryStore::new())).await;
    let c = &s.client;
    let x = new_user(c, "Xavier").await;
    let (_, y_phone, y_password) = register(c, "Yvonne").await;
    for _ in 0..5 {
        password_login(c, Some(P), &x.phone, "Wrong-Passw0rd")
            .await
            .assert_error(401, "invalid_credentials");
    }
    let r = password_login(c, Some(P), &x.phone, &x.password).await;
    r.assert_error(429, "login_locked");
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("int");
    assert!((1..=300).contains(&retry), "{retry}");
    // Only the pair (X, P) is locked: X logs in from elsewhere, Y from P.
    let r = password_login(c, None, &x.phone, &x.password).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        password_login(c, Some(P), &y_phone, &y_password)
            .await
            .status,
        200
    );
    // X's installed device logs in from P with its device token, lock or not.
    let token_login =
        |token: &str| json!({"identifier": x.phone, "device_id": x.device, "device_token": token});
    let r = login_via(c, Some(P), token_login(&x.device_token)).await;
    assert_eq!(
        r.status, 200,
        "a valid device token is never locked: {}",
        r.body
    );
    let fresh = r.body["device_token"].as_str().expect("token").to_owned();
    // A wrong device token counts for the IP only: 4 of them leave X's own counters alone…
    for _ in 0..4 {
        login_via(c, Some("192.0.2.55"), token_login("0000"))
            .await
            .assert_error(401, "invalid_credentials");
    }
    let r = password_login(c, Some("192.0.2.66"), &x.phone, &x.password).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // … and P, at 5 failures, locks after 5 more (unknown phones).
    for _ in 0..5 {
        password_login(c, Some(P), &common::random_phone(), "Wrong-Passw0rd")
            .await
            .assert_error(401, "invalid_credentials");
    }
    password_login(c, Some(P), &y_phone, &y_password)
        .await
        .assert_error(429, "login_locked");
    // Even from a locked IP a valid device token logs in.
    let r = login_via(c, Some(P), token_login(&fresh)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.stop().await;
}

#[tokio::test]
async fn the_account_wide_limit_locks_every_address() {
    let mut cfg = test_config();
    cfg.limits.failed_login_limit = 5;
    cfg.limits.failed_login_account_limit = 4;
    cfg.http.trusted_proxies = vec!["127.0.0.1".parse().expect("range")];
    let s = TestServer::start_with(cfg, Arc::new(MemoryStore::new())).await;
    let c = &s.client;
    let x = new_user(c, "Xavier").await;
    for i in 0..4 {
        let ip = format!("203.0.113.{i}");
        password_login(c, Some(&ip), &x.phone, "Wrong-Passw0rd")
            .await
            .assert_error(401, "invalid_credentials");
    }
    for ip in ["203.0.113.200", "192.0.2.1"] {
        password_login(c, Some(ip), &x.phone, &x.password)
            .await
            .assert_error(429, "login_locked");
    }
    login(c, &x.phone, &x.password, &x.device)
        .await
        .assert_error(429, "login_locked");
    let body =
        json!({"identifier": x.phone, "device_id": x.device, "device_token": x.device_token});
    let r = login_via(c, Some("192.0.2.1"), body).await;
    assert_eq!(r.status, 200, "the device still logs in: {}", r.body);
    s.stop().await;
}
