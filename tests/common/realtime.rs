//! PROTOCOL.md §7 scenarios S4, S6–S11 (contacts and the WebSocket real-time core), written once
//! against a [`Target`] and run both in-process (tests/messaging.rs) and against the example
//! binary (tests/example_binary.rs). Each scenario registers its own users (random phones), so
//! scenarios are independent of each other and of the order they run in.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::Full;
use melo::crypto::jwt::TokenCodec;
use melo::model::{SessionId, UserId};
use melo::StaticKeys;
use serde_json::{json, Value};

use super::ws::{is, SyncDone, WsClient, WAIT};
use super::{login, new_pem, new_user, random_device, user_pem, Client, Resp, TestServer, User};

/// Where the scenarios run: the HTTP API (which also serves `GET /ws`) and the second WebSocket
/// listener (any path).
#[derive(Clone)]
pub struct Target {
    pub client: Client,
    pub http: SocketAddr,
    pub ws: SocketAddr,
    /// "No frame" = nothing of the kind within this long (PROTOCOL uses 2 s).
    pub quiet: Duration,
}

impl Target {
    pub fn new(client: Client, http: SocketAddr, ws: SocketAddr) -> Self {
        Self {
            client,
            http,
            ws,
            quiet: Duration::from_millis(1000),
        }
    }

    pub fn of(s: &TestServer) -> Self {
        Self::new(s.client.clone(), s.addr, s.ws_addr)
    }
}

/// The CORS origin the scenario fixture allows (PROTOCOL §7 fixture).
pub const ALLOWED_ORIGIN: &str = "http://127.0.0.1:5173";

// ---- assertion helpers ---------------------------------------------------------------------

/// RFC 3339 UTC with `Z` and exactly three fractional digits (§1.3).
pub fn assert_ts(v: &Value) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("timestamp string: {v}"));
    let b = s.as_bytes();
    assert!(
        b.len() == 24
            && b[4] == b'-'
            && b[10] == b'T'
            && b[19] == b'.'
            && b[23] == b'Z'
            && b[20..23].iter().all(u8::is_ascii_digit),
        "timestamp in the form 2025-10-21T09:15:02.481Z: {s}"
    );
}

/// A 32-lowercase-hex id (§1.2), returned as a String.
pub fn hex32(v: &Value) -> String {
    let s = v.as_str().unwrap_or_else(|| panic!("id string: {v}"));
    assert!(
        s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "32 lowercase hex chars: {s}"
    );
    s.to_owned()
}

fn seq_of(f: &Value) -> i64 {
    let seq = f["seq"]
        .as_i64()
        .unwrap_or_else(|| panic!("durable frame has an integer seq: {f}"));
    assert!(seq >= 1, "seq ≥ 1: {f}");
    seq
}

/// A durable frame: integer `seq` ≥ 1 and a `ts`.
fn assert_durable(f: &Value) -> i64 {
    assert_ts(&f["ts"]);
    seq_of(f)
}

/// An ephemeral frame: no `seq` (§5.2).
fn assert_ephemeral(f: &Value) {
    assert!(
        f.get("seq").is_none(),
        "ephemeral frame carries no seq: {f}"
    );
}

fn assert_ok(r: &Resp, body: Value) {
    assert_eq!(
        (r.status.as_u16(), &r.body),
        (200, &body),
        "response to the request"
    );
}

fn same_pem(a: &Value, b: &str) -> bool {
    a.as_str().map(str::trim) == Some(b.trim())
}

fn is_status(f: &Value, status: &str, message_id: &str) -> bool {
    is(f, "msg_status") && f["status"] == status && f["message_id"] == message_id
}

fn error_frame(f: &Value, reason: &str, reference: Value) {
    assert!(is(f, "error"), "an error frame: {f}");
    assert_eq!(f["reason"], reason, "error reason: {f}");
    assert_eq!(f["ref"], reference, "error ref: {f}");
    assert!(f["message"].is_string(), "error message: {f}");
    assert_ephemeral(f);
}

// ---- users, contacts, sockets --------------------------------------------------------------

async fn csrf_post(c: &Client, path: &str, u: &User, target: &str) -> Resp {
    c.post(
        path,
        Some(&u.token),
        &json!({"target_id": target, "csrf_token": u.csrf}),
    )
    .await
}

/// `a` asks `b`, `b` confirms (§4.4).
pub async fn make_contacts(t: &Target, a: &User, b: &User) {
    let r = csrf_post(&t.client, "/subscribe", a, &b.uid).await;
    assert_ok(&r, json!({"status": "subscription_requested"}));
    let r = csrf_post(&t.client, "/confirm_subscribe", b, &a.uid).await;
    assert_ok(&r, json!({"status": "confirmed"}));
}

/// Logs `u` in on a new device: a second session of the same user.
pub async fn second_device(t: &Target, u: &User) -> User {
    let device = random_device();
    let r = login(&t.client, &u.phone, &u.password, &device).await;
    assert_eq!(r.status, 200, "login: {}", r.body);
    User {
        device,
        token: r.body["access_token"].as_str().expect("token").to_owned(),
        csrf: r.body["csrf_token"].as_str().expect("csrf").to_owned(),
        session_id: r.body["session_id"].as_i64().expect("sid"),
        device_token: r.body["device_token"].as_str().expect("dt").to_owned(),
        ..u.clone()
    }
}

/// Opens `GET /ws` for `u` and reads up to `sync_done` without acking.
pub async fn connect(t: &Target, u: &User) -> (WsClient, SyncDone) {
    let mut ws = WsClient::open(t.http, &u.token).await;
    let sync = ws.sync().await;
    (ws, sync)
}

/// "WS(X)": a socket that received `sync_done` and acked its backlog.
pub async fn online(t: &Target, u: &User) -> WsClient {
    let (mut ws, _) = connect(t, u).await;
    ws.ack_all().await;
    ws
}

/// Connects `u`'s device, acks whatever is queued for it, and disconnects: an empty queue.
pub async fn drain(t: &Target, u: &User) {
    let (ws, _) = connect(t, u).await;
    ws.ack_and_close().await;
}

/// Two fresh users who are accepted contacts, with empty device queues.
pub async fn pair(t: &Target, a: &str, b: &str) -> (User, User) {
    let a = new_user(&t.client, a).await;
    let b = new_user(&t.client, b).await;
    make_contacts(t, &a, &b).await;
    drain(t, &a).await;
    drain(t, &b).await;
    (a, b)
}

/// Sends a DM `relay` and returns its `message_id` from the `msg_status queued` reply, whose
/// fields it checks (§5.4).
pub async fn relay(ws: &mut WsClient, from: &User, to: &User, payload: &str, cid: &str) -> String {
    ws.send_json(&json!({"type": "relay", "target": to.uid, "payload": payload, "client_id": cid}))
        .await;
    let q = queued_reply(ws, cid).await;
    assert_eq!(q["from"], from.uid.as_str(), "queued.from: {q}");
    assert_eq!(q["to"], to.uid.as_str(), "queued.to: {q}");
    assert!(q.get("chat_id").is_none() || q["chat_id"].is_null(), "{q}");
    hex32(&q["message_id"])
}

/// The reply to a message frame with `client_id` `cid`: must be `msg_status` `queued`.
pub async fn queued_reply(ws: &mut WsClient, cid: &str) -> Value {
    let q = ws
        .recv_where(
            &format!("the reply to client_id {cid}"),
            |f| {
                (is(f, "msg_status") && f["client_id"] == cid)
                    || (is(f, "error") && f["ref"] == cid)
            },
            WAIT,
        )
        .await;
    assert!(
        is(&q, "msg_status") && q["status"] == "queued",
        "msg_status queued: {q}"
    );
    assert_eq!(q["client_id"], cid);
    assert_ts(&q["ts"]);
    assert_ephemeral(&q);
    q
}

/// `POST /messages/send` of a DM; returns the `message_id`.
pub async fn http_send(t: &Target, from: &User, to: &User, data: &str) -> String {
    let r = t
        .client
        .post(
            "/messages/send",
            Some(&from.token),
            &json!({"target_id": to.uid, "data": data}),
        )
        .await;
    assert_eq!(r.status, 200, "send: {}", r.body);
    assert_eq!(r.body["ok"], true, "{}", r.body);
    assert_eq!(r.body["status"], "queued", "{}", r.body);
    hex32(&r.body["message_id"])
}

/// The next `relay_delivery` on `ws`, checked as a DM from `from` to `to`.
pub async fn delivery(ws: &mut WsClient, from: &User, to: &User) -> Value {
    let f = ws.recv_type("relay_delivery", WAIT).await;
    assert_dm_delivery(&f, from, to);
    f
}

pub fn assert_dm_delivery(f: &Value, from: &User, to: &User) {
    assert!(is(f, "relay_delivery"), "relay_delivery: {f}");
    hex32(&f["message_id"]);
    assert_durable(f);
    assert_eq!(f["from"], from.uid.as_str(), "from: {f}");
    assert_eq!(f["to"], to.uid.as_str(), "to: {f}");
    assert!(
        f.get("chat_id").is_none(),
        "a DM delivery has no chat_id: {f}"
    );
    assert!(f["payload"].is_string(), "payload string: {f}");
}

/// Collects one `msg_status` `status` for each id (any order) and checks `from`/`to`.
pub async fn statuses(
    ws: &mut WsClient,
    status: &str,
    ids: &[String],
    from: &User,
    to: &User,
) -> Vec<Value> {
    let mut want: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    while !want.is_empty() {
        let f = ws
            .recv_where(
                &format!("msg_status {status} for {want:?}"),
                |f| {
                    is(f, "msg_status")
                        && f["status"] == status
                        && f["message_id"].as_str().is_some_and(|m| want.contains(m))
                },
                WAIT,
            )
            .await;
        assert_durable(&f);
        assert_eq!(
            f["from"],
            from.uid.as_str(),
            "status.from is the recipient: {f}"
        );
        assert_eq!(f["to"], to.uid.as_str(), "status.to is the sender: {f}");
        want.remove(f["message_id"].as_str().expect("id"));
        out.push(f);
    }
    out
}

async fn history(t: &Target, u: &User, query: &str) -> Resp {
    t.client
        .get(&format!("/messages/history/dm/{query}"), Some(&u.token))
        .await
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("array: {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("string: {s}"))
                .to_owned()
        })
        .collect()
}

fn item_ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items: {body}"))
        .iter()
        .map(|i| hex32(&i["message_id"]))
        .collect()
}

/// A key set that is not the server's: tokens it signs must be refused.
pub fn foreign_keys() -> Arc<StaticKeys> {
    static KEYS: OnceLock<Arc<StaticKeys>> = OnceLock::new();
    KEYS.get_or_init(|| Arc::new(StaticKeys::generate().expect("keys")))
        .clone()
}

/// A well-formed token for `u`'s session signed by a key the server does not know.
pub async fn forged_token(u: &User) -> String {
    TokenCodec::new(
        foreign_keys(),
        "pixeltoo.ru".into(),
        "mvp_clients".into(),
        600,
    )
    .issue(
        u.uid.parse::<UserId>().expect("uid"),
        SessionId(u.session_id),
    )
    .await
    .expect("issue")
}

// ---- S4 ------------------------------------------------------------------------------------

/// S4 Contacts.
pub async fn s4(t: &Target) {
    let c = &t.client;
    let a = new_user(c, "Alice").await;
    let b = new_user(c, "Bob").await;
    let cu = new_user(c, "Carol").await;
    let d = new_user(c, "Dave").await;

    // 1) WS(B); A asks B.
    let mut wb = online(t, &b).await;
    let r = csrf_post(c, "/subscribe", &a, &b.uid).await;
    assert_ok(&r, json!({"status": "subscription_requested"}));
    // 2)
    let f = wb.recv_type("subscription_request", WAIT).await;
    assert_durable(&f);
    assert_eq!(f["from_id"], a.uid.as_str(), "{f}");
    assert!(f["from_phone"].is_null(), "from_phone is null: {f}");
    assert_eq!(f["from_nickname"], "alice", "{f}");
    assert_eq!(f["secret"], false, "{f}");
    wb.ack_all().await;
    // 3)
    csrf_post(c, "/subscribe", &a, &b.uid)
        .await
        .assert_error(409, "request_pending");
    csrf_post(c, "/subscribe", &a, &a.uid)
        .await
        .assert_error(400, "invalid_target");
    c.post(
        "/subscribe",
        Some(&a.token),
        &json!({"target_id": b.uid, "csrf_token": "x"}),
    )
    .await
    .assert_error(403, "csrf_invalid");
    csrf_post(c, "/subscribe", &a, "10000000")
        .await
        .assert_error(404, "user_not_found");
    let numeric: u64 = b.uid.parse().expect("uid");
    let r = c
        .post(
            "/subscribe",
            Some(&a.token),
            &json!({"target_id": numeric, "csrf_token": a.csrf}),
        )
        .await;
    r.assert_error(422, "validation_failed");
    assert_eq!(
        r.body["error"]["fields"][0]["field"], "target_id",
        "{}",
        r.body
    );
    // 4) A relays to B before B accepted.
    let mut wa = online(t, &a).await;
    wa.send_json(&json!({"type": "relay", "target": b.uid, "payload": "CT-0", "client_id": "p0"}))
        .await;
    let e = wa.recv_type("error", WAIT).await;
    error_frame(&e, "not_a_contact", json!("p0"));
    wb.expect_silence(t.quiet).await;
    // 5)
    let r = c.get("/contacts/requests", Some(&b.token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let incoming = r.body["incoming"].as_array().expect("incoming");
    assert_eq!(incoming.len(), 1, "{}", r.body);
    assert_eq!(incoming[0]["unique_id"], a.uid.as_str());
    assert_eq!(incoming[0]["nickname"], "alice");
    assert_eq!(incoming[0]["secret"], false);
    assert_ts(&incoming[0]["requested_at"]);
    assert_eq!(r.body["outgoing"], json!([]), "{}", r.body);
    let r = c.get("/contacts/requests", Some(&a.token)).await;
    let outgoing = r.body["outgoing"].as_array().expect("outgoing");
    assert_eq!(outgoing.len(), 1, "{}", r.body);
    assert_eq!(outgoing[0]["unique_id"], b.uid.as_str());
    assert!(
        outgoing[0].get("nickname").is_none(),
        "outgoing requests do not reveal the target's profile: {}",
        r.body
    );
    // 6) confirm with the CSRF token in the header only.
    let confirm = || {
        let req = c
            .request(Method::POST, "/confirm_subscribe", Some(&b.token))
            .header("x-csrf-token", &b.csrf)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                json!({"target_id": a.uid}).to_string(),
            )))
            .expect("request");
        c.send(req)
    };
    assert_ok(&confirm().await, json!({"status": "confirmed"}));
    confirm().await.assert_error(404, "no_pending_request");
    // 7)
    let f = wa.recv_type("subscription_confirmed", WAIT).await;
    assert_durable(&f);
    assert_eq!(f["from_id"], b.uid.as_str(), "{f}");
    assert!(f["from_phone"].is_null(), "{f}");
    assert_eq!(f["from_nickname"], "bob", "{f}");
    wa.ack_all().await;
    // 8)
    let r = c.get("/contacts", Some(&a.token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (
            &r.body["page"],
            &r.body["per_page"],
            &r.body["total"],
            &r.body["pages"]
        ),
        (&json!(1), &json!(20), &json!(1), &json!(1)),
        "{}",
        r.body
    );
    let list = r.body["contacts"].as_array().expect("contacts");
    assert_eq!(list.len(), 1, "{}", r.body);
    assert_eq!(list[0]["unique_id"], b.uid.as_str());
    assert_eq!(list[0]["nickname"], "bob");
    assert!(
        same_pem(&list[0]["public_e2e_key"], &user_pem()),
        "{}",
        r.body
    );
    let r = c.get("/contacts", Some(&b.token)).await;
    let list = r.body["contacts"].as_array().expect("contacts");
    assert_eq!(list.len(), 1, "{}", r.body);
    assert_eq!(list[0]["unique_id"], a.uid.as_str());
    // 9) C asks A, A rejects.
    assert_ok(
        &csrf_post(c, "/subscribe", &cu, &a.uid).await,
        json!({"status": "subscription_requested"}),
    );
    let f = wa.recv_type("subscription_request", WAIT).await;
    assert_eq!(f["from_id"], cu.uid.as_str(), "{f}");
    assert_eq!(f["from_nickname"], "carol", "{f}");
    wa.ack_all().await;
    assert_ok(
        &csrf_post(c, "/reject_subscribe", &a, &cu.uid).await,
        json!({"status": "rejected"}),
    );
    let r = c.get("/contacts/requests", Some(&cu.token)).await;
    assert_eq!(
        r.body["outgoing"],
        json!([]),
        "rejected request is gone: {}",
        r.body
    );
    csrf_post(c, "/reject_subscribe", &a, &cu.uid)
        .await
        .assert_error(404, "no_pending_request");
    // 10) C and B become contacts.
    make_contacts(t, &cu, &b).await;
    let f = wb.recv_type("subscription_request", WAIT).await;
    assert_eq!(f["from_id"], cu.uid.as_str(), "{f}");
    wb.ack_all().await;
    // 11) A and D become contacts, then A ends it.
    let mut wd = online(t, &d).await;
    make_contacts(t, &a, &d).await;
    let f = wd.recv_type("subscription_request", WAIT).await;
    assert_eq!(f["from_id"], a.uid.as_str(), "{f}");
    let f = wa.recv_type("subscription_confirmed", WAIT).await;
    assert_eq!(f["from_id"], d.uid.as_str(), "{f}");
    wd.ack_all().await;
    wa.ack_all().await;
    assert_ok(
        &csrf_post(c, "/unsubscribe", &a, &d.uid).await,
        json!({"status": "unsubscribed"}),
    );
    let f = wd.recv_type("subscription_removed", WAIT).await;
    assert_durable(&f);
    assert_eq!(f["from_id"], a.uid.as_str(), "{f}");
    wd.ack_all().await;
    wa.send_json(&json!({"type": "relay", "target": d.uid, "payload": "CT-D", "client_id": "p1"}))
        .await;
    let e = wa.recv_type("error", WAIT).await;
    error_frame(&e, "not_a_contact", json!("p1"));
    let r = c.get("/contacts", Some(&a.token)).await;
    assert_eq!(
        r.body["total"], 1,
        "D is gone from A's contacts: {}",
        r.body
    );
    csrf_post(c, "/unsubscribe", &a, &d.uid)
        .await
        .assert_error(404, "not_found");
    // 12)
    let r = c
        .get(&format!("/profile?user_id={}", a.uid), Some(&b.token))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["unique_id"], a.uid.as_str());
    assert_eq!(r.body["nickname"], "alice");
    assert!(r.body.get("phone").is_none(), "no phone: {}", r.body);
    assert!(
        r.body.get("csrf_token").is_none(),
        "no csrf_token: {}",
        r.body
    );
    // 13) A's new key reaches B (a contact) and not D (no longer one).
    let pem2 = new_pem(2048);
    assert_ok(
        &c.post(
            "/e2e/public_key",
            Some(&a.token),
            &json!({"public_e2e_key": pem2}),
        )
        .await,
        json!({"status": "ok"}),
    );
    let f = wb.recv_type("key_changed", WAIT).await;
    assert_durable(&f);
    assert_eq!(f["user_id"], a.uid.as_str(), "{f}");
    assert!(same_pem(&f["public_e2e_key"], &pem2), "{f}");
    wb.ack_all().await;
    let r = c.get("/contacts", Some(&b.token)).await;
    let entry = r.body["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .find(|e| e["unique_id"] == a.uid.as_str())
        .cloned()
        .expect("A listed");
    assert!(same_pem(&entry["public_e2e_key"], &pem2), "{entry}");
    wd.expect_no_frame("key_changed", t.quiet).await;
    // 14) A logs in again: a new CSRF token replaces the old one.
    let r = login(c, &a.phone, &a.password, &a.device).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let new_csrf = r.body["csrf_token"].as_str().expect("csrf").to_owned();
    assert_ne!(new_csrf, a.csrf);
    csrf_post(c, "/subscribe", &a, &cu.uid)
        .await
        .assert_error(403, "csrf_invalid");
    let r = c.get("/csrf_token", Some(&a.token)).await;
    assert_ok(&r, json!({"csrf_token": new_csrf}));

    wa.ack_and_close().await;
    wb.ack_and_close().await;
    wd.ack_and_close().await;
}

// ---- S6 ------------------------------------------------------------------------------------

/// S6 Live DM and receipts.
pub async fn s6(t: &Target) {
    let (a, b) = pair(t, "Alice", "Bob").await;
    let mut wa = online(t, &a).await;
    let mut wb = online(t, &b).await;
    // 1)
    let m = relay(&mut wa, &a, &b, "CT-1", "a-1").await;
    // 2) exactly one delivery; no `delivered` before B acks.
    let f = delivery(&mut wb, &a, &b).await;
    assert_eq!(f["message_id"], m.as_str());
    assert_eq!(f["payload"], "CT-1");
    assert!(f["self"] != true, "{f}");
    wb.expect_no_frame("relay_delivery", t.quiet).await;
    wa.expect_no(
        "msg_status before B acked",
        |f| is(f, "msg_status") && f["status"] != "queued",
        Duration::ZERO,
    )
    .await;
    // 3)
    wb.send_json(&json!({"type": "ack_received", "message_id": m}))
        .await;
    statuses(&mut wa, "delivered", std::slice::from_ref(&m), &b, &a).await;
    // 4)
    wb.send_json(&json!({"type": "ack_read", "message_id": m}))
        .await;
    statuses(&mut wa, "read", std::slice::from_ref(&m), &b, &a).await;
    wa.ack_all().await;
    // 5) chat_message: the payload is the frame's exact JSON text.
    let frame = json!({"type": "chat_message", "target": b.uid, "payload": {"text": "hi"}, "client_id": "a-2"});
    let text = frame.to_string();
    wa.send_text(&text).await;
    let m5 = hex32(&queued_reply(&mut wa, "a-2").await["message_id"]);
    let f = delivery(&mut wb, &a, &b).await;
    assert_eq!(f["message_id"], m5.as_str());
    let payload = f["payload"].as_str().expect("payload");
    assert_eq!(
        serde_json::from_str::<Value>(payload).expect("payload is JSON"),
        frame
    );
    assert_eq!(payload, text, "the frame's exact JSON text");
    // 6)
    let r = history(t, &a, &b.uid).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let msgs = strings(&r.body["messages"]);
    assert_eq!(msgs, vec!["CT-1".to_owned(), text.clone()], "{}", r.body);
    let items = r.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    let it = &items[0];
    assert_eq!(it["message_id"], m.as_str());
    assert_eq!(it["from"], a.uid.as_str());
    assert_eq!(it["to"], b.uid.as_str());
    assert!(it["chat_id"].is_null(), "{it}");
    assert_ts(&it["ts"]);
    assert_eq!(it["status"], "read", "{it}");
    assert_eq!(it["deleted"], false);
    assert_eq!(items[1]["message_id"], m5.as_str());
    assert_eq!(
        items[1]["status"], "queued",
        "B has not acked M5: {}",
        items[1]
    );
    assert_eq!(r.body["has_more"], false);
    assert_eq!(r.body["total"], 2);
    // 7) B acks up to the last durable frame → A learns M5 was delivered.
    let last = seq_of(&f);
    wb.ack_up_to(last).await;
    statuses(&mut wa, "delivered", &[m5], &b, &a).await;
    wa.ack_and_close().await;
    wb.ack_and_close().await;
}

// ---- S7 ------------------------------------------------------------------------------------

/// S7 Offline queue and redelivery.
pub async fn s7(t: &Target) {
    let (a, b) = pair(t, "Alice", "Bob").await;
    let mut wa = online(t, &a).await;
    // 1)–3) B offline.
    let m2 = relay(&mut wa, &a, &b, "CT-2", "c-2").await;
    let m3 = http_send(t, &a, &b, "CT-3").await;
    let m3b = relay(&mut wa, &a, &b, "CT-3b", "c-3b").await;
    let ids = vec![m2.clone(), m3.clone(), m3b.clone()];
    // B is offline, and the device that sent over HTTP gets no copy and no status of it.
    wa.expect_silence(t.quiet).await;
    // 4) B connects and does not ack.
    let (wb, sync) = connect(t, &b).await;
    let check_backlog = |sync: &SyncDone| -> i64 {
        assert_eq!(sync.backlog.len(), 3, "backlog: {:?}", sync.backlog);
        let s1 = seq_of(&sync.backlog[0]);
        for (i, f) in sync.backlog.iter().enumerate() {
            assert_dm_delivery(f, &a, &b);
            assert_eq!(f["message_id"], ids[i].as_str(), "order: {f}");
            assert_eq!(f["payload"], ["CT-2", "CT-3", "CT-3b"][i], "{f}");
            assert_eq!(seq_of(f), s1 + i as i64, "consecutive seq: {f}");
        }
        assert_eq!((sync.count, sync.last_seq), (3, s1 + 2), "sync_done");
        s1 + 2
    };
    let s3 = check_backlog(&sync);
    wb.close().await;
    // 5) again: the same frames, unchanged.
    let (mut wb, sync2) = connect(t, &b).await;
    check_backlog(&sync2);
    assert_eq!(sync2.backlog, sync.backlog, "redelivered unchanged (§5.3)");
    // 6)
    wb.ack_up_to(s3).await;
    statuses(&mut wa, "delivered", &ids, &b, &a).await;
    wa.expect_no_frame("msg_status", t.quiet).await;
    wa.ack_all().await;
    wb.ping().await;
    wb.close().await;
    // 7)
    let (wb, sync) = connect(t, &b).await;
    assert_eq!(
        (sync.count, sync.last_seq),
        (0, s3),
        "nothing left: {:?}",
        sync.backlog
    );
    assert!(sync.backlog.is_empty());
    wb.close().await;
    // 8) 300 offline messages against the 256 in-flight window.
    let mut bulk = Vec::new();
    for i in 0..300 {
        bulk.push(http_send(t, &a, &b, &format!("BULK-{i}")).await);
    }
    let mut wb = WsClient::open(t.http, &b.token).await;
    let durable = |f: &Value| f.get("seq").is_some() || is(f, "sync_done");
    for (i, id) in bulk.iter().enumerate().take(256) {
        let f = wb
            .recv_where(&format!("delivery #{i}"), durable, WAIT)
            .await;
        assert_dm_delivery(&f, &a, &b);
        assert_eq!(f["message_id"], id.as_str(), "order at #{i}");
        assert_eq!(seq_of(&f), s3 + 1 + i as i64, "seq at #{i}");
    }
    wb.expect_no(
        "a 257th frame or sync_done before an ack (window 256)",
        durable,
        t.quiet,
    )
    .await;
    wb.ack_up_to(s3 + 256).await;
    let sync = wb.sync().await;
    assert_eq!(sync.backlog.len(), 44, "the rest: {:?}", sync.backlog);
    for (i, f) in sync.backlog.iter().enumerate() {
        assert_eq!(f["message_id"], bulk[256 + i].as_str());
        assert_eq!(seq_of(f), s3 + 257 + i as i64);
    }
    assert_eq!((sync.count, sync.last_seq), (300, s3 + 300));
    wb.ack_and_close().await;
    wa.ack_and_close().await;
}

// ---- S8 ------------------------------------------------------------------------------------

/// S8 Idempotency and history.
pub async fn s8(t: &Target) {
    let c = &t.client;
    let (a, b) = pair(t, "Alice", "Bob").await;
    let mut wa = online(t, &a).await;
    let mut wb = online(t, &b).await;
    // 1)
    let m4 = relay(&mut wa, &a, &b, "CT-4", "dup-1").await;
    wa.send_json(
        &json!({"type": "relay", "target": b.uid, "payload": "CT-4-again", "client_id": "dup-1"}),
    )
    .await;
    let q = queued_reply(&mut wa, "dup-1").await;
    assert_eq!(q["message_id"], m4.as_str(), "{q}");
    assert_eq!(q["duplicate"], true, "{q}");
    let f = delivery(&mut wb, &a, &b).await;
    assert_eq!(f["message_id"], m4.as_str());
    assert_eq!(f["payload"], "CT-4");
    // 2)
    let body = json!({"target_id": b.uid, "data": "CT-5", "client_id": "dup-2"});
    let send = || c.post("/messages/send", Some(&a.token), &body);
    let r1 = send().await;
    assert_eq!(r1.status, 200, "{}", r1.body);
    assert!(r1.body["duplicate"] != true, "{}", r1.body);
    let m5 = hex32(&r1.body["message_id"]);
    let r2 = send().await;
    assert_eq!(r2.status, 200, "{}", r2.body);
    assert_eq!(r2.body["message_id"], m5.as_str(), "{}", r2.body);
    assert_eq!(r2.body["duplicate"], true, "{}", r2.body);
    let f = delivery(&mut wb, &a, &b).await;
    assert_eq!(f["message_id"], m5.as_str());
    wb.expect_no_frame("relay_delivery", t.quiet).await;
    // 3)
    let r = history(t, &a, &b.uid).await;
    assert_eq!(
        strings(&r.body["messages"]),
        vec!["CT-4".to_owned(), "CT-5".to_owned()],
        "{}",
        r.body
    );
    // 4)
    let mut h = Vec::new();
    for i in 1..=5 {
        h.push(http_send(t, &a, &b, &format!("H{i}")).await);
    }
    for id in &h {
        let f = delivery(&mut wb, &a, &b).await;
        assert_eq!(f["message_id"], id.as_str());
    }
    // Stable statuses for the comparisons below: B acks everything, A sees every `delivered`.
    wb.ack_all().await;
    let mut all = vec![m4.clone(), m5.clone()];
    all.extend(h.iter().cloned());
    statuses(&mut wa, "delivered", &all, &b, &a).await;
    wa.ack_all().await;
    // 5)
    let r = history(t, &a, &format!("{}?limit=2", b.uid)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(strings(&r.body["messages"]), vec!["H4", "H5"], "{}", r.body);
    assert_eq!(item_ids(&r.body), vec![h[3].clone(), h[4].clone()]);
    assert_eq!(r.body["has_more"], true);
    assert_eq!(r.body["next_before"], h[3].as_str());
    assert!(
        r.body["page"].is_null() && r.body["pages"].is_null(),
        "{}",
        r.body
    );
    let limit2 = r.body.clone();
    let r = history(t, &a, &format!("{}?before={}&limit=2", b.uid, h[3])).await;
    assert_eq!(strings(&r.body["messages"]), vec!["H2", "H3"], "{}", r.body);
    assert_eq!(r.body["next_before"], h[1].as_str(), "{}", r.body);
    let r = history(t, &a, &format!("{}?page=1&per_page=2", b.uid)).await;
    assert_eq!(strings(&r.body["messages"]), vec!["H4", "H5"], "{}", r.body);
    assert_eq!(
        (
            &r.body["page"],
            &r.body["per_page"],
            &r.body["total"],
            &r.body["pages"]
        ),
        (&json!(1), &json!(2), &json!(7), &json!(4)),
        "{}",
        r.body
    );
    let r = history(t, &a, &format!("{}?page=4&per_page=2", b.uid)).await;
    assert_eq!(strings(&r.body["messages"]), vec!["CT-4"], "{}", r.body);
    assert_eq!(r.body["has_more"], false, "{}", r.body);
    // 6) WS get_history = the HTTP cursor response.
    wa.send_json(&json!({"type": "get_history", "target": b.uid, "limit": 2}))
        .await;
    let f = wa.recv_type("history", WAIT).await;
    assert_ephemeral(&f);
    assert_eq!(f["target"], b.uid.as_str());
    assert!(f["chat_id"].is_null(), "{f}");
    for k in ["messages", "items", "has_more", "next_before"] {
        assert_eq!(f[k], limit2[k], "get_history `{k}` = HTTP ?limit=2");
    }
    // 7)
    for q in [
        "before=zzz",
        "limit=101",
        "limit=0",
        "per_page=0",
        "page=1&limit=2",
    ] {
        history(t, &a, &format!("{}?{q}", b.uid))
            .await
            .assert_error(422, "validation_failed");
    }
    wa.ack_and_close().await;
    wb.ack_and_close().await;
}

// ---- S9 ------------------------------------------------------------------------------------

/// S9 Multi-device.
pub async fn s9(t: &Target) {
    let (a, b) = pair(t, "Alice", "Bob").await;
    let a2 = second_device(t, &a).await;
    let b2 = second_device(t, &b).await;
    let mut wa = online(t, &a).await;
    let mut wa2 = online(t, &a2).await;
    let mut wb = online(t, &b).await;
    let mut wb2 = online(t, &b2).await;
    // 1)
    let m6 = relay(&mut wa, &a, &b, "CT-6", "c-6").await;
    for ws in [&mut wb, &mut wb2] {
        let f = delivery(ws, &a, &b).await;
        assert_eq!(
            (&f["message_id"], &f["payload"]),
            (&json!(m6), &json!("CT-6"))
        );
        assert!(f["self"] != true, "recipients' copies are not self: {f}");
    }
    let f = delivery(&mut wa2, &a, &b).await;
    assert_eq!(f["message_id"], m6.as_str());
    assert_eq!(f["payload"], "CT-6");
    assert_eq!(
        f["self"], true,
        "the sender's other device gets a self copy: {f}"
    );
    wa2.ack_all().await;
    wa.expect_no_frame("relay_delivery", t.quiet).await;
    // 2) B2's ack makes `delivered`, once.
    wb2.ack_all().await;
    for ws in [&mut wa, &mut wa2] {
        statuses(ws, "delivered", std::slice::from_ref(&m6), &b, &a).await;
        ws.ack_all().await;
    }
    wb.ack_all().await;
    for ws in [&mut wa, &mut wa2] {
        ws.expect_no(
            "a second `delivered`, or a status from a self-copy ack",
            |f| is(f, "msg_status"),
            t.quiet,
        )
        .await;
    }
    // 3) B2 offline: CT-7 waits in its own queue.
    wb2.close().await;
    let m7 = relay(&mut wa, &a, &b, "CT-7", "c-7").await;
    let f = delivery(&mut wb, &a, &b).await;
    assert_eq!(f["message_id"], m7.as_str());
    wb.ack_all().await;
    let f = delivery(&mut wa2, &a, &b).await;
    assert_eq!((&f["message_id"], &f["self"]), (&json!(m7), &json!(true)));
    wa2.ack_all().await;
    let (wb2, sync) = connect(t, &b2).await;
    assert_eq!(sync.count, 1, "B2's backlog: {:?}", sync.backlog);
    assert_dm_delivery(&sync.backlog[0], &a, &b);
    assert_eq!(sync.backlog[0]["message_id"], m7.as_str());
    assert_eq!(sync.backlog[0]["payload"], "CT-7");
    assert_eq!(sync.last_seq, seq_of(&sync.backlog[0]));
    wb2.ack_and_close().await;
    // 4) A2 closes: A is still online.
    wa2.ack_and_close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pong = wb.ping().await;
    assert_eq!(
        pong["contacts_status"][a.uid.as_str()]["status"],
        "online",
        "{pong}"
    );
    wb.expect_no(
        "a status_change of A (one of A's sockets is still open)",
        |f| is(f, "status_change") && f["user_id"] == a.uid.as_str(),
        t.quiet,
    )
    .await;
    // 5) a second socket of B's device replaces the first.
    let (wb_new, _) = connect(t, &b).await;
    assert_eq!(
        wb.expect_close(WAIT).await,
        (4001, "replaced".to_owned()),
        "the older socket of the device"
    );
    wb_new.ack_and_close().await;
    wa.ack_and_close().await;
}

// ---- S10 -----------------------------------------------------------------------------------

/// S10 Authorization errors and admission. `t` must allow [`ALLOWED_ORIGIN`].
pub async fn s10(t: &Target) {
    let c = &t.client;
    let (a, b) = pair(t, "Alice", "Bob").await;
    let cu = new_user(c, "Carol").await;
    let m = http_send(t, &a, &b, "CT-1").await;
    let mut wa = online(t, &a).await;
    let mut wc = online(t, &cu).await;
    // 1)
    wc.send_json(&json!({"type": "relay", "target": a.uid, "payload": "x", "client_id": "c-1"}))
        .await;
    error_frame(
        &wc.recv_type("error", WAIT).await,
        "not_a_contact",
        json!("c-1"),
    );
    wa.expect_silence(t.quiet).await;
    // 2) malformed frames; the socket stays open.
    let refused: Vec<(&str, String, Value)> = vec![
        (
            "invalid_frame",
            json!({"type": "relay", "target": "123", "payload": "x"}).to_string(),
            json!("relay"),
        ),
        ("invalid_json", "not json".into(), Value::Null),
        (
            "invalid_frame",
            json!({"payload": "x"}).to_string(),
            Value::Null,
        ),
        (
            "unknown_type",
            json!({"type": "bogus"}).to_string(),
            json!("bogus"),
        ),
        (
            "invalid_frame",
            json!({"type": "relay", "target": a.uid, "chat_id": 1, "payload": "x", "client_id": "both-1"})
                .to_string(),
            json!("both-1"),
        ),
    ];
    for (i, (reason, text, reference)) in refused.iter().enumerate() {
        wc.send_text(text).await;
        let e = wc.recv_type("error", WAIT).await;
        error_frame(&e, reason, reference.clone());
        if i == 1 {
            wc.send_binary(b"\x01\x02binary".to_vec()).await;
            error_frame(
                &wc.recv_type("error", WAIT).await,
                "invalid_frame",
                Value::Null,
            );
        }
    }
    let pong = wc.ping().await;
    assert!(pong["contacts_status"].is_object(), "{pong}");
    // 3)
    c.post(
        "/messages/send",
        Some(&cu.token),
        &json!({"target_id": a.uid, "data": "x"}),
    )
    .await
    .assert_error(403, "not_a_contact");
    let r = c
        .post(
            "/messages/send",
            Some(&cu.token),
            &json!({"target_id": "12", "data": "x"}),
        )
        .await;
    r.assert_error(422, "validation_failed");
    assert_eq!(
        r.body["error"]["fields"][0]["field"], "target_id",
        "{}",
        r.body
    );
    // 4)
    wc.send_json(&json!({"type": "ack_read", "message_id": m}))
        .await;
    error_frame(
        &wc.recv_type("error", WAIT).await,
        "unknown_message",
        json!("ack_read"),
    );
    wc.send_json(&json!({"type": "typing_start", "target": a.uid}))
        .await;
    error_frame(
        &wc.recv_type("error", WAIT).await,
        "not_a_contact",
        json!("typing_start"),
    );
    wa.expect_silence(t.quiet).await;
    // 5)
    c.get(&format!("/history/{}", a.uid), Some(&cu.token))
        .await
        .assert_error(403, "not_a_contact");
    let r = history(t, &cu, &a.uid).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["messages"], json!([]), "{}", r.body);
    assert_eq!(r.body["items"], json!([]), "{}", r.body);
    wc.close().await;
    // 6) both endpoints, both token forms.
    let mut wb = WsClient::connect(t.http, "/ws", Some(&b.token), false, None).await;
    let sync = wb.sync().await;
    assert_eq!(
        sync.backlog.len(),
        1,
        "B's backlog holds M: {:?}",
        sync.backlog
    );
    wb.ack_all().await;
    let mut wc = WsClient::connect(t.ws, "/some/other/path", Some(&cu.token), true, None).await;
    wc.sync().await;
    let forged = forged_token(&cu).await;
    /// (listener, path, token, token in header, Origin, expected close)
    type Admission<'a> = (
        SocketAddr,
        &'a str,
        Option<&'a str>,
        bool,
        Option<&'a str>,
        (u16, &'a str),
    );
    let refusals: Vec<Admission<'_>> = vec![
        (t.http, "/ws", None, true, None, (1008, "unauthenticated")),
        (t.ws, "/", None, true, None, (1008, "unauthenticated")),
        (
            t.ws,
            "/any/path",
            None,
            false,
            None,
            (1008, "unauthenticated"),
        ),
        (
            t.http,
            "/ws",
            Some(forged.as_str()),
            true,
            None,
            (1008, "invalid_token"),
        ),
        (
            t.ws,
            "/x",
            Some(forged.as_str()),
            false,
            None,
            (1008, "invalid_token"),
        ),
        (
            t.http,
            "/ws",
            Some("abc.def.ghi"),
            false,
            None,
            (1008, "invalid_token"),
        ),
        (
            t.ws,
            "/",
            Some("abc.def.ghi"),
            true,
            None,
            (1008, "invalid_token"),
        ),
        (
            t.http,
            "/ws",
            Some(a.token.as_str()),
            true,
            Some("https://evil.example"),
            (1008, "origin_not_allowed"),
        ),
        (
            t.ws,
            "/",
            Some(a.token.as_str()),
            false,
            Some("https://evil.example"),
            (1008, "origin_not_allowed"),
        ),
    ];
    for (addr, path, token, header, origin, (code, reason)) in refusals {
        let mut ws = WsClient::connect(addr, path, token, header, origin).await;
        assert_eq!(
            ws.expect_close(WAIT).await,
            (code, reason.to_owned()),
            "admission at {addr}{path} token={token:?} header={header} origin={origin:?}"
        );
        assert!(
            ws.received.is_empty(),
            "no frame before the admission close: {:?}",
            ws.received
        );
    }
    // The refused origin checks did not replace A's socket.
    wa.ping().await;
    let d = new_user(c, "Dave").await;
    let mut wd = WsClient::connect(t.http, "/ws", Some(&d.token), true, Some(ALLOWED_ORIGIN)).await;
    wd.sync().await;
    wd.close().await;
    // 7) a frame over 1 MiB closes only that socket.
    let big = json!({"type": "relay", "target": a.uid, "payload": "x".repeat(1 << 20)}).to_string();
    assert!(big.len() > 1_048_576);
    let _ = wb.try_send_text(big).await;
    assert_eq!(wb.expect_close(WAIT).await.0, 1009, "frame over 1 MiB");
    wc.ping().await;
    wa.expect_no_frame("relay_delivery", t.quiet).await;
    wc.close().await;
    wa.ack_and_close().await;
}

// ---- S11 -----------------------------------------------------------------------------------

fn is_status_change(f: &Value, uid: &str, status: &str) -> bool {
    is(f, "status_change") && f["user_id"] == uid && f["status"] == status
}

async fn status_change(ws: &mut WsClient, u: &User, status: &str) -> Value {
    let f = ws
        .recv_where(
            &format!("status_change {status} of {}", u.uid),
            |f| is_status_change(f, &u.uid, status),
            WAIT,
        )
        .await;
    assert_ephemeral(&f);
    assert_ts(&f["timestamp"]);
    f
}

/// S11 Presence and typing.
pub async fn s11(t: &Target) {
    let c = &t.client;
    let (a, b) = pair(t, "Alice", "Bob").await;
    let cu = new_user(c, "Carol").await;
    make_contacts(t, &cu, &b).await; // C is B's contact, not A's
    drain(t, &b).await;
    let mut wa = online(t, &a).await;
    let mut wb = online(t, &b).await;
    status_change(&mut wa, &b, "online").await;
    // 1)
    let pong = wa.ping().await;
    let entry = &pong["contacts_status"][b.uid.as_str()];
    assert_eq!(
        (&entry["status"], &entry["typing"]),
        (&json!("online"), &json!(false)),
        "{pong}"
    );
    assert!(
        pong["contacts_status"].get(cu.uid.as_str()).is_none(),
        "only accepted contacts: {pong}"
    );
    assert!(pong["server_version"].is_string(), "{pong}");
    assert_ts(&pong["timestamp"]);
    // 2)
    wb.send_json(&json!({"type": "typing_start", "target": a.uid}))
        .await;
    let f = wa.recv_type("typing_start", WAIT).await;
    assert_ephemeral(&f);
    assert_eq!(f["user_id"], b.uid.as_str(), "{f}");
    assert!(
        f.get("chat_id").is_some() && f["chat_id"].is_null(),
        "chat_id null: {f}"
    );
    assert_ts(&f["timestamp"]);
    let pong = wa.ping().await;
    assert_eq!(
        pong["contacts_status"][b.uid.as_str()]["typing"],
        true,
        "{pong}"
    );
    let r = c
        .get(
            &format!("/statuses?user_ids={},{}", b.uid, cu.uid),
            Some(&a.token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (sb, sc) = (
        &r.body["statuses"][b.uid.as_str()],
        &r.body["statuses"][cu.uid.as_str()],
    );
    assert_eq!(
        (&sb["status"], &sb["typing"]),
        (&json!("online"), &json!(true)),
        "{}",
        r.body
    );
    assert_eq!(
        (&sc["status"], &sc["typing"]),
        (&json!("not_subscribed"), &json!(false)),
        "{}",
        r.body
    );
    // 3) coalescing: 5 more within 1 s → at most one more forwarded.
    for _ in 0..5 {
        wb.send_json(&json!({"type": "typing_start", "target": a.uid}))
            .await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    tokio::time::sleep(t.quiet).await;
    wb.ping().await;
    let mut n = 0;
    while wa
        .try_recv_where(|f| is(f, "typing_start"), Duration::from_millis(300))
        .await
        .is_some()
    {
        n += 1;
    }
    assert!(n <= 1, "at most one more typing_start within 3 s, got {n}");
    // 4)
    wb.send_json(&json!({"type": "typing_stop", "target": a.uid}))
        .await;
    let f = wa.recv_type("typing_stop", WAIT).await;
    assert_ephemeral(&f);
    assert_eq!(f["user_id"], b.uid.as_str(), "{f}");
    assert!(f["chat_id"].is_null(), "{f}");
    // 5)
    wb.send_json(&json!({"type": "presence", "status": "away"}))
        .await;
    status_change(&mut wa, &b, "away").await;
    wb.send_json(&json!({"type": "presence", "status": "online"}))
        .await;
    status_change(&mut wa, &b, "online").await;
    // 6)
    wb.close().await;
    status_change(&mut wa, &b, "offline").await;
    let r = c
        .get(&format!("/statuses?user_ids={}", b.uid), Some(&a.token))
        .await;
    let st = r.body["statuses"][b.uid.as_str()]["status"]
        .as_str()
        .unwrap_or_else(|| panic!("status: {}", r.body))
        .to_owned();
    let at = st
        .strip_prefix("was at ")
        .unwrap_or_else(|| panic!("`was at <ts>`: {st}"));
    assert_ts(&json!(at));
    // 7) invisible mode.
    assert_ok(
        &c.post("/status/offline", Some(&b.token), &json!({})).await,
        json!({"status": "ok"}),
    );
    let mut wb = online(t, &b).await;
    wa.expect_no_frame("status_change", t.quiet).await;
    let pong = wa.ping().await;
    assert_eq!(
        pong["contacts_status"][b.uid.as_str()]["status"],
        "offline",
        "invisible B: {pong}"
    );
    assert_ok(
        &c.post("/status/online", Some(&b.token), &json!({})).await,
        json!({"status": "ok"}),
    );
    status_change(&mut wa, &b, "online").await;
    // 8) typing is never queued.
    wa.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    wb.send_json(&json!({"type": "typing_start", "target": a.uid}))
        .await;
    wb.ping().await;
    let (mut wa, sync) = connect(t, &a).await;
    assert!(
        sync.backlog.iter().all(|f| !is(f, "typing_start")),
        "no typing in the backlog: {:?}",
        sync.backlog
    );
    wa.expect_no(
        "a typing frame after reconnecting",
        |f| is(f, "typing_start") || is(f, "typing_stop"),
        t.quiet,
    )
    .await;
    wa.ack_and_close().await;
    wb.ack_and_close().await;
}

/// Every scenario of this module, in PROTOCOL order.
pub async fn all(t: &Target) {
    s4(t).await;
    s6(t).await;
    s7(t).await;
    s8(t).await;
    s9(t).await;
    s10(t).await;
    s11(t).await;
}
