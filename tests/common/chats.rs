//! The wire contract's S12 (chats and channels) and S13 (message management) against a [`Target`],
//! run in-process (tests/chats.rs) and against the example binary.

use serde_json::{json, Value};

use super::realtime::{hex32, make_contacts, online, relay, second_device, Target};
use super::ws::{is, WsClient, WAIT};
use super::{new_user, Resp, User};

async fn post(t: &Target, u: &User, path: &str, body: Value) -> Resp {
    t.client.post(path, Some(&u.token), &body).await
}

fn assert_ok(r: &Resp) {
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn chat_member(ws: &mut WsClient, chat: i64, user: &str, action: &str) -> Value {
    let f = ws
        .recv_where(
            &format!("chat_member {action} {user}"),
            |f| is(f, "chat_member") && f["user_id"] == user && f["action"] == action,
            WAIT,
        )
        .await;
    assert_eq!(f["chat_id"], chat, "{f}");
    assert!(f["seq"].is_i64(), "chat_member is durable: {f}");
    f
}

/// Sends a chat `relay` and returns the `queued` reply.
async fn chat_relay(ws: &mut WsClient, chat: i64, payload: &str, cid: &str) -> Value {
    ws.send_json(&json!({"type": "relay", "chat_id": chat, "payload": payload, "client_id": cid}))
        .await;
    ws.recv_where(
        &format!("the reply to {cid}"),
        |f| (is(f, "msg_status") && f["client_id"] == cid) || (is(f, "error") && f["ref"] == cid),
        WAIT,
    )
    .await
}

async fn delivery_in(ws: &mut WsClient, chat: i64, id: &str) -> Value {
    let f = ws
        .recv_where(
            &format!("relay_delivery {id}"),
            |f| is(f, "relay_delivery") && f["message_id"] == id,
            WAIT,
        )
        .await;
    assert_eq!(f["chat_id"], chat, "{f}");
    assert!(f.get("to").is_none(), "no `to` in a chat delivery: {f}");
    if let Some(seq) = f["seq"].as_i64() {
        ws.send_json(&json!({"type": "ack_received", "seq": seq}))
            .await;
    }
    f
}

/// S12 Chats and channels.
pub async fn s12(t: &Target) {
    let a = new_user(&t.client, "s12a").await;
    let b = new_user(&t.client, "s12b").await;
    let c = new_user(&t.client, "s12c").await;
    make_contacts(t, &a, &b).await;
    make_contacts(t, &b, &c).await;
    let mut wa = online(t, &a).await;
    let mut wb = online(t, &b).await;
    let mut wc = online(t, &c).await;

    // 1) Create; bad name and type → 422.
    let r = post(t, &a, "/chats/create", json!({"name": "Team"})).await;
    assert_ok(&r);
    assert_eq!(r.body["type"], "chat");
    let k = r.body["chat_id"].as_i64().expect("chat_id");
    for bad in [
        json!({"name": "T"}),
        json!({"name": "Team", "type": "room"}),
    ] {
        let r = post(t, &a, "/chats/create", bad).await;
        assert_eq!(r.status, 422, "{}", r.body);
    }
    // 2) Add B → chat_member added; again → 200 and no frame; C is not A's contact → 403.
    let add = |u: &User| json!({"chat_id": k, "user_unique_id": u.uid});
    assert_ok(&post(t, &a, "/chats/members/add", add(&b)).await);
    chat_member(&mut wb, k, &b.uid, "added").await;
    assert_ok(&post(t, &a, "/chats/members/add", add(&b)).await);
    post(t, &a, "/chats/members/add", add(&c))
        .await
        .assert_error(403, "not_a_contact");
    // 3) B becomes admin and adds C; B cannot change A's role.
    let role = |u: &User, r: &str| json!({"chat_id": k, "user_unique_id": u.uid, "role": r});
    assert_ok(&post(t, &a, "/chats/members/role", role(&b, "admin")).await);
    assert_ok(&post(t, &b, "/chats/members/add", add(&c)).await);
    chat_member(&mut wc, k, &c.uid, "added").await;
    post(t, &b, "/chats/members/role", role(&a, "member"))
        .await
        .assert_error(403, "forbidden");
    post(t, &a, "/chats/members/role", role(&b, "owner"))
        .await
        .assert_error(422, "validation_failed");
    // The admin cannot remove the owner either.
    post(t, &b, "/chats/members/remove", add(&a))
        .await
        .assert_error(403, "forbidden");
    // 4) C's view.
    let r = t.client.get("/chats/list", Some(&c.token)).await;
    assert_ok(&r);
    let chat = r.body["chats"]
        .as_array()
        .expect("chats")
        .iter()
        .find(|x| x["id"] == k)
        .cloned()
        .expect("K listed");
    assert_eq!(chat["owner_id"], a.uid.as_str());
    assert_eq!(chat["role"], "member");
    assert_eq!(chat["name"], "Team");
    let r = t
        .client
        .get(&format!("/chats/members?chat_id={k}"), Some(&c.token))
        .await;
    assert_ok(&r);
    assert_eq!(r.body["members"].as_array().expect("members").len(), 3);
    // 5) A relays to K: B and C get it once; their acks give A one `delivered` each.
    let q = chat_relay(&mut wa, k, "R0VOLTE=", "k1").await;
    assert_eq!(q["status"], "queued", "{q}");
    assert!(q["to"].is_null());
    assert_eq!(q["chat_id"], k);
    let m1 = hex32(&q["message_id"]);
    for ws in [&mut wb, &mut wc] {
        delivery_in(ws, k, &m1).await;
    }
    let mut from = Vec::new();
    for _ in 0..2 {
        let f = wa
            .recv_where(
                "delivered",
                |f| {
                    is(f, "msg_status")
                        && f["status"] == "delivered"
                        && f["message_id"] == m1.as_str()
                },
                WAIT,
            )
            .await;
        from.push(f["from"].as_str().expect("from").to_owned());
    }
    from.sort();
    let mut want = vec![b.uid.clone(), c.uid.clone()];
    want.sort();
    assert_eq!(from, want);
    // 6) Slow mode.
    let slow = |s: u64| json!({"chat_id": k, "seconds": s});
    post(t, &c, "/chats/set_slow_mode", slow(30))
        .await
        .assert_error(403, "forbidden");
    post(t, &a, "/chats/set_slow_mode", slow(90_000))
        .await
        .assert_error(422, "validation_failed");
    let r = post(t, &a, "/chats/set_slow_mode", slow(30)).await;
    assert_eq!(r.body, json!({"ok": true, "slow_mode": 30}));
    assert_eq!(
        chat_relay(&mut wc, k, "QzE=", "c1").await["status"],
        "queued"
    );
    let limited = chat_relay(&mut wc, k, "QzI=", "c2").await;
    assert_eq!(limited["status"], "rate_limited", "{limited}");
    let retry = limited["retry_after"].as_u64().expect("retry_after");
    assert!((1..=30).contains(&retry), "{limited}");
    let r = post(
        t,
        &c,
        "/messages/send",
        json!({"chat_id": k, "data": "QzM="}),
    )
    .await;
    r.assert_error(429, "slow_mode");
    for cid in ["a1", "a2"] {
        assert_eq!(
            chat_relay(&mut wa, k, "QTE=", cid).await["status"],
            "queued"
        );
    }
    // 7) A public channel.
    let r = post(
        t,
        &a,
        "/chats/create",
        json!({"name": "News", "type": "channel"}),
    )
    .await;
    assert_ok(&r);
    let n = r.body["chat_id"].as_i64().expect("chat_id");
    let public = |p: bool| json!({"chat_id": n, "is_public": p});
    let r = post(t, &a, "/chats/set_public", public(true)).await;
    let code = r.body["invite"].as_str().expect("invite").to_owned();
    assert_eq!(code.len(), 14);
    let r = t
        .client
        .get(&format!("/chats/by_invite/{code}"), None)
        .await;
    assert_eq!(
        r.body,
        json!({"chat_id": n, "name": "News", "type": "channel"})
    );
    let r = post(t, &a, "/chats/set_public", public(false)).await;
    assert_eq!(r.body, json!({"ok": true, "invite": null}));
    t.client
        .get(&format!("/chats/by_invite/{code}"), None)
        .await
        .assert_error(404, "invite_invalid");
    let r = post(t, &a, "/chats/set_public", public(true)).await;
    assert_eq!(
        r.body["invite"],
        code.as_str(),
        "the permanent code is kept"
    );
    // 8) B joins by the code; members cannot post in a channel; A's post reaches B.
    let r = post(t, &b, "/invites/join", json!({"code": code})).await;
    assert_eq!(r.body, json!({"ok": true, "chat_id": n}));
    let e = chat_relay(&mut wb, n, "Qg==", "b1").await;
    assert_eq!(
        (e["type"].as_str(), e["reason"].as_str()),
        (Some("error"), Some("forbidden"))
    );
    let q = chat_relay(&mut wa, n, "TmV3cw==", "n1").await;
    let news = hex32(&q["message_id"]);
    delivery_in(&mut wb, n, &news).await;
    wa.expect_no(
        "a receipt in a channel",
        |f| is(f, "msg_status") && f["message_id"] == news.as_str() && f["status"] == "delivered",
        t.quiet,
    )
    .await;
    // 9) Temporary invites.
    let r = post(
        t,
        &a,
        "/invites/create",
        json!({"chat_id": k, "ttl_minutes": 5}),
    )
    .await;
    assert_ok(&r);
    assert_eq!(r.body["expires_in"], 300);
    assert_eq!(r.body["code"].as_str().map(str::len), Some(14));
    post(
        t,
        &c,
        "/invites/create",
        json!({"chat_id": k, "ttl_minutes": 5}),
    )
    .await
    .assert_error(403, "forbidden");
    post(t, &c, "/invites/join", json!({"code": "AAAAAAAAAAAAAA"}))
        .await
        .assert_error(404, "invite_invalid");
    // 10) Leaving.
    assert_ok(&post(t, &c, "/chats/leave", json!({"chat_id": k})).await);
    chat_member(&mut wa, k, &c.uid, "left").await;
    chat_member(&mut wb, k, &c.uid, "left").await;
    t.client
        .get(&format!("/messages/history/chat/{k}"), Some(&c.token))
        .await
        .assert_error(403, "not_a_member");
    post(t, &a, "/chats/leave", json!({"chat_id": k}))
        .await
        .assert_error(409, "owner_cannot_leave");
    // C no longer receives K's messages.
    let q = chat_relay(&mut wa, k, "QWZ0ZXI=", "a3").await;
    let after = hex32(&q["message_id"]);
    delivery_in(&mut wb, k, &after).await;
    wc.expect_no(
        "a message of a chat C left",
        |f| is(f, "relay_delivery") && f["message_id"] == after.as_str(),
        t.quiet,
    )
    .await;
    for ws in [wa, wb, wc] {
        ws.close().await;
    }
}

async fn event(ws: &mut WsClient, ty: &str, id: &str) -> Value {
    ws.recv_where(
        &format!("{ty} of {id}"),
        |f| is(f, ty) && f["message_id"] == id,
        WAIT,
    )
    .await
}

/// S13 Message management.
pub async fn s13(t: &Target) {
    let a = new_user(&t.client, "s13a").await;
    let b = new_user(&t.client, "s13b").await;
    let c = new_user(&t.client, "s13c").await;
    make_contacts(t, &a, &b).await;
    let a2 = second_device(t, &a).await;
    let mut wa = online(t, &a).await;
    let mut wa2 = online(t, &a2).await;
    let mut wb = online(t, &b).await;
    let m3 = relay(&mut wa, &a, &b, "SDM=", "h3").await;
    let m4 = relay(&mut wa, &a, &b, "SDQ=", "h4").await;
    let m5 = relay(&mut wa, &a, &b, "SDU=", "h5").await;
    let body = |id: &str, extra: Value| {
        let mut v = json!({"message_id": id});
        v.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        v
    };
    // 1) A edits M5: B gets `edit`, A2 with `self`.
    let r = post(
        t,
        &a,
        "/messages/edit",
        body(&m5, json!({"new_data": "TkVX"})),
    )
    .await;
    assert_eq!(r.body, json!({"ok": true}));
    let e = event(&mut wb, "edit", &m5).await;
    assert_eq!(
        (e["payload"].as_str(), e["from"].as_str()),
        (Some("TkVX"), Some(a.uid.as_str()))
    );
    let e = event(&mut wa2, "edit", &m5).await;
    assert_eq!(e["self"], true);
    let h = t
        .client
        .get(&format!("/messages/history/dm/{}", b.uid), Some(&a.token))
        .await;
    let items = h.body["items"].as_array().expect("items");
    let i5 = items
        .iter()
        .position(|i| i["message_id"] == m5.as_str())
        .expect("M5");
    assert_eq!(h.body["messages"][i5], "TkVX");
    assert!(items[i5]["edited_at"].is_string(), "{}", items[i5]);
    // 2) B cannot edit A's message; C (not in the conversation) gets 404.
    post(
        t,
        &b,
        "/messages/edit",
        body(&m5, json!({"new_data": "eA=="})),
    )
    .await
    .assert_error(403, "forbidden");
    post(
        t,
        &c,
        "/messages/edit",
        body(&m5, json!({"new_data": "eA=="})),
    )
    .await
    .assert_error(404, "message_not_found");
    // 3) Reactions.
    assert_ok(
        &post(
            t,
            &b,
            "/messages/react",
            body(&m5, json!({"reaction": "👍"})),
        )
        .await,
    );
    let e = event(&mut wa, "react", &m5).await;
    assert_eq!(e["reaction"], "👍");
    let h = t
        .client
        .get(&format!("/messages/history/dm/{}", b.uid), Some(&a.token))
        .await;
    let item = h.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["message_id"] == m5.as_str())
        .cloned()
        .expect("M5");
    assert_eq!(item["reactions"], json!({"👍": [b.uid]}));
    assert_ok(&post(t, &b, "/messages/react", body(&m5, json!({"reaction": ""}))).await);
    // 4) Pins.
    assert_ok(&post(t, &b, "/messages/pin", body(&m4, json!({}))).await);
    assert_eq!(event(&mut wa, "pin", &m4).await["pinned"], true);
    assert_ok(&post(t, &b, "/messages/pin", body(&m4, json!({"pinned": false}))).await);
    // 5) Delete: not by B (not the author), nor by C (outside the conversation); then by A.
    post(t, &b, "/messages/delete", body(&m3, json!({})))
        .await
        .assert_error(403, "forbidden");
    post(t, &c, "/messages/delete", body(&m3, json!({})))
        .await
        .assert_error(404, "message_not_found");
    assert_ok(&post(t, &a, "/messages/delete", body(&m3, json!({}))).await);
    event(&mut wb, "delete", &m3).await;
    let h = t
        .client
        .get(&format!("/messages/history/dm/{}", a.uid), Some(&b.token))
        .await;
    let items = h.body["items"].as_array().expect("items");
    let i3 = items
        .iter()
        .position(|i| i["message_id"] == m3.as_str())
        .expect("M3 keeps its place");
    assert_eq!(h.body["messages"][i3], "");
    assert_eq!(items[i3]["deleted"], true);
    // 6) B offline; A edits M4; B's backlog has the edit.
    wb.ack_and_close().await;
    assert_ok(
        &post(
            t,
            &a,
            "/messages/edit",
            body(&m4, json!({"new_data": "TTQy"})),
        )
        .await,
    );
    let mut wb = WsClient::open(t.http, &b.token).await;
    let sync = wb.sync().await;
    let edit = sync
        .backlog
        .iter()
        .find(|f| is(f, "edit") && f["message_id"] == m4.as_str())
        .cloned()
        .expect("the edit of M4 in B's backlog");
    assert_eq!(edit["payload"], "TTQy");
    for ws in [wa, wa2, wb] {
        ws.close().await;
    }
}
