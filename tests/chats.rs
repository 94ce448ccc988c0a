//! Group chats, channels, invites and message management in-process: PROTOCOL §7 S12 and S13.

mod common;

use common::realtime::Target;
use common::{chats, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s12_chats_and_channels() {
    let s = TestServer::start().await;
    chats::s12(&Target::of(&s)).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s13_message_management() {
    let s = TestServer::start().await;
    chats::s13(&Target::of(&s)).await;
    s.stop().await;
}

/// A group of four: every member device gets each message once; an offline member gets it from
/// its backlog on reconnect; a removed member stops receiving and cannot read history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_delivery_offline_members_and_removal() {
    use common::realtime::{make_contacts, online, second_device};
    use common::ws::{is, WsClient, WAIT};
    use serde_json::json;
    let s = TestServer::start().await;
    let t = Target::of(&s);
    let owner = common::new_user(&t.client, "go").await;
    let mut members = Vec::new();
    for i in 0..3 {
        let m = common::new_user(&t.client, &format!("gm{i}")).await;
        make_contacts(&t, &owner, &m).await;
        members.push(m);
    }
    let r = t
        .client
        .post(
            "/chats/create",
            Some(&owner.token),
            &json!({"name": "Group"}),
        )
        .await;
    let k = r.body["chat_id"].as_i64().expect("chat id");
    for m in &members {
        let r = t
            .client
            .post(
                "/chats/members/add",
                Some(&owner.token),
                &json!({"chat_id": k, "user_unique_id": m.uid}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // Member 0 on two devices, member 1 online, member 2 offline.
    let m0b = second_device(&t, &members[0]).await;
    let mut sockets = vec![
        online(&t, &members[0]).await,
        online(&t, &m0b).await,
        online(&t, &members[1]).await,
    ];
    let r = t
        .client
        .post(
            "/messages/send",
            Some(&owner.token),
            &json!({"chat_id": k, "data": "R1JPVVA="}),
        )
        .await;
    assert_eq!(r.body["recipients"], 3, "{}", r.body);
    let id = r.body["message_id"].as_str().expect("id").to_owned();
    for ws in &mut sockets {
        let f = ws
            .recv_where(
                "the group message",
                |f| is(f, "relay_delivery") && f["message_id"] == id.as_str(),
                WAIT,
            )
            .await;
        assert_eq!(f["chat_id"], k);
        ws.expect_no(
            "a second copy",
            |f| is(f, "relay_delivery") && f["message_id"] == id.as_str(),
            t.quiet,
        )
        .await;
    }
    let mut late = WsClient::open(t.http, &members[2].token).await;
    let sync = late.sync().await;
    let copies = sync
        .backlog
        .iter()
        .filter(|f| is(f, "relay_delivery") && f["message_id"] == id.as_str())
        .count();
    assert_eq!(
        copies, 1,
        "the offline member gets it once from its backlog"
    );
    // Removal: member 1 stops receiving and loses history access.
    let r = t
        .client
        .post(
            "/chats/members/remove",
            Some(&owner.token),
            &json!({"chat_id": k, "user_unique_id": members[1].uid}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = t
        .client
        .post(
            "/messages/send",
            Some(&owner.token),
            &json!({"chat_id": k, "data": "QUZURVI="}),
        )
        .await;
    assert_eq!(r.body["recipients"], 2, "{}", r.body);
    let after = r.body["message_id"].as_str().expect("id").to_owned();
    sockets[2]
        .expect_no(
            "a message after removal",
            |f| is(f, "relay_delivery") && f["message_id"] == after.as_str(),
            t.quiet,
        )
        .await;
    t.client
        .get(
            &format!("/messages/history/chat/{k}"),
            Some(&members[1].token),
        )
        .await
        .assert_error(403, "not_a_member");
    s.stop().await;
}

/// Temporary invites stop admitting at `expires_at`, and the sweep's purge removes them. The
/// API's shortest TTL is a minute, so the expired invite is written through the store with the
/// server's own keys (same blind index and sealing as `/invites/create`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_expire() {
    use melo::crypto::Pii;
    use melo::model::InviteRecord;
    use melo::model::{Timestamp, UserId};
    use serde_json::json;
    let s = TestServer::start().await;
    let c = &s.client;
    let a = common::new_user(c, "ia").await;
    let b = common::new_user(c, "ib").await;
    let late = common::new_user(c, "ic").await;
    let r = c
        .post("/chats/create", Some(&a.token), &json!({"name": "Club"}))
        .await;
    let k = r.body["chat_id"].as_i64().expect("chat id");
    // A live invite from the API admits B.
    let r = c
        .post(
            "/invites/create",
            Some(&a.token),
            &json!({"chat_id": k, "ttl_minutes": 1}),
        )
        .await;
    assert_eq!(r.body["expires_in"], 60, "{}", r.body);
    let live = r.body["code"].as_str().expect("code").to_owned();
    let r = c
        .post("/invites/join", Some(&b.token), &json!({"code": live}))
        .await;
    assert_eq!(r.body, json!({"ok": true, "chat_id": k}));

    let pii = Pii::new(common::keys());
    let owner: UserId = a.uid.parse().expect("uid");
    let invite = |code: &str, expires_at: Timestamp| InviteRecord {
        chat_id: k,
        code: pii.seal_str("invites", "code", "", code).expect("seal"),
        created_by: owner,
        expires_at,
    };
    let now = Timestamp::now().millis();
    let expired = "Expired_Code-1";
    let fresh = "Fresh_Code-001";
    for (code, at) in [(expired, now - 1), (fresh, now + 600_000)] {
        s.store
            .create_invite(
                &pii.blind_index("invite", code.as_bytes()),
                &invite(code, Timestamp::from_millis(at)),
            )
            .await
            .expect("invite");
    }
    // The expired code admits nobody and says only `invite_invalid`.
    c.post(
        "/invites/join",
        Some(&late.token),
        &json!({"code": expired}),
    )
    .await
    .assert_error(404, "invite_invalid");
    c.get(&format!("/messages/history/chat/{k}"), Some(&late.token))
        .await
        .assert_error(403, "not_a_member");
    // The purge drops exactly the expired one; the fresh one (same path) still admits.
    assert_eq!(
        s.store
            .purge_invites(Timestamp::now())
            .await
            .expect("purge"),
        1
    );
    assert!(s
        .store
        .invite(&pii.blind_index("invite", expired.as_bytes()))
        .await
        .expect("read")
        .is_none());
    let r = c
        .post("/invites/join", Some(&late.token), &json!({"code": fresh}))
        .await;
    assert_eq!(r.body, json!({"ok": true, "chat_id": k}));
    s.stop().await;
}

/// §5.4 `ack_read` of a chat message by a member (not its author): in a group chat the author
/// gets one `read` per member, after that member's `delivered`; in a channel nothing. The
/// author's own `ack_read` stays `unknown_message`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_ack_read_by_members() {
    use common::realtime::{make_contacts, online};
    use common::ws::{is, WAIT};
    use serde_json::json;
    let s = TestServer::start().await;
    let t = Target::of(&s);
    let c = &t.client;
    let owner = common::new_user(c, "ro").await;
    let member = common::new_user(c, "rm").await;
    make_contacts(&t, &owner, &member).await;
    let mut ids = Vec::new();
    for kind in ["chat", "channel"] {
        let r = c
            .post(
                "/chats/create",
                Some(&owner.token),
                &json!({"name": "Reads", "type": kind}),
            )
            .await;
        let k = r.body["chat_id"].as_i64().expect("chat id");
        let add = json!({"chat_id": k, "user_unique_id": member.uid});
        let r = c.post("/chats/members/add", Some(&owner.token), &add).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let send = json!({"chat_id": k, "data": "UkVBRA=="});
        let r = c.post("/messages/send", Some(&owner.token), &send).await;
        ids.push((k, r.body["message_id"].as_str().expect("id").to_owned()));
    }
    let mut wo = online(&t, &owner).await;
    let mut wm = online(&t, &member).await;
    for (_, id) in &ids {
        wm.send_json(&json!({"type": "ack_read", "message_id": id, "client_id": "r"}))
            .await;
    }
    wm.send_json(&json!({"type": "ack_read", "message_id": ids[0].1, "client_id": "again"}))
        .await;
    wm.ping().await;
    wm.expect_no_frame("error", t.quiet).await;
    let (group, id) = &ids[0];
    for status in ["delivered", "read"] {
        let f = wo
            .recv_where(
                &format!("{status} from the member"),
                |f| is(f, "msg_status") && f["status"] == status,
                WAIT,
            )
            .await;
        assert_eq!(f["message_id"], id.as_str(), "{f}");
        assert_eq!(f["from"], member.uid.as_str(), "{f}");
        assert_eq!(f["chat_id"], *group, "{f}");
        assert!(f["seq"].is_i64(), "durable: {f}");
    }
    wo.ack_all().await;
    wo.expect_no_frame("msg_status", t.quiet).await;
    wo.send_json(&json!({"type": "ack_read", "message_id": id, "client_id": "own"}))
        .await;
    let e = wo.recv_type("error", WAIT).await;
    assert_eq!(
        (e["reason"].as_str(), e["ref"].as_str()),
        (Some("unknown_message"), Some("own"))
    );
    s.stop().await;
}
