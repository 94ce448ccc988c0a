//! Registration, login and tokens over real sockets (PROTOCOL S1, S2, §3.1, §4.2).

mod common;

use std::sync::Arc;

use common::{login, new_user, scenarios, test_config, TestServer};
use http::Method;
use melo::crypto::jwt::TokenCodec;
use melo::crypto::Pii;
use melo::model::{SessionId, Timestamp, UserId, UserRecord};
use melo::{MemoryStore, StaticKeys};
use serde_json::json;

#[tokio::test]
async fn s1_bootstrap_and_errors() {
    let s = TestServer::start().await;
    scenarios::s1(&s.client, 8088).await;
    s.stop().await;
}

#[tokio::test]
async fn s2_registration_and_login() {
    let s = TestServer::start().await;
    let users = scenarios::s2(&s.client).await;
    assert_ne!(users.a.uid, users.b.uid);
    s.stop().await;
}

#[tokio::test]
async fn bad_json_wrong_types_and_oversized_bodies() {
    let s = TestServer::start().await;
    let c = &s.client;
    let send_raw = |body: &'static [u8]| {
        let req = c
            .request(Method::POST, "/register", None)
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(body)))
            .expect("req");
        c.send(req)
    };
    for body in [&b"not json"[..], b"[1,2]", b"\"str\"", b"{\"phone\":"] {
        let r = send_raw(body).await;
        r.assert_error(422, "validation_failed");
        assert_eq!(r.body["error"]["fields"][0]["field"], "body", "{}", r.body);
    }
    // A JSON number where a string is required names the field.
    let r = c
        .post(
            "/login",
            None,
            &json!({"identifier": 12345678, "password": "x", "device_id": "a1b2c3d4e5f60718"}),
        )
        .await;
    r.assert_error(422, "validation_failed");
    assert_eq!(r.body["error"]["fields"][0]["field"], "identifier");
    let r = c
        .post(
            "/login",
            None,
            &json!({"identifier": "12345678", "device_id": "a1b2c3d4e5f60718"}),
        )
        .await;
    r.assert_error(422, "validation_failed");
    assert_eq!(r.body["error"]["fields"][0]["field"], "password");
    // Over 2 MiB with Content-Length: refused before reading.
    let big = vec![b' '; 2 * 1024 * 1024 + 1];
    let req = c
        .request(Method::POST, "/register", None)
        .body(http_body_util::Full::new(bytes::Bytes::from(big)))
        .expect("req");
    c.send(req).await.assert_error(413, "payload_too_large");
    // Over 2 MiB chunked (no Content-Length).
    let (tx, rx) =
        tokio::sync::mpsc::channel::<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>(4);
    tokio::spawn(async move {
        for _ in 0..3 {
            if tx
                .send(Ok(http_body::Frame::data(bytes::Bytes::from(
                    vec![b' '; 1024 * 1024],
                ))))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let body = http_body_util::StreamBody::new(tokio_stream_from(rx));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let req = http::Request::post(format!("{}/register", c.base))
        .body(body)
        .expect("req");
    match client.request(req).await {
        Ok(resp) => assert_eq!(resp.status(), 413),
        // The server may close the connection once the limit is crossed (PROTOCOL §1.1).
        Err(e) => assert!(!e.is_connect(), "the request reached the server: {e}"),
    }
    // The server still works and nothing was created.
    assert_eq!(c.get("/healthz", None).await.status, 200);
    s.stop().await;
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn token_failures_map_to_their_reasons() {
    let s = TestServer::start().await;
    let c = &s.client;
    let u = new_user(c, "Tok").await;
    let uid: UserId = u.uid.parse().expect("uid");
    let sid = SessionId(u.session_id);
    assert_eq!(c.get("/profile", Some(&u.token)).await.status, 200);
    // Scheme is case-insensitive.
    let req = c
        .request(Method::GET, "/profile", None)
        .header("authorization", format!("bearer {}", u.token));
    assert_eq!(
        c.send(req.body(Default::default()).expect("req"))
            .await
            .status,
        200
    );
    // Not a bearer header at all.
    let req = c
        .request(Method::GET, "/profile", None)
        .header("authorization", "Basic Zm9vOmJhcg==");
    c.send(req.body(Default::default()).expect("req"))
        .await
        .assert_error(401, "unauthenticated");

    let keys = common::keys();
    let codec =
        |iss: &str, aud: &str, ttl: i64| TokenCodec::new(keys.clone(), iss.into(), aud.into(), ttl);
    let expired = codec("pixeltoo.ru", "mvp_clients", -60)
        .issue(uid, sid)
        .await
        .expect("issue");
    c.get("/profile", Some(&expired))
        .await
        .assert_error(401, "token_expired");
    let wrong_iss = codec("evil", "mvp_clients", 600)
        .issue(uid, sid)
        .await
        .expect("issue");
    c.get("/profile", Some(&wrong_iss))
        .await
        .assert_error(401, "invalid_token");
    let wrong_aud = codec("pixeltoo.ru", "other", 600)
        .issue(uid, sid)
        .await
        .expect("issue");
    c.get("/profile", Some(&wrong_aud))
        .await
        .assert_error(401, "invalid_token");
    // Wrong iss wins over expiry (PROTOCOL order).
    let both = codec("evil", "mvp_clients", -60)
        .issue(uid, sid)
        .await
        .expect("issue");
    c.get("/profile", Some(&both))
        .await
        .assert_error(401, "invalid_token");
    let forged_keys = Arc::new(StaticKeys::generate().expect("keys"));
    let forged = TokenCodec::new(forged_keys, "pixeltoo.ru".into(), "mvp_clients".into(), 600)
        .issue(uid, sid)
        .await
        .expect("issue");
    c.get("/profile", Some(&forged))
        .await
        .assert_error(401, "invalid_token");
    // Tampered payload.
    let mut parts: Vec<String> = u.token.split('.').map(String::from).collect();
    parts[1] = parts[1].chars().rev().collect();
    c.get("/profile", Some(&parts.join(".")))
        .await
        .assert_error(401, "invalid_token");
    c.get("/profile", Some(&"x".repeat(5000)))
        .await
        .assert_error(401, "invalid_token");
    // A session that is not the user's.
    let other = codec("pixeltoo.ru", "mvp_clients", 600)
        .issue(uid, SessionId(999_999))
        .await
        .expect("issue");
    c.get("/profile", Some(&other))
        .await
        .assert_error(401, "token_revoked");
    s.stop().await;
}

#[tokio::test]
async fn login_by_uid_starting_with_8_and_device_token() {
    let store = Arc::new(MemoryStore::new());
    let s = TestServer::start_with(test_config(), store.clone()).await;
    let c = &s.client;
    // Seed a user whose uid starts with 8 (uids are random, so place one directly).
    let pii = Pii::new(common::keys());
    let uid = UserId::new(80_000_001).expect("uid");
    let row = uid.to_string();
    let phone = common::random_phone();
    let hash = melo::crypto::password::PasswordHasher::new(4)
        .hash("Passw0rd-8")
        .await
        .expect("hash");
    let seal = |col: &str, v: &str| pii.seal_str("users", col, &row, v).expect("seal");
    let record = UserRecord {
        id: uid,
        phone_index: pii.blind_index("phone", phone.as_bytes()),
        phone: seal("phone", &phone),
        name: seal("name", "Eight"),
        nickname: seal("nickname", "eight"),
        username: None,
        bio: None,
        public_key: None,
        password_hash: hash,
        created_at: Timestamp::now(),
    };
    use melo::store::UserStore;
    store.create_user(&record).await.expect("seed");
    let r = login(c, "80000001", "Passw0rd-8", "a1b2c3d4e5f60718").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["unique_id"], "80000001");
    assert_eq!(r.body["phone"], phone.as_str());
    let sid = r.body["session_id"].clone();
    // Same account by phone → same session; device id case-insensitive.
    let r2 = login(c, &phone, "Passw0rd-8", "A1B2C3D4E5F60718").await;
    assert_eq!(r2.body["session_id"], sid);
    assert_eq!(r2.body["device_id"], "a1b2c3d4e5f60718");
    // Device token: works once (rotated), without a password.
    let dt = r2.body["device_token"].as_str().expect("dt").to_owned();
    let auto = json!({"identifier": phone, "device_id": "a1b2c3d4e5f60718", "device_token": dt});
    let r3 = c.post("/login", None, &auto).await;
    assert_eq!(r3.status, 200, "{}", r3.body);
    assert_eq!(r3.body["session_id"], sid);
    assert_ne!(r3.body["device_token"].as_str(), Some(dt.as_str()));
    c.post("/login", None, &auto)
        .await
        .assert_error(401, "invalid_credentials");
    // A device token is bound to its device.
    let dt3 = r3.body["device_token"].as_str().expect("dt");
    let wrong_dev =
        json!({"identifier": phone, "device_id": "b1b2c3d4e5f60718", "device_token": dt3});
    c.post("/login", None, &wrong_dev)
        .await
        .assert_error(401, "invalid_credentials");
    // Each login replaces the CSRF token.
    let t3 = r3.body["access_token"].as_str().expect("token");
    let csrf = c.get("/csrf_token", Some(t3)).await;
    assert_eq!(csrf.body["csrf_token"], r3.body["csrf_token"]);
    assert_ne!(r3.body["csrf_token"], r2.body["csrf_token"]);
    // Earlier tokens of the session stay valid.
    let t1 = r.body["access_token"].as_str().expect("token");
    assert_eq!(c.get("/profile", Some(t1)).await.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn login_replaces_key_and_records_device() {
    let s = TestServer::start().await;
    let c = &s.client;
    let u = new_user(c, "Keys").await;
    let pem = common::new_pem(2048);
    let body = json!({"identifier": u.uid, "password": u.password, "device_id": u.device, "public_e2e_key": pem});
    let r = c.post("/login", None, &body).await;
    assert_eq!(r.body["public_e2e_key"].as_str(), Some(pem.trim()));
    let bad = json!({"identifier": u.uid, "password": u.password, "device_id": u.device, "public_e2e_key": "nope"});
    let r = c.post("/login", None, &bad).await;
    r.assert_error(422, "validation_failed");
    assert_eq!(r.body["error"]["fields"][0]["field"], "public_e2e_key");
    let empty = json!({"identifier": u.uid, "password": u.password, "device_id": u.device, "public_e2e_key": ""});
    assert_eq!(
        c.post("/login", None, &empty).await.status,
        200,
        "empty key leaves it unchanged"
    );
    let p = c.get("/profile", Some(&u.token)).await;
    assert_eq!(p.body["public_e2e_key"].as_str(), Some(pem.trim()));
    s.stop().await;
}
