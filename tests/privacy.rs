//! "The server knows nothing": registered PII never reaches the SQLite file in plaintext.

mod common;

use std::sync::Arc;

use common::{test_config, TestServer};
use http::Method;
use melo::SqliteStore;
use serde_json::json;

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn sqlite_file_has_no_plaintext_pii() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("melo.db");
    let store = Arc::new(SqliteStore::open(&db).await.expect("sqlite"));
    let s = TestServer::start_with(test_config(), store).await;
    let c = &s.client;
    let phone = "+79990000123";
    let (name, nick) = ("Zebediah", "zebnick");
    let r = c
        .post(
            "/register",
            None,
            &json!({"phone": phone, "name": name, "nickname": nick, "password": "Passw0rd-Z1",
                    "device_id": "a1b2c3d4e5f60718", "public_e2e_key": common::user_pem()}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ua = "PrivacyProbeAgent/9.9";
    let login = c
        .request(Method::POST, "/login", None)
        .header("user-agent", ua)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            serde_json::to_vec(&json!({"identifier": phone, "password": "Passw0rd-Z1", "device_id": "a1b2c3d4e5f60718"}))
                .expect("json"),
        )))
        .expect("req");
    let r = c.send(login).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.body["access_token"].as_str().expect("token").to_owned();
    let r = c
        .put(
            "/profile",
            Some(&token),
            &json!({"username": "zeb_user", "bio": "biography-text"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let secret = "SECRETBACKUPCIPHERTEXT";
    c.post(
        "/e2e/secret_key",
        Some(&token),
        &json!({"ciphertext": secret}),
    )
    .await;
    // A contact request queues an event carrying the requester's nickname for the offline
    // target: it must be sealed in the queue too.
    let y = common::new_user(c, "Yolanda").await;
    let z_uid = {
        let p = c.get("/profile", Some(&token)).await;
        p.body["unique_id"].as_str().expect("uid").to_owned()
    };
    let r = c
        .post(
            "/subscribe",
            Some(&y.token),
            &json!({"target_id": z_uid, "csrf_token": y.csrf}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Push registrations (endpoint and keys) are sealed.
    let endpoint = "https://push.privacy-probe.example/send/abcdef123456";
    let r = c
        .post(
            "/register_push",
            Some(&token),
            &json!({"subscription": {"endpoint": endpoint,
                    "keys": {"p256dh": "P256DHPROBEKEYVALUE", "auth": "AUTHPROBESECRET"}}}),
        )
        .await;
    assert_eq!(r.body, json!({"status": "ok"}));
    let r = c
        .post(
            "/register_push",
            Some(&y.token),
            &json!({"platform": "android", "push_token": "FCMPROBETOKEN-123"}),
        )
        .await;
    assert_eq!(r.body, json!({"status": "ok"}));
    // Chat names and invite codes are sealed; codes are found by blind index.
    let r = c
        .post(
            "/chats/create",
            Some(&token),
            &json!({"name": "Zanzibar Plotters", "type": "channel"}),
        )
        .await;
    let chat_id = r.body["chat_id"].as_i64().expect("chat id");
    let r = c
        .post(
            "/chats/set_public",
            Some(&token),
            &json!({"chat_id": chat_id, "is_public": true}),
        )
        .await;
    let public_code = r.body["invite"].as_str().expect("code").to_owned();
    let r = c
        .post(
            "/invites/create",
            Some(&token),
            &json!({"chat_id": chat_id, "ttl_minutes": 5}),
        )
        .await;
    let temp_code = r.body["code"].as_str().expect("code").to_owned();
    // The values are readable through the API...
    let p = c.get("/profile", Some(&token)).await;
    assert_eq!(p.body["phone"], phone);
    // ...but not in any file of the database (main file, WAL, shared memory), neither while
    // the server runs nor after it has stopped and checkpointed.
    let pem_body: String = common::user_pem()
        .lines()
        .nth(1)
        .expect("pem line")
        .to_owned();
    let needles = [
        phone,
        "79990000123",
        name,
        nick,
        "zeb_user",
        "biography-text",
        secret,
        ua,
        "127.0.0.1",
        &pem_body,
        "yolanda",
        &y.phone,
        "privacy-probe",
        "P256DHPROBEKEYVALUE",
        "AUTHPROBESECRET",
        "FCMPROBETOKEN",
        "Zanzibar Plotters",
        &public_code,
        &temp_code,
    ];
    assert!(scan(dir.path(), &needles) > 0);
    s.stop().await;
    assert!(scan(dir.path(), &needles) > 0);
}

/// Reads every file in `dir`, asserting no needle occurs; returns the bytes read.
fn scan(dir: &std::path::Path, needles: &[&str]) -> usize {
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            // The WAL and shm files vanish when the last connection closes.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("reading {}: {e}", path.display()),
        };
        checked += bytes.len();
        for needle in needles {
            assert!(
                !contains(&bytes, needle),
                "plaintext {needle:?} found in {}",
                path.display()
            );
        }
    }
    checked
}
