//! Scheduled messages (PROTOCOL §4.6 `POST /schedule/message`; `GET /schedule`,
//! `DELETE /schedule/{schedule_id}`; docs/scheduled-messages.md) over real sockets: delivery at
//! `when` to the recipient and to every device of the sender, chats, validation and
//! authorization, discarding when the contact is gone, listing and cancelling, the per-user
//! bound, idempotency, revoked sessions, account erasure; delivery after a restart of the `melo`
//! binary on SQLite; and, on MySQL + Redis, exactly one delivery with two nodes running their
//! schedulers, also when the accepting node is stopped before `when`.
//!
//! No timing is asserted: each test waits (with a generous timeout) for the event it expects.

// The fresh-database guard of the audit test; this file uses only part of it.
#[allow(dead_code, unreachable_pub)]
#[path = "zk_audit/backends.rs"]
mod backends;
mod common;

use common::schedule::{
    at, cancel, delivered, dm_history, millis, pending, scenario, schedule, schedule_ok,
    until_none_pending, GENEROUS,
};

use std::sync::Arc;
use std::time::Duration;

use common::realtime::{assert_ts, hex32, make_contacts, online, second_device, Target};
use common::ws::is;
use common::{new_user, test_config, Resp, TestServer};
use http::Method;
use melo::model::{Timestamp, UserId};
use melo::{Ephemeral, MemoryStore, RedisEphemeral, Store};
use serde_json::{json, Value};

/// The DM scenario (tests/common/schedule.rs) in-process on the memory store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_dm_reaches_the_recipient_and_every_sender_device() {
    let s = TestServer::start().await;
    scenario(&Target::of(&s)).await;
    s.stop().await;
}

/// A chat post scheduled by the owner reaches the members, and the owner's device gets its
/// `self` copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_chat_post_reaches_the_members() {
    let s = TestServer::start().await;
    let t = Target::of(&s);
    let c = &s.client;
    let a = new_user(c, "Alice").await;
    let b = new_user(c, "Bob").await;
    make_contacts(&t, &a, &b).await;
    let r = c
        .post("/chats/create", Some(&a.token), &json!({"name": "Team"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let chat = r.body["chat_id"].as_i64().expect("chat_id");
    let r = c
        .post(
            "/chats/members/add",
            Some(&a.token),
            &json!({"chat_id": chat, "user_unique_id": b.uid}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut wa = online(&t, &a).await;
    let mut wb = online(&t, &b).await;
    // chat_id as a string of digits, as /messages/send accepts it.
    schedule_ok(
        c,
        &a,
        json!({"chat_id": chat.to_string(), "when": at(1_000), "data": "Y2hhdA=="}),
    )
    .await;
    let f = delivered(&mut wb, "Y2hhdA==").await;
    assert_eq!(f["chat_id"], chat, "{f}");
    assert_eq!(f["from"], a.uid.as_str(), "{f}");
    let copy = delivered(&mut wa, "Y2hhdA==").await;
    assert_eq!(copy["self"], true, "{copy}");
    assert_eq!(copy["chat_id"], chat, "{copy}");
    s.stop().await;
}

/// Slow mode is not consulted when scheduling (nothing is posted then); at `when` it applies:
/// a member who posted too recently has the scheduled post deferred until slow mode allows it,
/// not discarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_mode_defers_a_scheduled_post() {
    let s = TestServer::start().await;
    let t = Target::of(&s);
    let c = &s.client;
    let a = new_user(c, "Alice").await;
    let b = new_user(c, "Bob").await;
    make_contacts(&t, &a, &b).await;
    let r = c
        .post("/chats/create", Some(&a.token), &json!({"name": "Slow"}))
        .await;
    let chat = r.body["chat_id"].as_i64().expect("chat_id");
    for (path, body) in [
        (
            "/chats/members/add",
            json!({"chat_id": chat, "user_unique_id": b.uid}),
        ),
        (
            "/chats/set_slow_mode",
            json!({"chat_id": chat, "seconds": 3}),
        ),
    ] {
        let r = c.post(path, Some(&a.token), &body).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let mut wa = online(&t, &a).await;
    let r = c
        .post(
            "/messages/send",
            Some(&b.token),
            &json!({"chat_id": chat, "data": "Zmlyc3Q="}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let first = delivered(&mut wa, "Zmlyc3Q=").await;
    // Within the slow-mode window: refused now, but scheduling is not posting.
    c.post(
        "/messages/send",
        Some(&b.token),
        &json!({"chat_id": chat, "data": "eA=="}),
    )
    .await
    .assert_error(429, "slow_mode");
    schedule_ok(
        c,
        &b,
        json!({"chat_id": chat, "when": at(500), "data": "ZGVmZXJyZWQ="}),
    )
    .await;
    let f = delivered(&mut wa, "ZGVmZXJyZWQ=").await;
    // Due about 0.5 s after the first post, sent only once the 3 s window had passed (less a
    // margin for the moment the window was counted from).
    assert!(
        millis(&f["ts"]) >= millis(&first["ts"]) + 2_500,
        "deferred past slow mode: {first} then {f}"
    );
    until_none_pending(c, &b).await;
    let r = c
        .get(&format!("/messages/history/chat/{chat}"), Some(&a.token))
        .await;
    assert_eq!(r.body["total"], 2, "{}", r.body);
    s.stop().await;
}

fn assert_field(r: &Resp, field: &str) {
    r.assert_error(422, "validation_failed");
    let fields = r.body["error"]["fields"].as_array().expect("fields");
    assert!(
        fields.iter().any(|f| f["field"] == field),
        "422 names {field}: {}",
        r.body
    );
}

/// Bad input is 422 with the field; authorization is the send path's (403 not_a_contact,
/// not_a_member, forbidden; 400 invalid_target); nothing is stored by a refused request.
#[tokio::test]
async fn validation_and_authorization() {
    let s = TestServer::start().await;
    let t = Target::of(&s);
    let c = &s.client;
    let a = new_user(c, "Alice").await;
    let b = new_user(c, "Bob").await;
    let stranger = new_user(c, "Stranger").await;
    make_contacts(&t, &a, &b).await;
    let dm = |when: Value, data: Value| json!({"target_id": b.uid, "when": when, "data": data});

    assert_field(
        &schedule(c, &a, dm(json!(at(-1_000)), json!("x"))).await,
        "when",
    );
    assert_field(&schedule(c, &a, dm(json!(at(0)), json!("x"))).await, "when");
    assert_field(
        &schedule(c, &a, dm(json!(at(31 * 24 * 3600 * 1000)), json!("x"))).await,
        "when",
    );
    assert_field(
        &schedule(c, &a, dm(json!("tomorrow"), json!("x"))).await,
        "when",
    );
    // RFC 3339 requires an offset: a local time without one would be read as UTC, hours off.
    let naive = at(3_600_000);
    let naive = naive.trim_end_matches('Z').to_owned();
    assert_field(&schedule(c, &a, dm(json!(naive), json!("x"))).await, "when");
    // With an offset other than Z it is accepted.
    let offset = format!("{naive}+00:00");
    let r = schedule(c, &a, dm(json!(offset), json!("x"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    cancel(c, &a, &hex32(&r.body["schedule_id"])).await;
    assert_field(
        &schedule(c, &a, dm(json!(1_900_000_000), json!("x"))).await,
        "when",
    );
    assert_field(
        &schedule(c, &a, json!({"target_id": b.uid, "data": "x"})).await,
        "when",
    );
    assert_field(
        &schedule(c, &a, dm(json!(at(60_000)), json!(""))).await,
        "data",
    );
    assert_field(
        &schedule(c, &a, dm(json!(at(60_000)), json!(42))).await,
        "data",
    );
    assert_field(
        &schedule(c, &a, dm(json!(at(60_000)), json!(["x"]))).await,
        "data",
    );
    let big = "x".repeat(1024 * 1024 + 1);
    assert_field(
        &schedule(c, &a, dm(json!(at(60_000)), json!(big))).await,
        "data",
    );
    assert_field(
        &schedule(
            c,
            &a,
            json!({"target_id": b.uid, "chat_id": 1, "when": at(60_000), "data": "x"}),
        )
        .await,
        "target_id",
    );
    assert_field(
        &schedule(c, &a, json!({"when": at(60_000), "data": "x"})).await,
        "target_id",
    );
    assert_field(
        &schedule(
            c,
            &a,
            json!({"target_id": b.uid, "when": at(60_000), "data": "x", "client_id": "no spaces"}),
        )
        .await,
        "client_id",
    );
    assert_field(
        &schedule(
            c,
            &a,
            json!({"target_id": 12345678, "when": at(60_000), "data": "x"}),
        )
        .await,
        "target_id",
    );
    // Exactly the data limit is accepted.
    let max = "x".repeat(1024 * 1024);
    let id = schedule_ok(c, &a, dm(json!(at(3_600_000)), json!(max))).await;
    assert_eq!(cancel(c, &a, &id).await.status, 200);

    schedule(
        c,
        &a,
        json!({"target_id": stranger.uid, "when": at(60_000), "data": "x"}),
    )
    .await
    .assert_error(403, "not_a_contact");
    schedule(
        c,
        &a,
        json!({"target_id": "99999999", "when": at(60_000), "data": "x"}),
    )
    .await
    .assert_error(403, "not_a_contact");
    schedule(
        c,
        &a,
        json!({"target_id": a.uid, "when": at(60_000), "data": "x"}),
    )
    .await
    .assert_error(400, "invalid_target");
    schedule(
        c,
        &a,
        json!({"chat_id": 999_999, "when": at(60_000), "data": "x"}),
    )
    .await
    .assert_error(403, "not_a_member");
    // A plain member of a channel may not post in it.
    let r = c
        .post(
            "/chats/create",
            Some(&b.token),
            &json!({"name": "News", "type": "channel"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let channel = r.body["chat_id"].as_i64().expect("chat_id");
    let r = c
        .post(
            "/chats/members/add",
            Some(&b.token),
            &json!({"chat_id": channel, "user_unique_id": a.uid}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    schedule(
        c,
        &a,
        json!({"chat_id": channel, "when": at(60_000), "data": "x"}),
    )
    .await
    .assert_error(403, "forbidden");
    // No token.
    c.post(
        "/schedule/message",
        None,
        &json!({"target_id": b.uid, "when": at(60_000), "data": "x"}),
    )
    .await
    .assert_error(401, "unauthenticated");

    assert_eq!(pending(c, &a).await["total"], 0, "nothing stored");
    s.stop().await;
}

/// The contact is removed before `when`: the message is discarded, nothing is delivered or
/// stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_contact_gets_nothing() {
    let s = TestServer::start().await;
    let t = Target::of(&s);
    let c = &s.client;
    let a = new_user(c, "Alice").await;
    let b = new_user(c, "Bob").await;
    make_contacts(&t, &a, &b).await;
    let mut wb = online(&t, &b).await;
    schedule_ok(
        c,
        &a,
        json!({"target_id": b.uid, "when": at(1_000), "data": "ZGlzY2FyZGVk"}),
    )
    .await;
    let r = c
        .post(
            "/unsubscribe",
            Some(&a.token),
            &json!({"target_id": b.uid, "csrf_token": a.csrf}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The row goes at `when` (discarded): from then on nothing can send it.
    until_none_pending(c, &a).await;
    assert_eq!(dm_history(c, &b, &a).await["total"], 0, "not stored");
    wb.expect_no(
        "the discarded message",
        |f| is(f, "relay_delivery"),
        t.quiet,
    )
    .await;
    let metrics = String::from_utf8(c.get("/metrics", None).await.raw.to_vec()).expect("utf-8");
    assert!(
        metrics.contains("melo_scheduled_messages_total{outcome=\"discarded\"} 1"),
        "{metrics}"
    );
    s.stop().await;
}

/// An operator locks the sender before `when`: the message is discarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sender_sends_nothing() {
    let s = TestServer::start().await;
    let t = Target::of(&s);
    let c = &s.client;
    let a = new_user(c, "Alice").await;
    let b = new_user(c, "Bob").await;
    make_contacts(&t, &a, &b).await;
    schedule_ok(
        c,
        &a,
        json!({"target_id": b.uid, "when": at(1_000), "data": "bG9ja2Vk"}),
    )
    .await;
    let a_uid: UserId = a.uid.parse().expect("uid");
    s.store
        .lock_user(a_uid, Timestamp::now())
        .await
        .expect("lock")
        .expect("the user exists");
    let deadline = tokio::time::Instant::now() + GENEROUS;
    while s.store.schedules_of(a_uid, 0, 10).await.expect("rows").1 > 0 {
        assert!(tokio::time::Instant::now() < deadline, "still pending");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(dm_history(c, &b, &a).await["total"], 0, "discarded");
    s.stop().await;
}

/// `GET /schedule` lists the caller's pending schedules, soonest first, with paging; only the
/// owner cancels (someone else's or an unknown id is 404 `schedule_not_found`).
#[tokio::test]
async fn list_and_cancel() {
    let s = TestServer::start().await;
    let t = Target::of(&s);
    let c = &s.client;
    let a = new_user(c, "Alice").await;
    let b = new_user(c, "Bob").await;
    make_contacts(&t, &a, &b).await;
    let late_when = at(7_200_000);
    let late = schedule_ok(
        c,
        &a,
        json!({"target_id": b.uid, "when": late_when, "data": "bGF0ZQ==", "client_id": "late"}),
    )
    .await;
    let soon = schedule_ok(
        c,
        &a,
        json!({"target_id": b.uid, "when": at(3_600_000), "data": {"x": 1}}),
    )
    .await;
    let list = pending(c, &a).await;
    assert_eq!(list["total"], 2, "{list}");
    assert_eq!(list["pages"], 1);
    assert_eq!(list["page"], 1);
    assert_eq!(list["per_page"], 50);
    let items = list["items"].as_array().expect("items");
    assert_eq!(items[0]["schedule_id"], soon.as_str());
    assert_eq!(items[0]["data"], r#"{"x":1}"#);
    assert_eq!(items[1]["schedule_id"], late.as_str());
    let item = &items[1];
    assert_eq!(item["target_id"], b.uid.as_str());
    assert!(item["chat_id"].is_null());
    assert_eq!(millis(&item["when"]), millis(&json!(late_when)));
    assert_ts(&item["when"]);
    assert_ts(&item["created_at"]);
    assert_eq!(item["data"], "bGF0ZQ==");
    assert_eq!(item["client_id"], "late");
    let r = c.get("/schedule?page=2&per_page=1", Some(&a.token)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["items"][0]["schedule_id"], late.as_str());
    assert_eq!(r.body["pages"], 2);
    c.get("/schedule?per_page=101", Some(&a.token))
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(pending(c, &b).await["total"], 0, "Bob sees none of them");

    cancel(c, &b, &late)
        .await
        .assert_error(404, "schedule_not_found");
    cancel(c, &a, "0193a1b2c3d4e5f60718293a4b5c6d7e")
        .await
        .assert_error(404, "schedule_not_found");
    assert_field(&cancel(c, &a, "nope").await, "schedule_id");
    let r = cancel(c, &a, &late).await;
    assert_eq!(
        (r.status.as_u16(), &r.body),
        (200, &json!({"status": "ok"}))
    );
    cancel(c, &a, &late)
        .await
        .assert_error(404, "schedule_not_found");
    let list = pending(c, &a).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["schedule_id"], soon.as_str());
    s.stop().await;
}

/// `SCHEDULE_MAX_PENDING` bounds a user's pending schedules: one more is 429 `schedule_limit`
/// with `retry_after`; a cancel frees a slot. A repeated `client_id` of the same device returns
/// the first id and stores nothing, another device's is its own.
#[tokio::test]
async fn the_pending_bound_and_idempotency() {
    let mut config = test_config();
    config.messages.schedule_max_pending = 2;
    let s = TestServer::start_with(config, Arc::new(MemoryStore::new())).await;
    let t = Target::of(&s);
    let c = &s.client;
    let a = new_user(c, "Alice").await;
    let a2 = second_device(&t, &a).await;
    let b = new_user(c, "Bob").await;
    make_contacts(&t, &a, &b).await;
    let body = |cid: &str, data: &str| json!({"target_id": b.uid, "when": at(3_600_000), "data": data, "client_id": cid});
    let first = schedule_ok(c, &a, body("same", "b25l")).await;
    assert_eq!(
        schedule_ok(c, &a, body("same", "ignored")).await,
        first,
        "the first id"
    );
    let list = pending(c, &a).await;
    assert_eq!(list["total"], 1);
    assert_eq!(
        list["items"][0]["data"], "b25l",
        "the repeat stored nothing"
    );
    let other = schedule_ok(c, &a2, body("same", "dHdv")).await;
    assert_ne!(other, first, "another device's client_id is its own");

    let r = schedule(c, &a, body("third", "eA==")).await;
    r.assert_error(429, "schedule_limit");
    let retry = r.body["error"]["retry_after"]
        .as_u64()
        .expect("retry_after");
    assert!((3_500..=3_600).contains(&retry), "{retry}");
    assert_eq!(r.header("retry-after"), Some(retry.to_string().as_str()));
    // A duplicate is still answered at the bound.
    assert_eq!(schedule_ok(c, &a, body("same", "eA==")).await, first);
    assert_eq!(cancel(c, &a, &other).await.status, 200);
    schedule_ok(c, &a, body("third", "eA==")).await;
    assert_eq!(pending(c, &a).await["total"], 2);
    s.stop().await;
}

/// A schedule belongs to the account: the scheduling device logging out does not stop it; the
/// other device gets the `self` copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_scheduling_session_still_sends() {
    let s = TestServer::start().await;
    let t = Target::of(&s);
    let c = &s.client;
    let a1 = new_user(c, "Alice").await;
    let a2 = second_device(&t, &a1).await;
    let b = new_user(c, "Bob").await;
    make_contacts(&t, &a1, &b).await;
    let mut wa1 = online(&t, &a1).await;
    let mut wb = online(&t, &b).await;
    schedule_ok(
        c,
        &a2,
        json!({"target_id": b.uid, "when": at(1_500), "data": "cmV2b2tlZA=="}),
    )
    .await;
    let r = c.post("/logout", Some(&a2.token), &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let f = delivered(&mut wb, "cmV2b2tlZA==").await;
    assert_eq!(f["from"], a1.uid.as_str());
    let copy = delivered(&mut wa1, "cmV2b2tlZA==").await;
    assert_eq!(copy["self"], true);
    until_none_pending(c, &a1).await;
    assert_eq!(dm_history(c, &b, &a1).await["total"], 1);
    s.stop().await;
}

/// Erasing the account deletes its pending schedules; schedules aimed at an erased user are
/// discarded at their time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_erasure_removes_and_discards_schedules() {
    let s = TestServer::start().await;
    let t = Target::of(&s);
    let c = &s.client;
    let a = new_user(c, "Alice").await;
    let b = new_user(c, "Bob").await;
    make_contacts(&t, &a, &b).await;
    schedule_ok(
        c,
        &a,
        json!({"target_id": b.uid, "when": at(3_600_000), "data": "ZnJvbSBh"}),
    )
    .await;
    schedule_ok(
        c,
        &b,
        json!({"target_id": a.uid, "when": at(1_000), "data": "dG8gYQ=="}),
    )
    .await;
    // The export describes the pending schedule without its payload.
    let r = c.get("/account/export", Some(&a.token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let x = &r.body["scheduled_messages"];
    assert_eq!(x["total"], 1, "{x}");
    assert_eq!(x["truncated"], false);
    assert_eq!(x["items"][0]["target_id"], b.uid.as_str());
    assert_eq!(x["items"][0]["payload_bytes"], 8);
    assert!(
        !r.body.to_string().contains("ZnJvbSBh"),
        "no payload in the export"
    );
    let a_uid: UserId = a.uid.parse().expect("uid");
    assert_eq!(s.store.schedules_of(a_uid, 0, 10).await.expect("rows").1, 1);
    let r = c
        .call(
            Method::DELETE,
            "/account",
            Some(&a.token),
            Some(&json!({"password": a.password, "csrf_token": a.csrf})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        s.store.schedules_of(a_uid, 0, 10).await.expect("rows"),
        (vec![], 0),
        "the erased user's schedules are gone"
    );
    // Bob's schedule to the erased user is discarded at its time.
    until_none_pending(c, &b).await;
    let b_uid: UserId = b.uid.parse().expect("uid");
    assert!(s
        .store
        .dm_history(
            a_uid,
            b_uid,
            None,
            melo::store::HistoryPageSpec {
                skip: 0,
                take: 10,
                max_bytes: 1 << 20
            }
        )
        .await
        .expect("history")
        .messages
        .is_empty());
    s.stop().await;
}

// ---- the melo binary on SQLite: a restart before `when` -------------------------------------

/// The binary's fixture: any free port (sockets on `GET /ws` of the HTTP port), limits out of
/// the way.
const FIXTURE: &str = "HTTP_PORT=0\nWS_PORT=0\nRATE_LIMIT_CALLS=100000\nFAILED_LOGIN_LIMIT=1000\n\
                       FAILED_LOGIN_IP_LIMIT=100000\nBCRYPT_COST=4\n";

/// Scheduled, then the server is killed (SIGKILL) before `when` and started again on the same
/// data directory: the message arrives, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_survives_a_restart_of_the_binary() {
    use common::binary::{start_with, stop};
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".env"), FIXTURE).expect(".env");
    let mut server = start_with(dir.path(), &[]);
    let c = server.client.clone();
    let t = Target::new(c.clone(), server.http_addr(), server.http_addr());
    let a = new_user(&c, "Alice").await;
    let b = new_user(&c, "Bob").await;
    make_contacts(&t, &a, &b).await;
    let when = at(6_000);
    schedule_ok(
        &c,
        &a,
        json!({"target_id": b.uid, "when": when, "data": "cmVzdGFydA=="}),
    )
    .await;
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reap");
    // The premise of the test (not a statement about speed): the first server died before
    // `when`, so only the restarted one can have sent it.
    assert!(
        Timestamp::now().millis() < millis(&json!(when)),
        "the server was killed before `when`"
    );

    let server = start_with(dir.path(), &[]);
    let c = server.client.clone();
    let t = Target::new(c.clone(), server.http_addr(), server.http_addr());
    let mut wb = online(&t, &b).await;
    let f = delivered(&mut wb, "cmVzdGFydA==").await;
    assert_eq!(f["from"], a.uid.as_str());
    assert!(millis(&f["ts"]) >= millis(&json!(when)), "{f}");
    until_none_pending(&c, &a).await;
    let h = dm_history(&c, &b, &a).await;
    assert_eq!(h["total"], 1, "exactly once: {h}");
    stop(server);
}

// ---- two nodes on MySQL + Redis ---------------------------------------------------------------

/// Two nodes on one fresh MySQL database and one Redis; `None` (skipped, with a note) when the
/// variables are unset.
async fn two_nodes() -> Option<(TestServer, TestServer, backends::MysqlDb)> {
    let (mysql, redis) = backends::mysql_and_redis("MELO_TEST_REDIS_URL")?;
    let (db, store) = backends::MysqlDb::create(&mysql).await;
    let store: Arc<dyn Store> = store;
    let prefix = format!("melo-schedule-{}:", uuid::Uuid::now_v7().simple());
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let e = match RedisEphemeral::connect(&redis).await {
            Ok(e) => e,
            Err(e) => panic!("the Redis test URL is set but Redis is unreachable: {e}"),
        };
        let e: Arc<dyn Ephemeral> = Arc::new(e.with_prefix(&prefix));
        nodes.push(TestServer::start_node(test_config(), store.clone(), e).await);
    }
    let n2 = nodes.pop().expect("node 2");
    let n1 = nodes.pop().expect("node 1");
    Some((n1, n2, db))
}

/// Both nodes run their schedulers over one MySQL database: each of several schedules due at
/// the same moment is delivered exactly once (one history entry each, one delivery on the
/// recipient's socket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_deliver_each_schedule_exactly_once() {
    let Some((n1, n2, _db)) = two_nodes().await else {
        return;
    };
    let (t1, t2) = (Target::of(&n1), Target::of(&n2));
    let a = new_user(&t1.client, "Alice").await;
    let b = new_user(&t1.client, "Bob").await;
    make_contacts(&t1, &a, &b).await;
    let mut wb = online(&t2, &b).await;
    let when = at(2_000);
    let count = 12;
    for i in 0..count {
        let node = if i % 2 == 0 { &t1 } else { &t2 };
        schedule_ok(
            &node.client,
            &a,
            json!({"target_id": b.uid, "when": when, "data": format!("twice-{i}")}),
        )
        .await;
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..count {
        let f = wb
            .recv_where(
                "a scheduled delivery",
                |f| is(f, "relay_delivery"),
                GENEROUS,
            )
            .await;
        assert!(
            seen.insert(f["payload"].as_str().expect("payload").to_owned()),
            "delivered twice: {f}"
        );
    }
    until_none_pending(&t1.client, &a).await;
    let h = dm_history(&t1.client, &b, &a).await;
    assert_eq!(h["total"], count, "each stored once: {h}");
    wb.expect_no_frame("relay_delivery", t1.quiet).await;
    n1.stop().await;
    n2.stop().await;
}

/// The node that accepted the schedule is stopped before `when`: the other node sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_node_sends_when_the_accepting_node_is_gone() {
    let Some((n1, n2, _db)) = two_nodes().await else {
        return;
    };
    let (t1, t2) = (Target::of(&n1), Target::of(&n2));
    let a = new_user(&t2.client, "Alice").await;
    let b = new_user(&t2.client, "Bob").await;
    make_contacts(&t2, &a, &b).await;
    let when = at(2_500);
    schedule_ok(
        &t1.client,
        &a,
        json!({"target_id": b.uid, "when": when, "data": "b3JwaGFu"}),
    )
    .await;
    n1.stop().await;
    let mut wb = online(&t2, &b).await;
    let f = delivered(&mut wb, "b3JwaGFu").await;
    assert!(millis(&f["ts"]) >= millis(&json!(when)), "{f}");
    until_none_pending(&t2.client, &a).await;
    assert_eq!(dm_history(&t2.client, &b, &a).await["total"], 1);
    n2.stop().await;
}
