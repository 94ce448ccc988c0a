//! Privacy choices and what members learn (issue 15): invisible mode survives a restart, a
//! channel's subscribers do not learn one another (PROTOCOL §4.7 as amended), and join/leave
//! loops are bounded.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::realtime::{make_contacts, online, Target};
use common::ws::{is, WAIT};
use common::{new_user, test_config, TestServer};
use melo::{MemoryStore, Store};
use serde_json::json;

/// A user in invisible mode stays invisible after the server restarts on the same store with
/// fresh ephemeral state (the memory ephemeral, or a restarted Redis).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invisible_mode_survives_a_restart() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let s = TestServer::start_with(test_config(), store.clone()).await;
    let t = Target::of(&s);
    let a = new_user(&t.client, "Alice").await;
    let b = new_user(&t.client, "Bob").await;
    make_contacts(&t, &a, &b).await;
    let r = t
        .client
        .post("/status/offline", Some(&b.token), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.stop().await;

    let s = TestServer::start_with(test_config(), store.clone()).await;
    let t = Target::of(&s);
    let mut wa = online(&t, &a).await;
    let wb = online(&t, &b).await;
    let pong = wa.ping().await;
    assert_eq!(
        pong["contacts_status"][b.uid.as_str()]["status"],
        "offline",
        "B is connected but chose to be invisible: {pong}"
    );
    let r = t
        .client
        .get(&format!("/statuses?user_ids={}", b.uid), Some(&a.token))
        .await;
    assert_ne!(r.body[b.uid.as_str()]["status"], "online", "{}", r.body);
    // Leaving invisible mode shows B again.
    let r = t
        .client
        .post("/status/online", Some(&b.token), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let pong = wa.ping().await;
    assert_eq!(
        pong["contacts_status"][b.uid.as_str()]["status"],
        "online",
        "{pong}"
    );
    wb.close().await;
    wa.close().await;
    s.stop().await;
}

/// In a channel, `chat_member` reaches the owner, the admins and the affected user only; in a
/// group, every member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_subscribers_do_not_learn_each_other() {
    let s = TestServer::start().await;
    let t = Target::of(&s);
    let c = &t.client;
    let owner = new_user(c, "Owner").await;
    let admin = new_user(c, "Admin").await;
    let sub1 = new_user(c, "Sub1").await;
    let sub2 = new_user(c, "Sub2").await;
    make_contacts(&t, &owner, &admin).await;
    let r = c
        .post(
            "/chats/create",
            Some(&owner.token),
            &json!({"name": "News", "type": "channel"}),
        )
        .await;
    let channel = r.body["chat_id"].as_i64().expect("chat id");
    let add = json!({"chat_id": channel, "user_unique_id": admin.uid});
    assert_eq!(
        c.post("/chats/members/add", Some(&owner.token), &add)
            .await
            .status,
        200
    );
    let role = json!({"chat_id": channel, "user_unique_id": admin.uid, "role": "admin"});
    assert_eq!(
        c.post("/chats/members/role", Some(&owner.token), &role)
            .await
            .status,
        200
    );
    let r = c
        .post(
            "/invites/create",
            Some(&owner.token),
            &json!({"chat_id": channel, "ttl_minutes": 5}),
        )
        .await;
    let code = r.body["code"].as_str().expect("code").to_owned();
    let join = json!({"code": code});
    assert_eq!(
        c.post("/invites/join", Some(&sub1.token), &join)
            .await
            .status,
        200
    );
    let mut w_owner = online(&t, &owner).await;
    let mut w_admin = online(&t, &admin).await;
    let mut w_sub1 = online(&t, &sub1).await;

    let r = c.post("/invites/join", Some(&sub2.token), &join).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let joined = |f: &serde_json::Value| {
        is(f, "chat_member") && f["user_id"].to_string().contains(sub2.uid.as_str())
    };
    w_owner
        .recv_where("sub2 joined (owner)", joined, WAIT)
        .await;
    w_admin
        .recv_where("sub2 joined (admin)", joined, WAIT)
        .await;
    w_sub1
        .expect_no("another subscriber's join", joined, Duration::from_secs(1))
        .await;
    // Leaving: the same audience.
    let leave = json!({"chat_id": channel});
    assert_eq!(
        c.post("/chats/leave", Some(&sub2.token), &leave)
            .await
            .status,
        200
    );
    w_owner.recv_where("sub2 left (owner)", joined, WAIT).await;
    w_sub1
        .expect_no("another subscriber's leave", joined, Duration::from_secs(1))
        .await;
    for ws in [w_owner, w_admin, w_sub1] {
        ws.ack_and_close().await;
    }
    s.stop().await;
}

/// One user joining and leaving one chat in a loop is refused with 429 after 10 changes an
/// hour, so the loop cannot flood members' queues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_leave_loops_are_bounded() {
    let s = TestServer::start().await;
    let c = &s.client;
    let owner = new_user(c, "Owner").await;
    let looper = new_user(c, "Looper").await;
    let r = c
        .post(
            "/chats/create",
            Some(&owner.token),
            &json!({"name": "Lobby", "type": "chat"}),
        )
        .await;
    let chat = r.body["chat_id"].as_i64().expect("chat id");
    let r = c
        .post(
            "/invites/create",
            Some(&owner.token),
            &json!({"chat_id": chat, "ttl_minutes": 5}),
        )
        .await;
    let join = json!({"code": r.body["code"].as_str().expect("code")});
    let leave = json!({"chat_id": chat});
    for i in 0..5 {
        let r = c.post("/invites/join", Some(&looper.token), &join).await;
        assert_eq!(r.status, 200, "join {i}: {}", r.body);
        let r = c.post("/chats/leave", Some(&looper.token), &leave).await;
        assert_eq!(r.status, 200, "leave {i}: {}", r.body);
    }
    let r = c.post("/invites/join", Some(&looper.token), &join).await;
    r.assert_error(429, "rate_limited");
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
    s.stop().await;
}
