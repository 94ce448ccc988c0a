//! No PII, token, password or key in any log line at any level (issue 7, "Logs"): every
//! tracing event of the process, at TRACE and from every crate, is captured while a workload
//! touches accounts, profiles, contacts, DMs, groups with names, invites, sessions from a known
//! user agent, push subscriptions, avatars and E2E keys; then the capture is searched for the
//! plaintext values.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::realtime::{make_contacts, online, relay, Target};
use common::{test_config, TestServer};
use http::Method;
use http_body_util::Full;
use serde_json::json;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const PHONE: &str = "+79995550142";
const PHONE_DIGITS: &str = "79995550142";
const NAME: &str = "Zebulonia";
const NICK: &str = "zebnick";
const PASSWORD: &str = "Sup3r-Secret-Pa55";
const USER_AGENT: &str = "LogPrivacyAgent/9.9 (Zebra)";
const CHAT_NAME: &str = "Quokka Conspiracy";
const BIO: &str = "biography-marker-55";
const PUSH_PATH: &str = "/wpush/endpoint-marker-77";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_secrets_in_any_log_line() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let push = common::push_service::PushService::start().await;
    let mut config = test_config();
    config.push.allow_http = true;
    config.push.allow_private = true;
    config.push.coalesce_seconds = 0;
    let s = TestServer::start_with(config, Arc::new(melo::MemoryStore::new())).await;
    let t = Target::of(&s);
    let c = &s.client;
    // A user with known PII, registered and logged in with a known user agent.
    let device = "f00dfacecafe0001";
    let req = c
        .request(Method::POST, "/register", None)
        .header("user-agent", USER_AGENT)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            json!({"phone": PHONE, "name": NAME, "nickname": NICK, "password": PASSWORD,
                   "device_id": device, "public_e2e_key": common::user_pem()})
            .to_string(),
        )))
        .expect("request");
    let r = c.send(req).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let uid = r.body["unique_id"].as_str().expect("uid").to_owned();
    let req = c
        .request(Method::POST, "/login", None)
        .header("user-agent", USER_AGENT)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            json!({"identifier": PHONE, "password": PASSWORD, "device_id": device}).to_string(),
        )))
        .expect("request");
    let r = c.send(req).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.body["access_token"].as_str().expect("token").to_owned();
    let device_token = r.body["device_token"].as_str().expect("dt").to_owned();
    let csrf = r.body["csrf_token"].as_str().expect("csrf").to_owned();
    // A failed login too (lockout bookkeeping).
    common::login(c, PHONE, "wrong-password-123", device)
        .await
        .assert_error(401, "invalid_credentials");
    let me = common::User {
        uid: uid.clone(),
        phone: PHONE.into(),
        password: PASSWORD.into(),
        device: device.into(),
        token: token.clone(),
        csrf: csrf.clone(),
        session_id: r.body["session_id"].as_i64().expect("sid"),
        device_token: device_token.clone(),
    };
    let r = c.put("/profile", Some(&token), &json!({"bio": BIO})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    c.get("/sessions", Some(&token)).await;

    // Contacts, DMs, a named group with an invite, a push subscription, an avatar.
    let peer = common::new_user(c, "Peer").await;
    make_contacts(&t, &me, &peer).await;
    let mut wm = online(&t, &me).await;
    let wp = online(&t, &peer).await;
    relay(&mut wm, &me, &peer, "Y2lwaGVydGV4dA==", "lp-1").await;
    let r = c
        .post("/chats/create", Some(&token), &json!({"name": CHAT_NAME}))
        .await;
    let k = r.body["chat_id"].as_i64().expect("chat");
    c.post(
        "/chats/members/add",
        Some(&token),
        &json!({"chat_id": k, "user_unique_id": peer.uid}),
    )
    .await;
    let r = c
        .post(
            "/invites/create",
            Some(&token),
            &json!({"chat_id": k, "ttl_minutes": 5}),
        )
        .await;
    let code = r.body["code"].as_str().expect("code").to_owned();
    let r = c
        .post(
            "/register_push",
            Some(&peer.token),
            &json!({"platform": "web", "subscription": push.browser_subscription(PUSH_PATH)}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let endpoint = push.endpoint(PUSH_PATH);
    wp.ack_and_close().await;
    // The peer is offline now: a message triggers a push attempt to the endpoint.
    relay(&mut wm, &me, &peer, "Y2lwaGVydGV4dDI=", "lp-2").await;
    common::avatars::upload(c, &me, &common::avatars::png(&[5u8; 64])).await;
    wm.ack_and_close().await;
    common::chats::s12(&t).await;
    s.stop().await;

    let logs = String::from_utf8_lossy(&capture.0.lock().expect("capture")).into_owned();
    assert!(logs.len() > 10_000, "TRACE logging captured the workload");
    // Ids may be logged (that is how operators trace a request): proof the capture saw melo's
    // own events, including the audit trail.
    assert!(
        logs.contains(&format!("user_id={uid}")),
        "melo events captured"
    );
    assert!(logs.contains("melo::audit"), "audit events captured");
    for secret in [
        PHONE,
        PHONE_DIGITS,
        NAME,
        NICK,
        PASSWORD,
        USER_AGENT,
        CHAT_NAME,
        BIO,
        endpoint.as_str(),
        "endpoint-marker-77",
        "wrong-password-123",
        token.as_str(),
        device_token.as_str(),
        csrf.as_str(),
        code.as_str(),
    ] {
        if let Some(at) = logs.find(secret) {
            let line = logs[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = logs[at..].find('\n').map_or(logs.len(), |i| at + i);
            panic!("{secret:?} logged: {}", &logs[line..end]);
        }
    }
}
