//! Hooks for embedders on a real server: the registration policy (deny, verification), the
//! event stream (ids only), and system messages to users and chats.

mod common;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use common::realtime::{make_contacts, Target};
use common::ws::{is, WsClient, WAIT};
use common::{keys, random_device, random_phone, test_config, user_pem, Client, TestServer};
use futures_util::StreamExt;
use melo::hooks::{EventStream, MessageTarget};
use melo::model::UserId;
use melo::{
    Event, Melo, MemoryStore, RegistrationAttempt, RegistrationDecision, RegistrationPolicy, Store,
};
use serde_json::{json, Value};

/// What a policy saw of one attempt.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    phone: String,
    ip: IpAddr,
    user_agent: String,
    verification: Option<String>,
}

/// Refuses every registration, remembering what it saw.
#[derive(Default)]
struct DenyAll {
    seen: Mutex<Vec<Seen>>,
}

#[melo::async_trait]
impl RegistrationPolicy for DenyAll {
    async fn check(&self, a: &RegistrationAttempt<'_>) -> RegistrationDecision {
        self.seen.lock().expect("policy lock").push(Seen {
            phone: a.phone.to_owned(),
            ip: a.ip,
            user_agent: a.user_agent.to_owned(),
            verification: a.verification.map(str::to_owned),
        });
        RegistrationDecision::deny("Registrations are paused until Monday")
    }
}

/// Wants the code `424242` (as if sent by SMS).
struct SmsCode;

#[melo::async_trait]
impl RegistrationPolicy for SmsCode {
    async fn check(&self, a: &RegistrationAttempt<'_>) -> RegistrationDecision {
        match a.verification {
            Some("424242") => RegistrationDecision::Allow,
            _ => RegistrationDecision::require_verification("sms", Some("code sent".into())),
        }
    }
}

async fn start(policy: Option<Arc<dyn RegistrationPolicy>>) -> (TestServer, Arc<Melo>) {
    start_on(Arc::new(MemoryStore::new()), policy).await
}

async fn start_on(
    store: Arc<dyn Store>,
    policy: Option<Arc<dyn RegistrationPolicy>>,
) -> (TestServer, Arc<Melo>) {
    let mut b = Melo::builder(store.clone(), keys()).config(test_config());
    if let Some(p) = policy {
        b = b.registration_policy(p);
    }
    let melo = Arc::new(b.build().expect("build"));
    (TestServer::serve_shared(melo.clone(), store).await, melo)
}

fn registration(phone: &str, verification: Option<&str>) -> Value {
    let mut body = json!({"phone": phone, "name": "Hook", "nickname": "hook",
        "password": "Passw0rd-hook", "device_id": random_device(), "public_e2e_key": user_pem()});
    if let Some(v) = verification {
        body["verification"] = json!(v);
    }
    body
}

async fn post_register(c: &Client, body: &Value, user_agent: &str) -> common::Resp {
    let req = c
        .request(http::Method::POST, "/register", None)
        .header("content-type", "application/json")
        .header("user-agent", user_agent)
        .body(http_body_util::Full::new(bytes::Bytes::from(
            serde_json::to_vec(body).expect("json"),
        )))
        .expect("request");
    c.send(req).await
}

/// The next event `pick` accepts (others are skipped), within [`WAIT`].
async fn next_event<T>(events: &mut EventStream, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    let found = tokio::time::timeout(WAIT, async {
        while let Some(next) = events.next().await {
            if let Some(t) = pick(next.expect("no events skipped")) {
                return Some(t);
            }
        }
        None
    })
    .await;
    found
        .expect("the event within the wait")
        .expect("the stream is open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denying_policy_answers_403_with_its_reason_and_creates_no_user() {
    let policy = Arc::new(DenyAll::default());
    let (s, _melo) = start(Some(policy.clone())).await;
    let phone = random_phone();
    let r = post_register(
        &s.client,
        &registration(&phone, Some("ignored")),
        "Hooks/1.0",
    )
    .await;
    r.assert_error(403, "registration_denied");
    assert_eq!(
        r.body["error"]["message"], "Registrations are paused until Monday",
        "{}",
        r.body
    );
    assert!(r.body["error"].get("verification").is_none(), "{}", r.body);
    let seen = policy.seen.lock().expect("policy lock").clone();
    assert_eq!(
        seen,
        vec![Seen {
            phone: phone.clone(),
            ip: IpAddr::from([127, 0, 0, 1]),
            user_agent: "Hooks/1.0".into(),
            verification: Some("ignored".into()),
        }]
    );
    // No account: the phone does not log in with the password just given.
    let r = common::login(&s.client, &phone, "Passw0rd-hook", &random_device()).await;
    r.assert_error(401, "invalid_credentials");
    // An invalid request never reaches the policy.
    let mut bad = registration(&phone, None);
    bad["password"] = json!("short");
    let r = post_register(&s.client, &bad, "Hooks/1.0").await;
    r.assert_error(422, "validation_failed");
    assert_eq!(policy.seen.lock().expect("policy lock").len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_is_required_then_accepted_with_the_right_code() {
    let (s, _melo) = start(Some(Arc::new(SmsCode))).await;
    let phone = random_phone();
    let r = post_register(&s.client, &registration(&phone, None), "x").await;
    r.assert_error(403, "verification_required");
    assert_eq!(
        r.body["error"]["verification"],
        json!({"method": "sms", "hint": "code sent"}),
        "{}",
        r.body
    );
    let r = post_register(&s.client, &registration(&phone, Some("000000")), "x").await;
    r.assert_error(403, "verification_required");
    let long = "1".repeat(1025);
    let r = post_register(&s.client, &registration(&phone, Some(&long)), "x").await;
    r.assert_error(422, "validation_failed");
    assert_eq!(r.body["error"]["fields"][0]["field"], "verification");
    let r = post_register(&s.client, &registration(&phone, Some("424242")), "x").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = common::login(&s.client, &phone, "Passw0rd-hook", &random_device()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_report_ids_only() {
    let (s, melo) = start(None).await;
    let t = Target::of(&s);
    let mut events = melo.events();
    let mut shown = Vec::new();

    let a = common::new_user(&s.client, "EventsA").await;
    let uid_a: UserId = a.uid.parse().expect("uid");
    let ev = next_event(&mut events, |e| {
        matches!(e, Event::UserRegistered { user, .. } if user == uid_a).then_some(e)
    })
    .await;
    shown.push(format!("{ev:?}"));
    let session_a = next_event(&mut events, |e| match e {
        Event::LoggedIn { user, session, .. } if user == uid_a => Some(session),
        _ => None,
    })
    .await;
    assert_eq!(session_a.0, a.session_id);

    let b = common::new_user(&s.client, "EventsB").await;
    let uid_b: UserId = b.uid.parse().expect("uid");
    make_contacts(&t, &a, &b).await;
    let mut ws_a = WsClient::open(s.addr, &a.token).await;
    ws_a.sync().await;
    let ev = next_event(&mut events, |e| {
        matches!(e, Event::SocketOpened { user, session, .. } if user == uid_a && session == session_a)
            .then_some(e)
    })
    .await;
    shown.push(format!("{ev:?}"));

    let payload = "secret-payload-of-a";
    ws_a.send_json(&json!({"type": "relay", "target": b.uid, "payload": payload}))
        .await;
    let status = ws_a
        .recv_where("msg_status queued", |f| is(f, "msg_status"), WAIT)
        .await;
    let message_id = status["message_id"].as_str().expect("id").to_owned();
    let (ev, stored) = next_event(&mut events, |e| match e {
        Event::MessageStored {
            message, from, to, ..
        } if from == uid_a => Some((e, (message.to_string(), to))),
        _ => None,
    })
    .await;
    shown.push(format!("{ev:?}"));
    assert_eq!(stored, (message_id, MessageTarget::User(uid_b)));

    ws_a.close().await;
    let ev = next_event(&mut events, |e| {
        matches!(e, Event::SocketClosed { user, session, .. } if user == uid_a && session == session_a)
            .then_some(e)
    })
    .await;
    shown.push(format!("{ev:?}"));

    let shown = shown.join("\n");
    for secret in [
        a.phone.as_str(),
        &a.phone[1..],
        "EventsA",
        "eventsa",
        a.password.as_str(),
        a.token.as_str(),
        a.device_token.as_str(),
        a.device.as_str(),
        payload,
        "127.0.0.1",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    s.stop().await;
}

/// The `relay_delivery` of a system message: sender `00000000`, `"system": true`.
fn assert_system(frame: &Value, payload: &str) {
    assert!(is(frame, "relay_delivery"), "{frame}");
    assert_eq!(frame["from"], "00000000", "{frame}");
    assert_eq!(frame["system"], true, "{frame}");
    assert_eq!(frame["payload"], payload, "{frame}");
    assert!(frame["seq"].is_i64(), "durable: {frame}");
}

async fn system_messages_reach_online_and_offline_users(store: Arc<dyn Store>) {
    let (s, melo) = start_on(store, None).await;
    let mut events = melo.events();
    let online = common::new_user(&s.client, "Online").await;
    let offline = common::new_user(&s.client, "Offline").await;
    let mut ws = WsClient::open(s.addr, &online.token).await;
    ws.sync().await;

    let to_online = MessageTarget::User(online.uid.parse().expect("uid"));
    let id = melo
        .send_system_message(to_online, r#"{"text":"hello online"}"#)
        .await
        .expect("sent");
    let frame = ws
        .recv_where("the system message", |f| is(f, "relay_delivery"), WAIT)
        .await;
    assert_system(&frame, r#"{"text":"hello online"}"#);
    assert_eq!(frame["message_id"], id.to_string());
    assert_eq!(frame["to"], online.uid.as_str());
    let stored = next_event(&mut events, |e| match e {
        Event::MessageStored {
            message, from, to, ..
        } if message == id => Some((from, to)),
        _ => None,
    })
    .await;
    assert_eq!(stored, (UserId::SYSTEM, to_online));
    ws.ack_and_close().await;

    let to_offline = MessageTarget::User(offline.uid.parse().expect("uid"));
    let id = melo
        .send_system_message(to_offline, "welcome back")
        .await
        .expect("sent");
    let mut ws = WsClient::open(s.addr, &offline.token).await;
    let sync = ws.sync().await;
    let frame = sync
        .backlog
        .iter()
        .find(|f| f["message_id"] == id.to_string())
        .unwrap_or_else(|| panic!("queued system message in {:?}", sync.backlog));
    assert_system(frame, "welcome back");
    // Acknowledged system messages stay readable: the conversation with `00000000`.
    ws.send_json(&json!({"type": "get_history", "target": "00000000", "limit": 10}))
        .await;
    let h = ws.recv_type("history", WAIT).await;
    assert_eq!(h["items"][0]["message_id"], id.to_string(), "{h}");
    assert_eq!(h["items"][0]["from"], "00000000", "{h}");
    ws.ack_and_close().await;
    let r = s
        .client
        .get("/messages/history/dm/00000000", Some(&offline.token))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["total"], 1, "{}", r.body);
    assert_eq!(
        r.body["items"][0]["message_id"],
        id.to_string(),
        "{}",
        r.body
    );
    // The legacy route needs a contact: the system sender is none.
    let r = s
        .client
        .get("/history/00000000", Some(&offline.token))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // Unknown users and oversized payloads are refused like any send.
    let nobody = MessageTarget::User(UserId::new(99_999_998).expect("uid"));
    let err = melo
        .send_system_message(nobody, "x")
        .await
        .expect_err("unknown");
    assert_eq!(err.reason(), "user_not_found");
    let big = "x".repeat(1024 * 1024 + 1);
    let err = melo
        .send_system_message(to_offline, big)
        .await
        .expect_err("too big");
    assert_eq!(err.reason(), "validation_failed");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_messages_reach_online_and_offline_users_memory() {
    system_messages_reach_online_and_offline_users(Arc::new(MemoryStore::new())).await;
}

/// The SQL stores read the system sender back from a queued row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_messages_reach_online_and_offline_users_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    let store = melo::SqliteStore::open(dir.path().join("melo.db"))
        .await
        .expect("sqlite");
    system_messages_reach_online_and_offline_users(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_message_to_a_chat_reaches_every_member() {
    let (s, melo) = start(None).await;
    let t = Target::of(&s);
    let owner = common::new_user(&s.client, "Owner").await;
    let member = common::new_user(&s.client, "Member").await;
    make_contacts(&t, &owner, &member).await;
    let r = s
        .client
        .post(
            "/chats/create",
            Some(&owner.token),
            &json!({"name": "Club"}),
        )
        .await;
    let chat = r.body["chat_id"].as_i64().expect("chat id");
    let r = s
        .client
        .post(
            "/chats/members/add",
            Some(&owner.token),
            &json!({"chat_id": chat, "user_unique_id": member.uid}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut sockets = Vec::new();
    for u in [&owner, &member] {
        let mut ws = WsClient::open(s.addr, &u.token).await;
        ws.sync().await;
        ws.ack_all().await;
        sockets.push(ws);
    }
    let id = melo
        .send_system_message(MessageTarget::Chat(chat), "rules updated")
        .await
        .expect("sent");
    for ws in &mut sockets {
        let frame = ws
            .recv_where(
                "the chat's system message",
                |f| is(f, "relay_delivery") && f["message_id"] == id.to_string(),
                WAIT,
            )
            .await;
        assert_system(&frame, "rules updated");
        assert_eq!(frame["chat_id"], chat);
        assert!(frame.get("to").is_none(), "{frame}");
    }
    let err = melo
        .send_system_message(MessageTarget::Chat(chat + 1000), "x")
        .await
        .expect_err("unknown chat");
    assert_eq!(err.reason(), "not_found");
    for ws in sockets {
        ws.ack_and_close().await;
    }
    s.stop().await;
}
