//! The read-marker and typing-over-HTTP scenario (PROTOCOL §4.5, §5.6), shared by
//! tests/read_markers.rs (in-process, SQLite, MySQL, two nodes) and tests/example_binary.rs
//! (the `melo` binary on every backend).

use crate::common::realtime::{assert_ts, hex32, make_contacts, online, second_device, Target};
use crate::common::ws::{is, WsClient, WAIT};
use crate::common::{new_user, Resp, User};
use serde_json::{json, Value};

pub async fn post(t: &Target, u: &User, path: &str, body: Value) -> Resp {
    t.client.post(path, Some(&u.token), &body).await
}

pub fn assert_ok(r: &Resp) {
    assert_eq!(r.status, 200, "{}", r.body);
}

pub fn assert_status_ok(r: &Resp) {
    assert_eq!(
        (r.status.as_u16(), &r.body),
        (200, &json!({"status": "ok"})),
        "status ok"
    );
}

pub async fn new_chat(t: &Target, owner: &User, name: &str, kind: &str) -> i64 {
    let r = post(
        t,
        owner,
        "/chats/create",
        json!({"name": name, "type": kind}),
    )
    .await;
    assert_ok(&r);
    r.body["chat_id"].as_i64().expect("chat_id")
}

pub async fn add(t: &Target, owner: &User, chat: i64, who: &User) {
    let r = post(
        t,
        owner,
        "/chats/members/add",
        json!({"chat_id": chat, "user_unique_id": who.uid}),
    )
    .await;
    assert_ok(&r);
}

/// `POST /messages/send` into a chat; the message id.
pub async fn send_in(t: &Target, from: &User, chat: i64, data: &str) -> String {
    let r = post(
        t,
        from,
        "/messages/send",
        json!({"chat_id": chat, "data": data}),
    )
    .await;
    assert_ok(&r);
    hex32(&r.body["message_id"])
}

pub async fn read(t: &Target, u: &User, chat: i64, id: &str) -> Resp {
    post(
        t,
        u,
        "/status/read",
        json!({"chat_id": chat, "message_id": id}),
    )
    .await
}

/// `u`'s `last_read_message_id` of `chat` in `GET /chats/list`.
pub async fn marker_of(t: &Target, u: &User, chat: i64) -> Value {
    let r = t
        .client
        .get("/chats/list?per_page=100", Some(&u.token))
        .await;
    assert_ok(&r);
    r.body["chats"]
        .as_array()
        .expect("chats")
        .iter()
        .find(|c| c["id"] == chat)
        .unwrap_or_else(|| panic!("chat {chat} listed: {}", r.body))["last_read_message_id"]
        .clone()
}

pub fn is_read(f: &Value, reader: &User, chat: i64) -> bool {
    is(f, "messages_read") && f["user_id"] == reader.uid.as_str() && f["chat_id"] == chat
}

/// The `messages_read` of `reader` in `chat`, checked against PROTOCOL §5.6.
pub async fn read_frame(ws: &mut WsClient, reader: &User, chat: i64, id: &str) {
    let f = ws
        .recv_where(
            &format!("messages_read of {} in {chat}", reader.uid),
            |f| is_read(f, reader, chat),
            WAIT,
        )
        .await;
    assert_eq!(f["last_read_message_id"], id, "{f}");
    assert_ts(&f["timestamp"]);
    assert!(f.get("seq").is_none(), "ephemeral, no seq: {f}");
    let keys: Vec<&str> = f
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys.len(),
        5,
        "type, user_id, chat_id, last_read_message_id, timestamp: {f}"
    );
}

pub fn is_typing(f: &Value, kind: &str, who: &User, chat: i64) -> bool {
    is(f, kind) && f["user_id"] == who.uid.as_str() && f["chat_id"] == chat
}

pub async fn typing_frame(ws: &mut WsClient, kind: &str, who: &User, chat: i64) {
    let f = ws
        .recv_where(
            &format!("{kind} of {} in {chat}", who.uid),
            |f| is_typing(f, kind, who, chat),
            WAIT,
        )
        .await;
    assert_ts(&f["timestamp"]);
    assert!(f.get("seq").is_none(), "ephemeral, no seq: {f}");
}

pub async fn typing(t: &Target, u: &User, chat: Value) -> Resp {
    post(t, u, "/status/typing", json!({ "chat_id": chat })).await
}

pub async fn own_typing(t: &Target, u: &User) -> Value {
    let r = t.client.get("/status/me", Some(&u.token)).await;
    assert_ok(&r);
    assert_eq!(r.body["user_id"], u.uid.as_str(), "{}", r.body);
    r.body["is_typing_in_chat"].clone()
}

/// `viewer`'s `/status/contacts` entry of `contact`: its `is_typing_in_chat`.
pub async fn contact_typing(t: &Target, viewer: &User, contact: &User) -> Value {
    let r = t.client.get("/status/contacts", Some(&viewer.token)).await;
    assert_ok(&r);
    let entry = r.body["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .find(|c| c["user_id"] == contact.uid.as_str())
        .unwrap_or_else(|| panic!("{} listed: {}", contact.uid, r.body))
        .clone();
    assert!(entry["status"].is_string(), "{entry}");
    assert!(entry.get("last_seen").is_some(), "{entry}");
    entry["is_typing_in_chat"].clone()
}

/// The whole scenario. Requests go to `req`; sockets and reads of state to `obs` (the same
/// node in-process, another node of the cluster on Redis).
pub async fn scenario(req: &Target, obs: &Target) {
    let a = new_user(&req.client, "Ann").await;
    let b = new_user(&req.client, "Ben").await;
    let c = new_user(&req.client, "Cat").await;
    let d = new_user(&req.client, "Dan").await;
    make_contacts(req, &a, &b).await;
    make_contacts(req, &a, &c).await;
    make_contacts(req, &b, &d).await;
    // K: a group of three (D is B's contact but not a member). N: A's channel with B in it.
    let k = new_chat(req, &a, "Group", "chat").await;
    add(req, &a, k, &b).await;
    add(req, &a, k, &c).await;
    let n = new_chat(req, &a, "News", "channel").await;
    add(req, &a, n, &b).await;
    let other = new_chat(req, &a, "Elsewhere", "chat").await;
    add(req, &a, other, &b).await;

    let b2 = second_device(req, &b).await;
    let mut wa = online(obs, &a).await;
    let mut wb = online(obs, &b).await;
    let mut wb2 = online(obs, &b2).await;
    let mut wc = online(obs, &c).await;
    let mut wd = online(obs, &d).await;

    let m1 = send_in(req, &a, k, "Rmlyc3Q=").await;
    let m2 = send_in(req, &c, k, "U2Vjb25k").await;
    let elsewhere = send_in(req, &a, other, "T3RoZXI=").await;

    // 1) B reads m2: A, C, and both of B's devices hear of it; D (no member) does not.
    assert_eq!(marker_of(obs, &b, k).await, Value::Null, "no marker yet");
    assert_status_ok(&read(req, &b, k, &m2).await);
    for ws in [&mut wa, &mut wc, &mut wb, &mut wb2] {
        read_frame(ws, &b, k, &m2).await;
    }
    assert_eq!(marker_of(obs, &b, k).await, json!(m2));
    assert_eq!(
        marker_of(obs, &a, k).await,
        Value::Null,
        "B's marker is B's"
    );
    assert_eq!(
        marker_of(obs, &c, k).await,
        Value::Null,
        "B's marker is B's"
    );

    // 2) Reading the older m1, or m2 again, does not move it back: no frame, list unchanged.
    assert_status_ok(&read(req, &b, k, &m1).await);
    assert_status_ok(&read(req, &b, k, &m2.to_uppercase()).await);
    assert_eq!(marker_of(obs, &b, k).await, json!(m2));
    // A newer read afterwards moves it again (the refused ones changed nothing).
    let m3 = send_in(req, &a, k, "VGhpcmQ=").await;
    assert_status_ok(&read(req, &b, k, &m3).await);
    read_frame(&mut wa, &b, k, &m3).await;
    for ws in [&mut wa, &mut wc, &mut wb2] {
        ws.expect_no(
            "messages_read for m1 or m2 after m2",
            |f| {
                is(f, "messages_read")
                    && (f["last_read_message_id"] == m1.as_str()
                        || f["last_read_message_id"] == m2.as_str())
            },
            req.quiet,
        )
        .await;
    }
    assert_eq!(marker_of(obs, &b, k).await, json!(m3));
    wd.expect_no(
        "messages_read (not a member)",
        |f| is(f, "messages_read"),
        req.quiet,
    )
    .await;

    // 3) Wrong chat, unknown message, non-member, unknown chat.
    read(req, &b, k, &elsewhere)
        .await
        .assert_error(404, "message_not_found");
    read(req, &b, other, &m1)
        .await
        .assert_error(404, "message_not_found");
    read(req, &b, k, "0123456789abcdef0123456789abcdef")
        .await
        .assert_error(404, "message_not_found");
    read(req, &d, k, &m1)
        .await
        .assert_error(403, "not_a_member");
    read(req, &d, k, "0123456789abcdef0123456789abcdef")
        .await
        .assert_error(403, "not_a_member");
    read(req, &b, 999_999_999, &m1)
        .await
        .assert_error(403, "not_a_member");
    assert_eq!(
        marker_of(obs, &b, k).await,
        json!(m3),
        "refusals change nothing"
    );

    // 4) Bad bodies → 422.
    for bad in [
        json!({}),
        json!({"chat_id": k}),
        json!({"message_id": m1}),
        json!({"chat_id": k, "message_id": null}),
        json!({"chat_id": null, "message_id": m1}),
        json!({"chat_id": "abc", "message_id": m1}),
        json!({"chat_id": 0, "message_id": m1}),
        json!({"chat_id": -5, "message_id": m1}),
        json!({"chat_id": 1.5, "message_id": m1}),
        json!({"chat_id": true, "message_id": m1}),
        json!({"chat_id": k, "message_id": 12345}),
        json!({"chat_id": k, "message_id": "xyz"}),
        json!({"chat_id": k, "message_id": format!("{m1}0")}),
        json!({"chat_id": k, "message_id": "g".repeat(32)}),
        json!({"chat_id": k, "message_id": "a".repeat(100_000)}),
        json!([k, m1]),
    ] {
        let r = post(req, &b, "/status/read", bad.clone()).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.body);
        assert_eq!(r.reason(), "validation_failed", "{bad}: {}", r.body);
    }

    // 5) A channel: the reader's own devices hear of it, the owner does not.
    let n1 = send_in(req, &a, n, "TmV3cw==").await;
    assert_status_ok(&read(req, &b, n, &n1).await);
    read_frame(&mut wb2, &b, n, &n1).await;
    wa.expect_no("a subscriber's read", |f| is_read(f, &b, n), req.quiet)
        .await;
    assert_eq!(marker_of(obs, &b, n).await, json!(n1));

    // 6) Leaving deletes the marker: C reads, leaves, is added again → no marker.
    assert_status_ok(&read(req, &c, k, &m1).await);
    read_frame(&mut wa, &c, k, &m1).await;
    assert_eq!(marker_of(obs, &c, k).await, json!(m1));
    assert_ok(&post(req, &c, "/chats/leave", json!({ "chat_id": k })).await);
    read(req, &c, k, &m1)
        .await
        .assert_error(403, "not_a_member");
    add(req, &a, k, &c).await;
    assert_eq!(
        marker_of(obs, &c, k).await,
        Value::Null,
        "a rejoin starts afresh"
    );

    // 7) Typing over HTTP: the other members' sockets get typing_start; a second start at once
    // is coalesced; D (no member) hears nothing.
    assert_eq!(own_typing(obs, &b).await, Value::Null);
    assert_status_ok(&typing(req, &b, json!(k)).await);
    typing_frame(&mut wa, "typing_start", &b, k).await;
    typing_frame(&mut wc, "typing_start", &b, k).await;
    assert_status_ok(&typing(req, &b, json!(k)).await);
    wa.expect_no(
        "a second typing_start within 3 s",
        |f| is_typing(f, "typing_start", &b, k),
        req.quiet,
    )
    .await;
    wd.expect_no(
        "typing (not a member)",
        |f| is(f, "typing_start"),
        req.quiet,
    )
    .await;
    wb2.expect_no("own typing", |f| is(f, "typing_start"), req.quiet)
        .await;
    // Reported to the typer and to a contact who is a member, not to one who is not.
    assert_eq!(own_typing(obs, &b).await, json!(k));
    assert_eq!(contact_typing(obs, &a, &b).await, json!(k));
    assert_eq!(
        contact_typing(obs, &d, &b).await,
        Value::Null,
        "D is no member of K"
    );

    // 8) null stops it.
    assert_status_ok(&typing(req, &b, Value::Null).await);
    typing_frame(&mut wa, "typing_stop", &b, k).await;
    typing_frame(&mut wc, "typing_stop", &b, k).await;
    assert_eq!(own_typing(obs, &b).await, Value::Null);
    assert_eq!(contact_typing(obs, &a, &b).await, Value::Null);
    // Stopping when typing nowhere is a no-op.
    assert_status_ok(&typing(req, &b, Value::Null).await);
    wa.expect_no("typing_stop", |f| is(f, "typing_stop"), req.quiet)
        .await;

    // 9) Typing set over the WebSocket is reported too; moving to another chat stops the first.
    wb.send_json(&json!({"type": "typing_start", "chat_id": k}))
        .await;
    typing_frame(&mut wa, "typing_start", &b, k).await;
    assert_eq!(own_typing(obs, &b).await, json!(k));
    assert_status_ok(&typing(req, &b, json!(other)).await);
    typing_frame(&mut wa, "typing_stop", &b, k).await;
    typing_frame(&mut wa, "typing_start", &b, other).await;
    assert_eq!(contact_typing(obs, &a, &b).await, json!(other));
    assert_eq!(
        contact_typing(obs, &d, &b).await,
        Value::Null,
        "D is no member of that chat either"
    );
    wb.send_json(&json!({"type": "typing_stop", "chat_id": other}))
        .await;
    typing_frame(&mut wa, "typing_stop", &b, other).await;
    assert_eq!(own_typing(obs, &b).await, Value::Null);

    // A message in the chat ends the sender's typing there.
    assert_status_ok(&typing(req, &b, json!(k)).await);
    typing_frame(&mut wa, "typing_start", &b, k).await;
    assert_eq!(own_typing(obs, &b).await, json!(k));
    let m4 = send_in(req, &b, k, "Rm91cnRo").await;
    typing_frame(&mut wa, "typing_stop", &b, k).await;
    wa.recv_where(
        "B's message",
        |f| is(f, "relay_delivery") && f["message_id"] == m4.as_str(),
        WAIT,
    )
    .await;
    assert_eq!(own_typing(obs, &b).await, Value::Null);

    // 10) Refusals: a channel, a chat of others, unknown chats, bad bodies.
    typing(req, &b, json!(n))
        .await
        .assert_error(403, "forbidden");
    typing(req, &d, json!(k))
        .await
        .assert_error(403, "not_a_member");
    typing(req, &b, json!(999_999_999))
        .await
        .assert_error(403, "not_a_member");
    for bad in [
        json!({}),
        json!({"chat_id": true}),
        json!({"chat_id": "x"}),
        json!({"chat_id": 1.5}),
        json!({"chat_id": -1}),
        json!({"chat_id": 0}),
        json!({"chat_id": [k]}),
        json!({"chat_id": {"id": k}}),
    ] {
        let r = post(req, &b, "/status/typing", bad.clone()).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.body);
        assert_eq!(r.reason(), "validation_failed", "{bad}: {}", r.body);
    }
    assert_eq!(
        own_typing(obs, &b).await,
        Value::Null,
        "refusals set nothing"
    );

    for ws in [wa, wb, wb2, wc, wd] {
        ws.close().await;
    }
}
