//! Sealed values are bound to their row (issue 15): a chat name, a permanent chat code, an
//! invite code or a queued event copied into another row does not open there; values sealed
//! for no row by older releases still open, and a data-key rotation rebinds them.

mod common;

use common::realtime::{connect, make_contacts, Target};
use common::{keys, new_user, TestServer};
use melo::crypto::Pii;
use melo::store::{RowKey, SealedTable, SealedUpdate};
use serde_json::json;

async fn create_chat(t: &Target, token: &str, name: &str) -> i64 {
    let r = t
        .client
        .post("/chats/create", Some(token), &json!({"name": name}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["chat_id"].as_i64().expect("chat id")
}

/// The sealed values of one column of `table`, by row key.
async fn column(s: &TestServer, table: SealedTable, name: &str) -> Vec<(RowKey, Vec<u8>)> {
    let at = table
        .columns()
        .iter()
        .position(|c| *c == name)
        .expect("column");
    let rows = s.store.sealed_rows(table, None, 1000).await.expect("rows");
    rows.into_iter()
        .filter_map(|r| r.values[at].clone().map(|v| (r.key, v)))
        .collect()
}

async fn listed_names(t: &Target, token: &str) -> Vec<String> {
    let r = t.client.get("/chats/list", Some(token)).await;
    r.body["chats"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_name_moved_to_another_row_does_not_open() {
    let s = TestServer::start().await;
    let t = Target::of(&s);
    let a = new_user(&t.client, "Alice").await;
    let m = new_user(&t.client, "Mallory").await;
    let a_chat = create_chat(&t, &a.token, "Alice's circle").await;
    let m_chat = create_chat(&t, &m.token, "Mallory's secret plans").await;
    let names = column(&s, SealedTable::Chats, "name").await;
    let value = |id: i64| {
        names
            .iter()
            .find(|(k, _)| *k == RowKey::Id(id))
            .map(|(_, v)| v.clone())
            .expect("sealed name")
    };
    // Someone with write access to the database swaps Mallory's sealed name into Alice's row.
    let update = SealedUpdate {
        key: RowKey::Id(a_chat),
        column: "name",
        old: value(a_chat),
        new: value(m_chat),
    };
    let applied = s
        .store
        .replace_sealed(SealedTable::Chats, &[update])
        .await
        .expect("replace");
    assert_eq!(applied, 1);
    let listed = listed_names(&t, &a.token).await;
    assert!(
        !listed.iter().any(|n| n == "Mallory's secret plans"),
        "a name sealed for chat {m_chat} opened in chat {a_chat}: {listed:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_unbound_values_open_and_a_rotation_rebinds_them() {
    let s = TestServer::start().await;
    let t = Target::of(&s);
    let a = new_user(&t.client, "Alice").await;
    let chat = create_chat(&t, &a.token, "Bound name").await;
    // As an older release wrote it: sealed for no row.
    let pii = Pii::new(keys());
    let legacy = pii
        .seal_str("chats", "name", "", "Old release name")
        .expect("seal");
    assert!(s
        .store
        .set_chat_name(chat, &legacy)
        .await
        .expect("set name"));
    assert_eq!(listed_names(&t, &a.token).await, ["Old release name"]);
    let report = melo::rekey::rotate(s.store.as_ref(), keys(), Default::default(), |_| {})
        .await
        .expect("rotate");
    let chats = report
        .tables
        .iter()
        .find(|r| r.table == "chats")
        .expect("chats report");
    assert_eq!(chats.rewritten, 1, "{chats:?}");
    let (_, stored) = column(&s, SealedTable::Chats, "name")
        .await
        .into_iter()
        .find(|(k, _)| *k == RowKey::Id(chat))
        .expect("row");
    assert!(
        pii.open("chats", "name", &chat.to_string(), &stored)
            .is_ok(),
        "rebound to its row"
    );
    assert!(pii.open("chats", "name", "", &stored).is_err());
    assert_eq!(listed_names(&t, &a.token).await, ["Old release name"]);
    s.stop().await;
}

/// A queued event sealed for one device's queue does not open when moved into another's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_events_are_bound_to_their_session() {
    let s = TestServer::start().await;
    let t = Target::of(&s);
    let a = new_user(&t.client, "Alice").await;
    let b = new_user(&t.client, "Bob").await;
    make_contacts(&t, &a, &b).await;
    let events = column(&s, SealedTable::QueueEvents, "event").await;
    let pii = Pii::new(keys());
    assert!(!events.is_empty(), "contact events are queued");
    for (key, sealed) in &events {
        let RowKey::Pair(session, _) = key else {
            panic!("queue key {key:?}")
        };
        assert!(pii
            .open("queue", "event", &session.to_string(), sealed)
            .is_ok());
        assert!(pii
            .open("queue", "event", &(session + 1).to_string(), sealed)
            .is_err());
        assert!(pii.open("queue", "event", "", sealed).is_err());
    }
    // Delivery opens them: A's queued `subscription_confirmed` is replayed.
    let (ws, sync) = connect(&t, &a).await;
    assert!(sync.count >= 1, "{sync:?}");
    ws.ack_and_close().await;
    s.stop().await;
}
