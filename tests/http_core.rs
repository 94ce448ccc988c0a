//! HTTP core behaviour: headers, CORS, trailing slashes, rate limits and login lockout
//! (PROTOCOL §1.1, §2, §3.4).

mod common;

use std::sync::Arc;

use common::{login, new_user, register, test_config, TestServer};
use http::Method;
use melo::MemoryStore;
use serde_json::json;

fn assert_security_headers(r: &common::Resp) {
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(
        r.header("referrer-policy"),
        Some("strict-origin-when-cross-origin")
    );
}

#[tokio::test]
async fn security_headers_cors_and_trailing_slash() {
    let mut cfg = test_config();
    cfg.http.cors_origins = vec!["http://127.0.0.1:5173".into()];
    let s = TestServer::start_with(cfg, Arc::new(MemoryStore::new())).await;
    let c = &s.client;
    for path in ["/status", "/nope"] {
        assert_security_headers(&c.get(path, None).await);
    }
    assert_eq!(
        c.get("/status/", None).await.status,
        200,
        "one trailing slash is accepted"
    );
    assert_eq!(c.get("/status//", None).await.status, 404);
    let a = new_user(c, "Alice").await;
    assert_eq!(c.get("/profile/", Some(&a.token)).await.status, 200);
    assert_eq!(c.get("/", None).await.body["detail"], "Melo server 0.1.0");

    let pre = c
        .request(Method::OPTIONS, "/sessions/1", None)
        .header("origin", "http://127.0.0.1:5173")
        .header("access-control-request-method", "DELETE")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-csrf-token",
        )
        .body(Default::default())
        .expect("req");
    let r = c.send(pre).await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://127.0.0.1:5173")
    );
    let methods = r.header("access-control-allow-methods").expect("methods");
    for m in ["GET", "POST", "PUT", "DELETE", "OPTIONS"] {
        assert!(methods.contains(m));
    }
    let headers = r
        .header("access-control-allow-headers")
        .expect("headers")
        .to_ascii_lowercase();
    for h in ["authorization", "content-type", "x-csrf-token"] {
        assert!(headers.contains(h));
    }
    assert_security_headers(&r);
    let evil = c
        .request(Method::GET, "/status", None)
        .header("origin", "https://evil.example")
        .body(Default::default())
        .expect("req");
    assert_eq!(
        c.send(evil).await.header("access-control-allow-origin"),
        None
    );
    // Docs pages render the route table.
    let docs = c.get("/docs", None).await;
    assert_eq!(
        docs.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(String::from_utf8_lossy(&docs.raw).contains("/register"));
    s.stop().await;
}

#[tokio::test]
async fn openapi_lists_every_served_route() {
    let s = TestServer::start().await;
    let c = &s.client;
    let doc = c.get("/openapi.json", None).await.body;
    let paths = doc["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for method in item.as_object().expect("item").keys() {
            let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("method");
            let r = c.call(m, path, None, None).await;
            assert_ne!(
                r.reason(),
                "not_found",
                "{method} {path} is documented and routed"
            );
            assert_ne!(r.reason(), "method_not_allowed", "{method} {path}");
        }
    }
    for p in [
        "/login",
        "/register",
        "/profile",
        "/e2e/secret_key",
        "/.well-known/jwks.json",
    ] {
        assert!(paths.contains_key(p), "{p}");
    }
    assert_eq!(
        doc["paths"]["/profile"]["get"]["security"],
        json!([{"bearer": []}])
    );
    s.stop().await;
}

#[tokio::test]
async fn http_budget_per_uid_and_per_ip() {
    let mut cfg = test_config();
    cfg.limits.rate_limit_calls = 5;
    cfg.limits.block_period = 60;
    let s = TestServer::start_with(cfg, Arc::new(MemoryStore::new())).await;
    let c = &s.client;
    // Anonymous requests share the IP budget: register + login use 2 of 5.
    let (uid, phone, password) = register(c, "Alice").await;
    let r = login(c, &phone, &password, "a1b2c3d4e5f60718").await;
    let token = r.body["access_token"].as_str().expect("token").to_owned();
    for _ in 0..5 {
        assert_eq!(
            c.get("/profile", Some(&token)).await.status,
            200,
            "the uid has its own budget"
        );
    }
    let r = c.get("/profile", Some(&token)).await;
    r.assert_error(429, "rate_limited");
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("int");
    assert!((1..=60).contains(&retry));
    assert_eq!(r.body["error"]["retry_after"], retry);
    assert_security_headers(&r);
    // Blocked for every route while the block lasts.
    c.get("/csrf_token", Some(&token))
        .await
        .assert_error(429, "rate_limited");
    // Health, readiness and pre-flights are never counted or refused.
    for _ in 0..10 {
        assert_eq!(c.get("/healthz", None).await.status, 200);
        assert_eq!(c.get("/readyz", None).await.status, 200);
        let pre = c
            .request(Method::OPTIONS, "/profile", None)
            .body(Default::default())
            .expect("req");
        assert_eq!(c.send(pre).await.status, 204);
    }
    // The anonymous IP budget is separate: 3 of 5 left.
    for _ in 0..3 {
        assert_eq!(c.get("/status", None).await.status, 200);
    }
    c.get("/status", None)
        .await
        .assert_error(429, "rate_limited");
    let _ = uid;
    s.stop().await;
}

#[tokio::test]
async fn success_clears_the_account_counter() {
    let mut cfg = test_config();
    cfg.limits.failed_login_limit = 3;
    let s = TestServer::start_with(cfg, Arc::new(MemoryStore::new())).await;
    let c = &s.client;
    let u = new_user(c, "Alice").await;
    for _ in 0..2 {
        login(c, &u.phone, "bad-password", &u.device)
            .await
            .assert_error(401, "invalid_credentials");
    }
    assert_eq!(login(c, &u.phone, &u.password, &u.device).await.status, 200);
    for _ in 0..2 {
        login(c, &u.phone, "bad-password", &u.device)
            .await
            .assert_error(401, "invalid_credentials");
    }
    assert_eq!(
        login(c, &u.phone, &u.password, &u.device).await.status,
        200,
        "counter was reset"
    );
    s.stop().await;
}

#[tokio::test]
async fn concurrent_correct_logins_never_lock_and_locks_expire() {
    let mut cfg = test_config();
    cfg.limits.failed_login_limit = 3;
    cfg.limits.failed_login_block_period = 1;
    let s = TestServer::start_with(cfg, Arc::new(MemoryStore::new())).await;
    let c = &s.client;
    let u = new_user(c, "Alice").await;
    let devices: Vec<String> = (0..8).map(|_| common::random_device()).collect();
    let logins = devices.iter().map(|d| login(c, &u.phone, &u.password, d));
    let results = futures_util::future::join_all(logins).await;
    for r in &results {
        assert!(
            r.status == 200 || r.reason() == "login_locked",
            "{}",
            r.body
        );
        if r.status == 429 {
            assert_eq!(
                r.header("retry-after"),
                Some("1"),
                "a burst is refused briefly, not locked"
            );
        }
    }
    assert_eq!(
        login(c, &u.phone, &u.password, &u.device).await.status,
        200,
        "no lock remains"
    );
    for _ in 0..3 {
        login(c, &u.phone, "wrong-password", &u.device)
            .await
            .assert_error(401, "invalid_credentials");
    }
    login(c, &u.phone, &u.password, &u.device)
        .await
        .assert_error(429, "login_locked");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        login(c, &u.phone, &u.password, &u.device).await.status,
        200,
        "the lock expired"
    );
    s.stop().await;
}

#[tokio::test]
async fn per_route_budget_replaces_the_default_one() {
    let mut cfg = test_config();
    cfg.limits.rate_limit_calls = 4;
    cfg.limits.block_period = 60;
    cfg.limits.routes = vec![
        "GET /profile=2/60/30".parse().expect("route limit"),
        "/csrf_token=6/60".parse().expect("route limit"),
    ];
    let s = TestServer::start_with(cfg, Arc::new(MemoryStore::new())).await;
    let c = &s.client;
    let (_, phone, password) = register(c, "Alice").await;
    let r = login(c, &phone, &password, "a1b2c3d4e5f60718").await;
    let token = r.body["access_token"].as_str().expect("token").to_owned();
    for _ in 0..2 {
        assert_eq!(c.get("/profile", Some(&token)).await.status, 200);
    }
    let r = c.get("/profile", Some(&token)).await;
    r.assert_error(429, "rate_limited");
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("int");
    assert!((1..=30).contains(&retry), "the route's own block: {retry}");
    // A loosened route goes past the default 4, and neither touches the default budget.
    for _ in 0..6 {
        assert_eq!(c.get("/csrf_token", Some(&token)).await.status, 200);
    }
    c.get("/csrf_token", Some(&token))
        .await
        .assert_error(429, "rate_limited");
    for _ in 0..4 {
        assert_eq!(c.get("/contacts", Some(&token)).await.status, 200);
    }
    c.get("/contacts", Some(&token))
        .await
        .assert_error(429, "rate_limited");
    s.stop().await;

    // A budget for a path that is not a route is refused at build time.
    let mut cfg = test_config();
    cfg.limits.routes = vec!["POST /profil=2/60".parse().expect("syntax is fine")];
    let err = melo::Melo::builder(Arc::new(MemoryStore::new()), common::keys())
        .config(cfg)
        .build()
        .expect_err("unknown route");
    assert!(err.to_string().contains("RATE_LIMIT_ROUTES"), "{err}");
    assert!("GET /x=1".parse::<melo::config::RouteLimit>().is_err());
    assert!("x=1/2".parse::<melo::config::RouteLimit>().is_err());
}

#[tokio::test]
async fn lockout_holds_when_the_user_agent_and_phone_format_change() {
    let mut cfg = test_config();
    cfg.limits.failed_login_limit = 5;
    let s = TestServer::start_with(cfg, Arc::new(MemoryStore::new())).await;
    let c = &s.client;
    let (_, phone, password) = register(c, "Ursula").await;
    // The same account written five ways, from five user agents and devices.
    let national = format!("8{}", &phone[2..]);
    let spaced = format!("{} {} {}", &phone[..2], &phone[2..5], &phone[5..]);
    let forms = [
        phone.as_str(),
        &phone[1..],
        &national,
        &spaced,
        phone.as_str(),
    ];
    let attempt = |identifier: &str, password: &str, ua: String, device: String| {
        let req = c
            .request(Method::POST, "/login", None)
            .header("user-agent", ua)
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                serde_json::to_vec(
                    &json!({"identifier": identifier, "password": password, "device_id": device}),
                )
                .expect("json"),
            )))
            .expect("req");
        c.send(req)
    };
    for (i, form) in forms.iter().enumerate() {
        attempt(
            form,
            "Wrong-passw0rd",
            format!("Agent-{i}/1.0"),
            common::random_device(),
        )
        .await
        .assert_error(401, "invalid_credentials");
    }
    attempt(
        &phone,
        &password,
        "Fresh-Agent/2.0".into(),
        common::random_device(),
    )
    .await
    .assert_error(429, "login_locked");
    s.stop().await;
}

/// Sends `head` and then `body_len` bytes of body on one raw connection; returns what the server
/// wrote before closing or going quiet for a second.
async fn raw_exchange(addr: &str, head: &str, body_len: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    tcp.write_all(head.as_bytes()).await.expect("head");
    // The server may answer and close before the body is all sent; that is the point.
    let _ = tcp.write_all(&vec![b' '; body_len]).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(1), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&out).into_owned() + "<EOF>",
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return String::from_utf8_lossy(&out).into_owned(),
        }
    }
}

#[tokio::test]
async fn answers_that_leave_a_body_unread_close_the_connection() {
    let s = TestServer::start().await;
    let addr = s.client.base.trim_start_matches("http://").to_owned();
    let a = new_user(&s.client, "Alice").await;
    // Over the 2 MiB limit by Content-Length: 413 before reading, the connection's last answer.
    let big = 2 * 1024 * 1024 + 1;
    let head = format!("POST /register HTTP/1.1\r\nhost: x\r\ncontent-length: {big}\r\n\r\n");
    let out = raw_exchange(&addr, &head, 64 * 1024).await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    assert!(out.contains("connection: close"), "{out}");
    assert!(
        out.ends_with("<EOF>"),
        "the server closed the connection: {out}"
    );
    // Refused before the handler (no token) with a body on the wire: also closed.
    let head = "PUT /profile HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                content-length: 100000\r\n\r\n";
    let out = raw_exchange(&addr, head, 1000).await;
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    assert!(out.contains("connection: close"), "{out}");
    // An error after the whole body was read keeps the connection for the next request.
    let body = "{\"identifier\": 5}";
    let head = format!(
        "POST /login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    let out = raw_exchange(&addr, &head, 0).await;
    assert!(out.starts_with("HTTP/1.1 422"), "{out}");
    assert!(!out.contains("connection: close"), "{out}");
    assert!(!out.ends_with("<EOF>"), "kept alive: {out}");
    // And the pooled client, which just saw its own 413s, goes on working.
    let huge = vec![b' '; big];
    let req = s
        .client
        .request(Method::PUT, "/profile", Some(&a.token))
        .body(http_body_util::Full::new(bytes::Bytes::from(huge)))
        .expect("req");
    let r = s.client.send(req).await;
    r.assert_error(413, "payload_too_large");
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(s.client.get("/profile", Some(&a.token)).await.status, 200);
    s.stop().await;
}
