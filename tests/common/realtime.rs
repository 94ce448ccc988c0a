//! The wire contract's scenarios S4, S6–S11 (contacts and the WebSocket real-time core), written once
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

mod s10_s11;
mod s4;
mod s6_s9;
pub use s10_s11::{s10, s11};
pub use s4::s4;
pub use s6_s9::{s6, s7, s8, s9};

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
