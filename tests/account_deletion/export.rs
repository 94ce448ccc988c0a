//! `GET /account/export` over a real socket: the caller's values, opened; bounded; rate-limited.

use serde_json::json;

use super::{add, new_chat, post_ok};
use crate::common::realtime::{http_send, make_contacts, Target};
use crate::common::{self, new_user, TestServer};

/// The export holds the caller's own values, opened; it is bounded and rate-limited.
#[tokio::test]
async fn export_holds_the_callers_values() {
    let s = TestServer::start().await;
    let t = Target::of(&s);
    let c = &s.client;
    let a = new_user(c, "Alice").await;
    let b = new_user(c, "Bob").await;
    let cc = new_user(c, "Carol").await;
    make_contacts(&t, &a, &b).await;
    post_ok(
        c,
        &a,
        "/subscribe",
        json!({"target_id": cc.uid, "csrf_token": a.csrf}),
    )
    .await;
    let r = c
        .put(
            "/profile",
            Some(&a.token),
            &json!({"username": "alice_x9", "bio": "Tide tables"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    post_ok(
        c,
        &a,
        "/e2e/secret_key",
        json!({"ciphertext": "BACKUP-CIPHERTEXT-0123456789"}),
    )
    .await;
    let png = common::avatars::png(b"export-avatar");
    let r = common::avatars::upload(c, &a, &png).await;
    assert_eq!(r.status, 200, "{}", r.body);
    post_ok(
        c,
        &a,
        "/register_push",
        json!({"platform": "android", "push_token": "fcm-token-export-1"}),
    )
    .await;
    post_ok(c, &a, "/status/offline", json!({})).await;
    let chat = new_chat(c, &a, "Export group").await;
    add(c, &a, chat, &b).await;
    let m1 = http_send(&t, &a, &b, "dm-one").await;
    let m2 = http_send(&t, &b, &a, "dm-two").await;
    let in_chat = post_ok(
        c,
        &b,
        "/messages/send",
        json!({"chat_id": chat, "data": "Z3JvdXA="}),
    )
    .await["message_id"]
        .as_str()
        .expect("message id")
        .to_owned();
    post_ok(
        c,
        &a,
        "/status/read",
        json!({"chat_id": chat, "message_id": in_chat}),
    )
    .await;

    let r = c.get("/account/export", Some(&a.token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let x = &r.body;
    let p = &x["profile"];
    assert_eq!(p["unique_id"], a.uid.as_str());
    assert_eq!(p["phone"], a.phone.as_str());
    assert_eq!(
        (&p["name"], &p["nickname"]),
        (&json!("Alice"), &json!("alice"))
    );
    assert_eq!(
        (&p["username"], &p["bio"]),
        (&json!("alice_x9"), &json!("Tide tables"))
    );
    assert_eq!(
        p["public_e2e_key"].as_str().map(str::trim),
        Some(common::user_pem().trim())
    );
    assert_eq!(x["avatar"]["mime"], "image/png");
    assert_eq!(x["avatar"]["url"], format!("/avatar/{}", a.uid));
    assert_eq!(x["settings"], json!({"invisible": true}));
    assert_eq!(
        x["secret_key_backup"]["ciphertext"],
        "BACKUP-CIPHERTEXT-0123456789"
    );
    let sessions = &x["sessions"];
    assert_eq!(
        (&sessions["total"], &sessions["truncated"]),
        (&json!(1), &json!(false))
    );
    let me = &sessions["items"][0];
    assert_eq!(me["session_id"], a.session_id);
    assert_eq!(me["device_id"], a.device.as_str());
    assert_eq!(me["ip_address"], "127.0.0.1");
    assert_eq!(me["active"], true);
    assert!(me["device_token_expires"].is_string(), "{me}");
    assert_eq!(
        x["push_registrations"],
        json!([{"session_id": a.session_id,
                "subscription": {"platform": "android", "token": "fcm-token-export-1"}}])
    );
    assert_eq!(x["contacts"]["total"], 2);
    let contacts = x["contacts"]["items"].as_array().expect("contacts");
    assert_eq!(contacts[0]["unique_id"], b.uid.as_str());
    assert_eq!(
        (&contacts[0]["state"], &contacts[0]["direction"]),
        (&json!("accepted"), &json!("outgoing"))
    );
    assert_eq!(contacts[1]["unique_id"], cc.uid.as_str());
    assert_eq!(
        (&contacts[1]["state"], &contacts[1]["direction"]),
        (&json!("pending"), &json!("outgoing"))
    );
    let chats = &x["chats"]["items"];
    assert_eq!(
        (&chats[0]["chat_id"], &chats[0]["name"], &chats[0]["role"]),
        (&json!(chat), &json!("Export group"), &json!("owner"))
    );
    assert_eq!(
        chats[0]["last_read_message_id"], in_chat,
        "Alice's read marker"
    );
    let queued = s
        .store
        .queued_entries(&[melo::model::SessionId(a.session_id)])
        .await
        .expect("store");
    assert!(queued >= 1, "Bob's DM waits for Alice's device");
    assert_eq!(x["queued_entries"], queued, "{x}");
    let dm = x["conversations"]["items"]
        .as_array()
        .expect("conversations")
        .iter()
        .find(|v| v["peer_id"] == b.uid.as_str())
        .cloned()
        .expect("the DM with Bob");
    assert_eq!(dm["message_count"], 2);
    let ids: Vec<&str> = dm["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["message_id"].as_str())
        .collect();
    assert_eq!(ids, [m2.as_str(), m1.as_str()], "newest first");
    assert_eq!(dm["messages"][1]["payload_bytes"], 6);
    assert!(
        dm["messages"][1].get("payload").is_none(),
        "payloads are not exported"
    );
    assert!(
        !r.raw.windows(6).any(|w| w == b"dm-one"),
        "no payload in the export"
    );
    // Another user's export holds nothing of Alice's private values.
    let theirs = c.get("/account/export", Some(&b.token)).await;
    assert_eq!(theirs.status, 200);
    assert_eq!(
        theirs.body["chats"]["items"][0]["last_read_message_id"],
        serde_json::Value::Null,
        "Bob's export has Bob's marker (none), not Alice's"
    );
    let text = theirs.body.to_string();
    assert!(
        !text.contains(&a.phone) && !text.contains("Tide tables"),
        "{text}"
    );
    // Five exports per hour.
    for _ in 0..4 {
        assert_eq!(c.get("/account/export", Some(&a.token)).await.status, 200);
    }
    c.get("/account/export", Some(&a.token))
        .await
        .assert_error(429, "rate_limited");
    s.stop().await;
}
