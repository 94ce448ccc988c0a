//! PROTOCOL scenario S15 part 2 (default limits) against the example binary: security headers
//! and CORS, the per-IP socket cap, the WebSocket budget, the HTTP budget with `Retry-After`, and
//! the failed-login lockout per account and per client IP behind a trusted proxy.

mod common;

use std::time::Duration;

use common::binary::{start, stop};
use common::ws::{is, WsClient};
use common::{random_device, Client, Resp};
use http::Method;
use serde_json::json;

const ORIGIN: &str = "http://127.0.0.1:5173";
const P: &str = "198.51.100.7";
const WAIT: Duration = Duration::from_secs(5);

fn assert_security_headers(r: &Resp, what: &str) {
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(
        r.header("referrer-policy"),
        Some("strict-origin-when-cross-origin"),
        "{what}"
    );
}

/// `POST /login`, from client IP `xff` (through the trusted proxy 127.0.0.1) when given.
async fn login_from(c: &Client, identifier: &str, password: &str, xff: Option<&str>) -> Resp {
    let mut req = c
        .request(Method::POST, "/login", None)
        .header("content-type", "application/json");
    if let Some(ip) = xff {
        req = req.header("x-forwarded-for", ip);
    }
    let body =
        json!({"identifier": identifier, "password": password, "device_id": random_device()});
    c.send(
        req.body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .expect("request"),
    )
    .await
}

fn retry_after(r: &Resp, max: u64) -> u64 {
    let v: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("integer Retry-After");
    assert!((1..=max).contains(&v), "Retry-After {v} in 1..={max}");
    assert_eq!(r.body["error"]["retry_after"], v, "{}", r.body);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s15_part2_default_limits_against_the_melo_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Defaults (bcrypt cost 12 included), plus the scenario's four settings.
    std::fs::write(
        dir.path().join(".env"),
        format!(
            "HTTP_PORT=0\nWS_PORT=0\nWS_MAX_CONNECTIONS_PER_IP=3\nFAILED_LOGIN_IP_LIMIT=10\n\
             TRUSTED_PROXIES=127.0.0.1\nCORS_ORIGINS={ORIGIN}\n"
        ),
    )
    .expect("write .env");
    let server = start(dir.path());
    let c = &server.client;
    let http = server.http_addr();

    // 4) Security headers and the CORS pre-flight.
    for path in ["/status", "/nope"] {
        assert_security_headers(&c.get(path, None).await, path);
    }
    let pre = c
        .request(Method::OPTIONS, "/sessions/1", None)
        .header("origin", ORIGIN)
        .header("access-control-request-method", "DELETE")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-csrf-token",
        )
        .body(Default::default())
        .expect("request");
    let r = c.send(pre).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    let methods = r.header("access-control-allow-methods").expect("methods");
    for m in ["GET", "POST", "PUT", "DELETE", "OPTIONS"] {
        assert!(methods.contains(m), "{methods}");
    }
    let headers = r
        .header("access-control-allow-headers")
        .expect("headers")
        .to_ascii_lowercase();
    for h in ["authorization", "content-type", "x-csrf-token"] {
        assert!(headers.contains(h), "{headers}");
    }

    // 5) Three sockets per IP; a fourth is closed 1013; closing one frees a place.
    let (_, phone_a, password_a) = common::register(c, "Alice").await;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let r = login_from(c, &phone_a, &password_a, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        tokens.push(r.body["access_token"].as_str().expect("token").to_owned());
    }
    let ta = tokens[0].clone();
    let mut sockets = Vec::new();
    for t in &tokens {
        let mut ws = WsClient::open(http, t).await;
        ws.sync().await;
        sockets.push(ws);
    }
    let mut fourth = WsClient::open(http, &ta).await;
    assert_eq!(
        fourth.expect_close(WAIT).await,
        (1013, "too_many_connections".to_owned())
    );
    sockets.pop().expect("third").close().await;
    let mut freed = None;
    for _ in 0..50 {
        let mut ws = WsClient::open(http, &tokens[2]).await;
        match ws.recv_json(WAIT).await {
            Some(f) if is(&f, "sync_done") || f["seq"].is_i64() => {
                freed = Some(ws);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let freed = freed.expect("a closed socket frees its place");

    // 6) 100 pings → 100 pongs; 101–119 → `rate_limited` each; the 120th closes 1008.
    let ws = &mut sockets[0];
    for i in 1..=100 {
        ws.send_json(&json!({"type": "ping"})).await;
        let f = ws
            .recv_where("pong or error", |f| is(f, "pong") || is(f, "error"), WAIT)
            .await;
        assert!(is(&f, "pong"), "ping {i}: {f}");
    }
    for i in 101..=119 {
        ws.send_json(&json!({"type": "ping"})).await;
        let f = ws
            .recv_where("pong or error", |f| is(f, "pong") || is(f, "error"), WAIT)
            .await;
        assert_eq!(f["reason"], "rate_limited", "ping {i}: {f}");
    }
    ws.send_json(&json!({"type": "ping"})).await;
    assert_eq!(
        ws.expect_close(WAIT).await,
        (1008, "rate_limited".to_owned())
    );
    freed.close().await;
    sockets.remove(1).close().await;

    // 7) The HTTP budget: 20 per window per uid, the 21st is 429 with Retry-After; anonymous
    // requests are budgeted separately.
    for i in 1..=20 {
        let r = c.get("/profile", Some(&ta)).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
    }
    let r = c.get("/profile", Some(&ta)).await;
    r.assert_error(429, "rate_limited");
    retry_after(&r, 60);
    assert_security_headers(&r, "429");
    assert_eq!(c.get("/status", None).await.status, 200);

    // 8) Lockout per (account, client IP P) (5) and per client IP P (FAILED_LOGIN_IP_LIMIT=10),
    // as amended: the client IP is the right-most untrusted `X-Forwarded-For` entry.
    let (_, phone_x, password_x) = common::register(c, "Xavier").await;
    let (_, phone_y, password_y) = common::register(c, "Yvonne").await;
    for _ in 0..5 {
        login_from(c, &phone_x, "Wrong-Passw0rd", Some(P))
            .await
            .assert_error(401, "invalid_credentials");
    }
    let r = login_from(c, &phone_x, &password_x, Some(P)).await;
    r.assert_error(429, "login_locked");
    retry_after(&r, 300);
    assert_security_headers(&r, "login_locked");
    let forged = format!("203.0.113.9, {P}");
    login_from(c, &phone_x, &password_x, Some(&forged))
        .await
        .assert_error(429, "login_locked");
    let r = login_from(c, &phone_x, &password_x, None).await;
    assert_eq!(r.status, 200, "only the pair (X, P) is locked: {}", r.body);
    let device = r.body["device_id"].as_str().expect("device").to_owned();
    let device_token = r.body["device_token"].as_str().expect("token").to_owned();
    let mut req = c
        .request(Method::POST, "/login", None)
        .header("content-type", "application/json")
        .header("x-forwarded-for", P);
    req = req.header("user-agent", "s15-device");
    let body = json!({"identifier": phone_x, "device_id": device, "device_token": device_token});
    let r = c
        .send(
            req.body(http_body_util::Full::new(bytes::Bytes::from(
                body.to_string(),
            )))
            .expect("request"),
        )
        .await;
    assert_eq!(r.status, 200, "X's device token from P: {}", r.body);
    assert_eq!(
        login_from(c, &phone_y, &password_y, Some(P)).await.status,
        200
    );
    for i in 0..5 {
        let unknown = format!("+7999555{i:04}");
        login_from(c, &unknown, "Wrong-Passw0rd", Some(P))
            .await
            .assert_error(401, "invalid_credentials");
    }
    let r = login_from(c, &phone_y, &password_y, Some(P)).await;
    r.assert_error(429, "login_locked");
    retry_after(&r, 300);
    login_from(c, &phone_y, &password_y, Some(&forged))
        .await
        .assert_error(429, "login_locked");
    assert_eq!(
        login_from(c, &phone_y, &password_y, None).await.status,
        200,
        "the lock is on P, not on Y"
    );
    stop(server);
}
