//! Scheduled messages (PROTOCOL §4.6 `POST /schedule/message`, docs/scheduled-messages.md):
//! helpers and the DM scenario shared by tests/schedule.rs and tests/example_binary.rs (the `melo`
//! binary on every backend).

use std::time::Duration;

use http::Method;
use melo::model::Timestamp;
use serde_json::{json, Value};

use crate::common::realtime::{assert_ts, hex32, make_contacts, online, second_device, Target};
use crate::common::ws::{is, WsClient};
use crate::common::{new_user, Client, Resp, User};

/// Long enough for any event the tests wait for; never a statement about speed.
pub const GENEROUS: Duration = Duration::from_secs(30);

/// `now + ms` as RFC 3339.
pub fn at(ms: i64) -> String {
    Timestamp::from_millis(Timestamp::now().millis() + ms).to_string()
}

pub fn millis(ts: &Value) -> i64 {
    Timestamp::parse(ts.as_str().expect("timestamp"))
        .expect("RFC 3339")
        .millis()
}

pub async fn schedule(c: &Client, u: &User, body: Value) -> Resp {
    c.post("/schedule/message", Some(&u.token), &body).await
}

/// Schedules and returns the `schedule_id`.
pub async fn schedule_ok(c: &Client, u: &User, body: Value) -> String {
    let r = schedule(c, u, body).await;
    assert_eq!(r.status, 200, "schedule: {}", r.body);
    assert_eq!(r.body["status"], "ok", "{}", r.body);
    hex32(&r.body["schedule_id"])
}

pub async fn pending(c: &Client, u: &User) -> Value {
    let r = c.get("/schedule", Some(&u.token)).await;
    assert_eq!(r.status, 200, "list: {}", r.body);
    r.body
}

/// Waits until `u` has no pending schedule (sent, discarded or cancelled).
pub async fn until_none_pending(c: &Client, u: &User) {
    let deadline = tokio::time::Instant::now() + GENEROUS;
    loop {
        if pending(c, u).await["total"] == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the schedule is still pending"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn cancel(c: &Client, u: &User, id: &str) -> Resp {
    c.call(
        Method::DELETE,
        &format!("/schedule/{id}"),
        Some(&u.token),
        None,
    )
    .await
}

/// `b`'s DM history with `a`.
pub async fn dm_history(c: &Client, b: &User, a: &User) -> Value {
    let r = c
        .get(&format!("/messages/history/dm/{}", a.uid), Some(&b.token))
        .await;
    assert_eq!(r.status, 200, "history: {}", r.body);
    r.body
}

/// The next `relay_delivery` on `ws` with `payload`.
pub async fn delivered(ws: &mut WsClient, payload: &str) -> Value {
    ws.recv_where(
        &format!("the delivery of {payload}"),
        |f| is(f, "relay_delivery") && f["payload"] == payload,
        GENEROUS,
    )
    .await
}

/// A DM scheduled about 1.5 s ahead reaches the recipient at or after `when`, and a `self` copy
/// reaches every device of the sender, the scheduling one included; it is in history once, and
/// no longer pending.
pub async fn scenario(t: &Target) {
    let c = &t.client;
    let a1 = new_user(c, "Alice").await;
    let a2 = second_device(t, &a1).await;
    let b = new_user(c, "Bob").await;
    make_contacts(t, &a1, &b).await;
    let mut wa1 = online(t, &a1).await;
    let mut wa2 = online(t, &a2).await;
    let mut wb = online(t, &b).await;

    let when = at(1_500);
    let id = schedule_ok(
        c,
        &a1,
        json!({"target_id": b.uid, "when": when, "data": "c2NoZWR1bGVk", "client_id": "s-1",
               "signature": "sig-1"}),
    )
    .await;
    let list = pending(c, &a1).await;
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["items"][0]["schedule_id"], id.as_str());

    let f = delivered(&mut wb, "c2NoZWR1bGVk").await;
    assert_eq!(f["from"], a1.uid.as_str(), "{f}");
    assert_eq!(f["to"], b.uid.as_str(), "{f}");
    assert_eq!(f["signature"], "sig-1", "{f}");
    assert!(f.get("self").is_none(), "{f}");
    assert_ts(&f["ts"]);
    assert!(
        millis(&f["ts"]) >= millis(&json!(when)),
        "sent at or after `when`: {f} vs {when}"
    );
    let message_id = hex32(&f["message_id"]);
    for ws in [&mut wa1, &mut wa2] {
        let copy = delivered(ws, "c2NoZWR1bGVk").await;
        assert_eq!(copy["self"], true, "{copy}");
        assert_eq!(copy["message_id"], message_id.as_str(), "{copy}");
        assert_eq!(copy["to"], b.uid.as_str(), "{copy}");
    }
    until_none_pending(c, &a1).await;
    let h = dm_history(c, &b, &a1).await;
    assert_eq!(h["total"], 1, "stored once: {h}");
    assert_eq!(h["messages"][0], "c2NoZWR1bGVk");
    assert_eq!(h["items"][0]["message_id"], message_id.as_str());
    // The schedule is gone: cancelling it now is a 404.
    cancel(c, &a1, &id)
        .await
        .assert_error(404, "schedule_not_found");

    // An object payload is sent as its JSON text.
    schedule_ok(
        c,
        &a1,
        json!({"target_id": b.uid, "when": at(300), "data": {"k": "v", "n": 1}}),
    )
    .await;
    let f = delivered(&mut wb, r#"{"k":"v","n":1}"#).await;
    assert_eq!(f["from"], a1.uid.as_str(), "{f}");

    // An object is the payload exactly as the client wrote it: key order, spacing and number
    // text kept (a client may sign that text).
    let object = r#"{ "z": 1, "a": [1.50, 2e3], "big": 123456789012345678901234567890 }"#;
    let raw = format!(
        r#"{{"target_id": "{}", "when": "{}", "data": {object}}}"#,
        b.uid,
        at(300)
    );
    let req = c
        .request(Method::POST, "/schedule/message", Some(&a1.token))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(raw)))
        .expect("request");
    let r = c.send(req).await;
    assert_eq!(r.status, 200, "{}", r.body);
    delivered(&mut wb, object).await;
}
