//! Web Push endpoints cannot aim the server at internal hosts, and a slow endpoint cannot starve
//! everyone's pushes (PROTOCOL §4.9, amended).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::push_service::PushService;
use common::realtime::{make_contacts, second_device, Target};
use common::{new_user, test_config, TestServer};
use melo::{Config, MemoryStore};
use serde_json::json;
use tokio::net::TcpListener;

fn strict_config() -> Config {
    let mut c = test_config();
    c.push.allow_http = true;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_on_internal_addresses_are_refused() {
    let s = TestServer::start_with(strict_config(), Arc::new(MemoryStore::new())).await;
    let c = &s.client;
    let a = new_user(c, "ssrf").await;
    let keys = json!({"p256dh": "k", "auth": "a"});
    for endpoint in [
        "https://127.0.0.1:1/x",
        "https://10.0.0.1/x",
        "https://[::1]/x",
        "https://169.254.169.254/latest",
        "https://localhost/x",
        "https://[fd00::1]/x",
        "https://100.64.0.1/x",
        "https://192.168.1.1/x",
        "https://172.16.0.1/x",
        "https://0.0.0.0/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://[fe80::1]/x",
        "https://224.0.0.1/x",
        "http://127.0.0.1:8080/x",
    ] {
        let body = json!({"subscription": {"endpoint": endpoint, "keys": keys}});
        let r = c.post("/register_push", Some(&a.token), &body).await;
        r.assert_error(422, "invalid_subscription");
        assert!(
            !r.body.to_string().contains(endpoint),
            "the endpoint is not echoed: {}",
            r.body
        );
    }
    // A public address literal passes (no DNS needed).
    let body = json!({"subscription": {"endpoint": "https://93.184.215.14/push/1", "keys": keys}});
    let r = c.post("/register_push", Some(&a.token), &body).await;
    assert_eq!(r.body, json!({"status": "ok"}));
    s.stop().await;
}

/// A TCP listener that accepts connections and never answers; counts what it accepted.
async fn black_hole() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            held.push(stream);
        }
    });
    (port, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_hole_endpoint_delays_only_its_own_pushes() {
    let (hole, accepted) = black_hole().await;
    let push = PushService::start().await;
    let mut config = strict_config();
    config.push.allow_private = true;
    let s = TestServer::start_with(config, Arc::new(MemoryStore::new())).await;
    let t = Target::of(&s);
    let a = new_user(&t.client, "sa").await;
    let b = new_user(&t.client, "sb").await;
    let keys = json!({"p256dh": push.p256dh(), "auth": push.auth()});
    // Many of B's devices point at the black hole; the last one at a working service.
    let mut devices = vec![b.clone()];
    for _ in 0..40 {
        devices.push(second_device(&t, &b).await);
    }
    for (i, d) in devices.iter().enumerate() {
        let endpoint = format!("http://localhost:{hole}/hole/{i}");
        let body = json!({"subscription": {"endpoint": endpoint, "keys": keys}});
        let r = t.client.post("/register_push", Some(&d.token), &body).await;
        assert_eq!(r.body, json!({"status": "ok"}));
    }
    let good = second_device(&t, &b).await;
    let r = t
        .client
        .post(
            "/register_push",
            Some(&good.token),
            &json!({"subscription": push.browser_subscription("/good")}),
        )
        .await;
    assert_eq!(r.body, json!({"status": "ok"}));

    // A contact request pushes to all of B's devices.
    make_contacts(&t, &a, &b).await;
    let got = push.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got[0].path, "/good");
    assert!(accepted.load(Ordering::Relaxed) >= 1, "the hole was tried");
    s.stop().await;
}
