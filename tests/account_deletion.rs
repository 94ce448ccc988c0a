//! Account deletion and export (issue 17; docs/accounts.md) over real sockets: `DELETE /account`
//! needs the token, the CSRF token and the password, and then erases the account for good while
//! the others keep what was theirs; `GET /account/export` holds the caller's values, opened.
//! The export is in `account_deletion/export.rs`, the zero-knowledge check after a deletion in
//! `account_deletion/zk.rs`.

mod common;
#[cfg(all(
    feature = "sqlite",
    feature = "mysql",
    feature = "redis",
    feature = "web-push"
))]
#[path = "account_deletion/zk.rs"]
mod zk;

#[path = "account_deletion/export.rs"]
mod export;

use std::sync::Arc;
use std::time::Duration;

use common::realtime::{delivery, hex32, http_send, make_contacts, online, Target};
use common::ws::{is, WsClient, WAIT};
use common::{login, new_user, random_device, test_config, Client, Resp, TestServer, User};
use http::Method;
use serde_json::{json, Value};

async fn delete(c: &Client, u: &User, body: Value) -> Resp {
    c.call(Method::DELETE, "/account", Some(&u.token), Some(&body))
        .await
}

async fn post_ok(c: &Client, u: &User, path: &str, body: Value) -> Value {
    let r = c.post(path, Some(&u.token), &body).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.body
}

async fn new_chat(c: &Client, owner: &User, name: &str) -> i64 {
    let r = post_ok(c, owner, "/chats/create", json!({ "name": name })).await;
    r["chat_id"].as_i64().expect("chat_id")
}

async fn add(c: &Client, owner: &User, chat: i64, who: &User) {
    post_ok(
        c,
        owner,
        "/chats/members/add",
        json!({"chat_id": chat, "user_unique_id": who.uid}),
    )
    .await;
}

fn raw_delete(
    c: &Client,
    u: &User,
    body: &'static [u8],
    csrf: &str,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    c.request(Method::DELETE, "/account", Some(&u.token))
        .header("content-type", "application/json")
        .header("x-csrf-token", csrf)
        .body(http_body_util::Full::new(bytes::Bytes::from_static(body)))
        .expect("request")
}

/// Without the right CSRF token, with a wrong password or a bad body, nothing is erased.
#[tokio::test]
async fn deletion_needs_the_csrf_token_and_the_password() {
    let s = TestServer::start().await;
    let t = Target::of(&s);
    let c = &s.client;
    let a = new_user(c, "Alice").await;
    let b = new_user(c, "Bob").await;
    make_contacts(&t, &a, &b).await;
    let pw = a.password.clone();
    delete(c, &a, json!({ "password": pw }))
        .await
        .assert_error(403, "csrf_invalid");
    delete(c, &a, json!({"password": pw, "csrf_token": b.csrf}))
        .await
        .assert_error(403, "csrf_invalid");
    // Body and header must agree when both are sent.
    let r = c
        .send(
            c.request(Method::DELETE, "/account", Some(&a.token))
                .header("x-csrf-token", &a.csrf)
                .body(http_body_util::Full::new(bytes::Bytes::from(
                    json!({"password": pw, "csrf_token": "x".repeat(43)}).to_string(),
                )))
                .expect("request"),
        )
        .await;
    r.assert_error(403, "csrf_invalid");
    // The password-change route's answer to a wrong current password.
    delete(
        c,
        &a,
        json!({"password": "Wrong-Passw0rd", "csrf_token": a.csrf}),
    )
    .await
    .assert_error(403, "forbidden");
    let r = delete(c, &a, json!({ "csrf_token": a.csrf })).await;
    r.assert_error(422, "validation_failed");
    assert_eq!(
        r.body["error"]["fields"][0]["field"], "password",
        "{}",
        r.body
    );
    let r = delete(c, &a, json!({"password": 12345678, "csrf_token": a.csrf})).await;
    r.assert_error(422, "validation_failed");
    let r = delete(
        c,
        &a,
        json!({"password": "x".repeat(129), "csrf_token": a.csrf}),
    )
    .await;
    r.assert_error(422, "validation_failed");
    c.send(raw_delete(c, &a, b"[1, 2]", &a.csrf))
        .await
        .assert_error(422, "validation_failed");
    let big = json!({"password": "p".repeat(5000), "csrf_token": a.csrf});
    delete(c, &a, big)
        .await
        .assert_error(413, "payload_too_large");
    // No token at all.
    c.call(
        Method::DELETE,
        "/account",
        None,
        Some(&json!({"password": pw})),
    )
    .await
    .assert_error(401, "unauthenticated");

    // Nothing was erased: the account works, the contact is still there.
    let me = c.get("/profile", Some(&a.token)).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["unique_id"], a.uid.as_str());
    let r = login(c, &a.phone, &a.password, &random_device()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let list = c.get("/contacts", Some(&b.token)).await;
    assert_eq!(
        list.body["contacts"][0]["unique_id"],
        a.uid.as_str(),
        "{}",
        list.body
    );
    s.stop().await;
}

/// The deleted user's sockets close; login, token and uid are gone for good while the phone
/// registers again; contacts get `subscription_removed`; chats pass to the oldest admin, else
/// the oldest member; an empty chat goes; messages already delivered stay.
#[tokio::test]
async fn deletion_erases_the_account_and_tells_the_others() {
    let s = TestServer::start().await;
    let t = Target::of(&s);
    let c = &s.client;
    let a = new_user(c, "Alice").await;
    let b = new_user(c, "Bob").await;
    let cc = new_user(c, "Carol").await;
    let d = new_user(c, "Dave").await;
    make_contacts(&t, &a, &b).await;
    make_contacts(&t, &a, &cc).await;
    // Dave asked Alice; Alice asked nobody else: Dave's request ends silently.
    post_ok(
        c,
        &d,
        "/subscribe",
        json!({"target_id": a.uid, "csrf_token": d.csrf}),
    )
    .await;
    // Group 1: Bob joins first as a member, Carol later, promoted to admin: Carol inherits.
    let g1 = new_chat(c, &a, "Group one").await;
    add(c, &a, g1, &b).await;
    add(c, &a, g1, &cc).await;
    post_ok(
        c,
        &a,
        "/chats/members/role",
        json!({"chat_id": g1, "user_unique_id": cc.uid, "role": "admin"}),
    )
    .await;
    // Group 2: no admin; Bob joined before Carol: Bob inherits.
    let g2 = new_chat(c, &a, "Group two").await;
    add(c, &a, g2, &b).await;
    // Join times are milliseconds: a tie would go to the smaller (random) uid.
    tokio::time::sleep(Duration::from_millis(5)).await;
    add(c, &a, g2, &cc).await;
    // Group 3: Alice alone, public: it goes, and its code with it.
    let g3 = new_chat(c, &a, "Group three").await;
    let code = post_ok(
        c,
        &a,
        "/chats/set_public",
        json!({"chat_id": g3, "is_public": true}),
    )
    .await["invite"]
        .as_str()
        .expect("code")
        .to_owned();
    // Bob's own chat with Alice as a member.
    let g4 = new_chat(c, &b, "Bob's group").await;
    add(c, &b, g4, &a).await;

    let mut wa = online(&t, &a).await;
    let mut wb = online(&t, &b).await;
    let to_bob = http_send(&t, &a, &b, "ciphertext-from-alice").await;
    let f = delivery(&mut wb, &a, &b).await;
    assert_eq!(hex32(&f["message_id"]), to_bob);
    wb.ack_all().await;
    let to_alice = http_send(&t, &b, &a, "ciphertext-from-bob").await;
    delivery(&mut wa, &b, &a).await;
    wb.ping().await;
    // Alice's read markers in group 1 and in Bob's group: erased with her.
    let mut read_in = Vec::new();
    for (sender, chat) in [(&b, g1), (&b, g4)] {
        let r = c
            .post(
                "/messages/send",
                Some(&sender.token),
                &json!({"chat_id": chat, "data": "Z3JvdXA="}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let id = hex32(&r.body["message_id"]);
        post_ok(
            c,
            &a,
            "/status/read",
            json!({"chat_id": chat, "message_id": id}),
        )
        .await;
        read_in.push(chat);
    }
    let alices = c.get("/chats/list?per_page=100", Some(&a.token)).await.body;
    for chat in &read_in {
        assert!(
            alices["chats"]
                .as_array()
                .expect("chats")
                .iter()
                .any(|x| x["id"] == *chat && x["last_read_message_id"].is_string()),
            "Alice's marker in {chat}: {alices}"
        );
    }
    let alice: melo::model::UserId = a.uid.parse().expect("uid");
    assert_eq!(
        s.store
            .read_markers(alice, &read_in)
            .await
            .expect("markers")
            .len(),
        2
    );

    let r = c
        .send(
            c.request(Method::DELETE, "/account", Some(&a.token))
                .header("x-csrf-token", &a.csrf)
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(bytes::Bytes::from(
                    json!({ "password": a.password }).to_string(),
                )))
                .expect("request"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"status": "deleted", "unique_id": a.uid}));

    // Alice's socket closes; her token, login and uid are gone.
    assert_eq!(
        wa.expect_close(Duration::from_secs(5)).await,
        (1008, "token_revoked".to_owned())
    );
    c.get("/profile", Some(&a.token))
        .await
        .assert_error(401, "token_revoked");
    for id in [a.phone.as_str(), a.uid.as_str()] {
        login(c, id, &a.password, &random_device())
            .await
            .assert_error(401, "invalid_credentials");
    }
    delete(c, &a, json!({"password": a.password, "csrf_token": a.csrf}))
        .await
        .assert_error(401, "token_revoked");

    // Bob: subscription_removed, Alice left his chats, he owns group 2 now.
    let removed = wb
        .recv_where(
            "subscription_removed",
            |f| is(f, "subscription_removed") && f["from_id"] == a.uid.as_str(),
            WAIT,
        )
        .await;
    assert!(removed["seq"].is_i64(), "durable: {removed}");
    for chat in [g1, g2, g4] {
        wb.recv_where(
            &format!("chat_member left in {chat}"),
            |f| {
                is(f, "chat_member")
                    && f["chat_id"] == chat
                    && f["user_id"] == a.uid.as_str()
                    && f["action"] == "left"
            },
            WAIT,
        )
        .await;
    }
    let owner = wb
        .recv_where(
            "chat_member role_changed owner in group 2",
            |f| is(f, "chat_member") && f["chat_id"] == g2 && f["action"] == "role_changed",
            WAIT,
        )
        .await;
    assert_eq!(
        (owner["user_id"].as_str(), owner["role"].as_str()),
        (Some(b.uid.as_str()), Some("owner"))
    );
    assert!(c.get("/contacts", Some(&b.token)).await.body["contacts"]
        .as_array()
        .expect("contacts")
        .is_empty());
    let reqs = c.get("/contacts/requests", Some(&d.token)).await.body;
    assert_eq!(
        reqs["outgoing"],
        json!([]),
        "Dave's request is gone: {reqs}"
    );

    let role_of = |list: &Value, chat: i64| {
        list["chats"]
            .as_array()
            .expect("chats")
            .iter()
            .find(|x| x["id"] == chat)
            .map(|x| {
                (
                    x["role"].as_str().unwrap_or("").to_owned(),
                    x["owner_id"].clone(),
                )
            })
    };
    let bobs = c.get("/chats/list?per_page=100", Some(&b.token)).await.body;
    let carols = c
        .get("/chats/list?per_page=100", Some(&cc.token))
        .await
        .body;
    assert_eq!(
        role_of(&carols, g1),
        Some(("owner".into(), json!(cc.uid))),
        "{carols}"
    );
    assert_eq!(
        role_of(&bobs, g1),
        Some(("member".into(), json!(cc.uid))),
        "{bobs}"
    );
    assert_eq!(
        role_of(&bobs, g2),
        Some(("owner".into(), json!(b.uid))),
        "{bobs}"
    );
    assert_eq!(
        role_of(&carols, g2),
        Some(("member".into(), json!(b.uid))),
        "{carols}"
    );
    for (u, chat) in [(&b, g1), (&b, g2), (&b, g4)] {
        let m = c
            .get(&format!("/chats/members?chat_id={chat}"), Some(&u.token))
            .await;
        let ids: Vec<&Value> = m.body["members"]
            .as_array()
            .expect("members")
            .iter()
            .map(|x| &x["unique_id"])
            .collect();
        assert!(!ids.contains(&&json!(a.uid)), "{chat}: {}", m.body);
    }
    // Group 3 is gone, its permanent code with it.
    assert_eq!(role_of(&bobs, g3), None);
    c.get(&format!("/chats/by_invite/{code}"), None)
        .await
        .assert_error(404, "invite_invalid");
    c.post("/invites/join", Some(&b.token), &json!({ "code": code }))
        .await
        .assert_error(404, "invite_invalid");

    // What Bob received, and what he sent, stays in his history.
    let h = c
        .get(&format!("/messages/history/dm/{}", a.uid), Some(&b.token))
        .await;
    assert_eq!(h.status, 200, "{}", h.body);
    let ids: Vec<&str> = h.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["message_id"].as_str())
        .collect();
    assert!(
        ids.contains(&to_bob.as_str()) && ids.contains(&to_alice.as_str()),
        "{}",
        h.body
    );
    assert!(
        h.body["messages"]
            .to_string()
            .contains("ciphertext-from-alice"),
        "the ciphertext as it was: {}",
        h.body
    );

    // No marker of Alice's remains: the store returns markers of members only, so put her uid
    // back into the chats (the store does not check users) and look.
    for chat in &read_in {
        assert!(s
            .store
            .add_member(
                *chat,
                alice,
                melo::model::ChatRole::Member,
                melo::model::Timestamp::now()
            )
            .await
            .expect("add back"));
    }
    assert_eq!(
        s.store
            .read_markers(alice, &read_in)
            .await
            .expect("markers"),
        vec![],
        "the deletion erased Alice's read markers"
    );
    for chat in &read_in {
        assert!(s.store.remove_member(*chat, alice).await.expect("remove"));
    }

    // The phone registers again, under a new uid.
    let r = c
        .post(
            "/register",
            None,
            &json!({"phone": a.phone, "name": "Alice Again", "nickname": "alice2",
                    "password": "Passw0rd-again", "device_id": random_device(),
                    "public_e2e_key": common::user_pem()}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let again = r.body["unique_id"].as_str().expect("uid");
    assert_ne!(again, a.uid, "a deleted uid is never handed out again");
    assert_eq!(
        s.store
            .user(a.uid.parse().expect("uid"))
            .await
            .expect("store"),
        None
    );
    let r = login(c, &a.phone, "Passw0rd-again", &random_device()).await;
    assert_eq!(r.body["unique_id"], again, "{}", r.body);
    wb.close().await;
    s.stop().await;
}

/// The operator's path: the library's `melo.delete_account(uid)`, no
/// password; the account is gone and a second call says so.
#[tokio::test]
async fn the_library_deletes_an_account_without_a_password() {
    let store: Arc<dyn melo::Store> = Arc::new(melo::MemoryStore::new());
    let melo = melo::Melo::builder(store.clone(), common::keys())
        .config(test_config())
        .build()
        .expect("build");
    let melo = Arc::new(melo);
    let s = TestServer::serve_shared(melo.clone(), store).await;
    let t = Target::of(&s);
    let a = new_user(&s.client, "Alice").await;
    let b = new_user(&s.client, "Bob").await;
    make_contacts(&t, &a, &b).await;
    let mut wa = WsClient::open(s.addr, &a.token).await;
    wa.sync().await;
    let uid = a.uid.parse().expect("uid");
    let done = melo.delete_account(uid).await.expect("deleted");
    assert_eq!(
        (done.user_id, done.active_sessions, done.contacts),
        (uid, 1, 1)
    );
    assert_eq!(
        wa.expect_close(Duration::from_secs(5)).await,
        (1008, "token_revoked".to_owned())
    );
    assert!(matches!(
        melo.delete_account(uid).await,
        Err(melo::Error::UserNotFound)
    ));
    login(&s.client, &a.phone, &a.password, &random_device())
        .await
        .assert_error(401, "invalid_credentials");
    s.stop().await;
}

/// Two nodes sharing the store and the bus: deleting through node 1 closes the user's sockets on
/// node 2 too, and a contact connected to node 2 hears `subscription_removed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_closes_sockets_on_every_node() {
    let store: Arc<dyn melo::Store> = Arc::new(melo::MemoryStore::new());
    let eph: Arc<dyn melo::Ephemeral> = Arc::new(melo::MemoryEphemeral::new());
    let n1 = TestServer::start_node(test_config(), store.clone(), eph.clone()).await;
    let n2 = TestServer::start_node(test_config(), store, eph).await;
    let (t1, t2) = (Target::of(&n1), Target::of(&n2));
    let a = new_user(&n1.client, "Alice").await;
    let b = new_user(&n2.client, "Bob").await;
    make_contacts(&t1, &a, &b).await;
    let a2 = common::realtime::second_device(&t2, &a).await;
    let mut wa1 = online(&t1, &a).await;
    let mut wa2 = online(&t2, &a2).await;
    let mut wb = online(&t2, &b).await;
    let r = delete(
        &n1.client,
        &a,
        json!({"password": a.password, "csrf_token": a.csrf}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for ws in [&mut wa1, &mut wa2] {
        assert_eq!(
            ws.expect_close(Duration::from_secs(5)).await,
            (1008, "token_revoked".to_owned())
        );
    }
    wb.recv_where(
        "subscription_removed on node 2",
        |f| is(f, "subscription_removed") && f["from_id"] == a.uid.as_str(),
        WAIT,
    )
    .await;
    n2.client
        .get("/profile", Some(&a2.token))
        .await
        .assert_error(401, "token_revoked");
    wb.close().await;
    n1.stop().await;
    n2.stop().await;
}

/// Wrong passwords count as failed logins of the account from that address: enough of them lock
/// both the deletion and the login (PROTOCOL §3.4), and the account stays.
#[tokio::test]
async fn wrong_passwords_lock_like_failed_logins() {
    let mut config = test_config();
    config.limits.failed_login_limit = 3;
    let s = TestServer::start_with(config, Arc::new(melo::MemoryStore::new())).await;
    let c = &s.client;
    let a = new_user(c, "Alice").await;
    for _ in 0..3 {
        delete(
            c,
            &a,
            json!({"password": "Wrong-Passw0rd", "csrf_token": a.csrf}),
        )
        .await
        .assert_error(403, "forbidden");
    }
    delete(c, &a, json!({"password": a.password, "csrf_token": a.csrf}))
        .await
        .assert_error(429, "login_locked");
    login(c, &a.phone, &a.password, &random_device())
        .await
        .assert_error(429, "login_locked");
    assert_eq!(c.get("/profile", Some(&a.token)).await.status, 200);
    s.stop().await;
}
