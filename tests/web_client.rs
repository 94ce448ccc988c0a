//! The web client's mount at `/app/`: embedded files with a strict CSP, `WEB_CLIENT=false`,
//! `WEB_CLIENT_DIR`, no way out of the directory, no rate limit, and a same-origin socket.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::ws::WsClient;
use common::{new_user, test_config, TestServer};
use http::{Method, StatusCode};
use http_body_util::Full;
use melo::MemoryStore;

const WAIT: Duration = Duration::from_secs(10);

async fn get(s: &TestServer, path: &str, headers: &[(&str, &str)]) -> common::Resp {
    let mut b = s.client.request(Method::GET, path, None);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    s.client
        .send(b.body(Full::new(Bytes::new())).expect("request"))
        .await
}

fn header<'a>(r: &'a common::Resp, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("header {name}"))
}

#[tokio::test]
async fn embedded_client_is_served_with_a_strict_policy() {
    let mut config = test_config();
    // One page load is more requests than this budget: static files must not count.
    config.limits.rate_limit_calls = 3;
    let s = TestServer::start_with(config, Arc::new(MemoryStore::new())).await;

    let r = get(&s, "/app", &[]).await;
    assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(header(&r, "location"), "app/");

    let r = get(&s, "/app/", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.raw);
    assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
    let html = String::from_utf8(r.raw.to_vec()).expect("utf-8");
    assert!(html.contains("<html"), "{html}");
    let csp = header(&r, "content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(header(&r, "x-frame-options"), "DENY");
    let etag = header(&r, "etag").to_owned();
    let again = get(&s, "/app/index.html", &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.raw.is_empty());

    // Every script the page loads is there, as JavaScript; no inline script or style.
    let scripts: Vec<&str> = html
        .split("src=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    assert!(!scripts.is_empty(), "{html}");
    for src in scripts {
        let r = get(&s, &format!("/app/{src}"), &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{src}");
        assert_eq!(header(&r, "content-type"), "text/javascript; charset=utf-8");
    }
    assert!(!html.contains("<script>"), "inline script");
    assert!(!html.contains("<style"), "inline style");
    assert!(!html.contains(" style=\""), "inline style attribute");

    for bad in [
        "/app/../Cargo.toml",
        "/app/%2e%2e/Cargo.toml",
        "/app/.hidden",
        "/app/nope.js",
    ] {
        let r = get(&s, bad, &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{bad}");
        assert_eq!(r.body["error"]["reason"], "not_found", "{bad}");
    }
    let r = s
        .client
        .call(Method::POST, "/app/index.html", None, None)
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);

    // Still within the API budget of this IP: the dozen static requests above did not count.
    let r = s.client.get("/status", None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

#[tokio::test]
async fn web_client_false_unmounts_it() {
    let mut config = test_config();
    config.http.web_client = false;
    let s = TestServer::start_with(config, Arc::new(MemoryStore::new())).await;
    for path in ["/app", "/app/", "/app/index.html"] {
        let r = get(&s, path, &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.body["error"]["reason"], "not_found");
    }
}

#[tokio::test]
async fn web_client_dir_serves_files_from_disk_and_not_outside_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let web = root.path().join("web");
    std::fs::create_dir_all(web.join("js")).expect("mkdir");
    std::fs::write(web.join("index.html"), "<!doctype html><html>custom</html>").expect("w");
    std::fs::write(web.join("js/app.js"), "export const x = 1;").expect("w");
    std::fs::write(root.path().join("secret.txt"), "outside").expect("w");
    #[cfg(unix)]
    std::os::unix::fs::symlink(root.path().join("secret.txt"), web.join("link.txt"))
        .expect("symlink");

    let mut config = test_config();
    config.http.web_client_dir = Some(web.clone());
    let s = TestServer::start_with(config, Arc::new(MemoryStore::new())).await;
    let r = get(&s, "/app/", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.raw[..], b"<!doctype html><html>custom</html>");
    assert_eq!(header(&r, "cache-control"), "no-store");
    // Edits show without a restart.
    std::fs::write(web.join("js/app.js"), "export const x = 2;").expect("w");
    let r = get(&s, "/app/js/app.js", &[]).await;
    assert_eq!(&r.raw[..], b"export const x = 2;");
    for bad in ["/app/link.txt", "/app/../secret.txt", "/app/js"] {
        let r = get(&s, bad, &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{bad}");
    }
}

#[tokio::test]
async fn the_socket_admits_the_servers_own_origin_only() {
    let s = TestServer::start().await;
    let token = new_user(&s.client, "alice").await.token;
    let own = format!("http://{}", s.addr);
    let mut ws = WsClient::connect(s.addr, "/ws", Some(&token), false, Some(&own)).await;
    ws.sync_within(WAIT).await;

    // Another port of the same host is another origin.
    let other = format!("http://127.0.0.1:{}", s.addr.port().wrapping_add(1).max(1));
    for origin in [other.as_str(), "https://evil.example", "ftp://127.0.0.1"] {
        let mut ws = WsClient::connect(s.addr, "/ws", Some(&token), false, Some(origin)).await;
        assert_eq!(
            ws.expect_close(WAIT).await,
            (1008, "origin_not_allowed".to_owned()),
            "{origin}"
        );
    }
}
