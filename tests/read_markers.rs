//! Read markers (`POST /status/read`, `messages_read`, `last_read_message_id` of
//! `GET /chats/list`) and typing over HTTP (`POST /status/typing`, `is_typing_in_chat`), over
//! real sockets: docs/read-markers-and-typing.md.
//!
//! The scenario runs in-process on the memory store; markers survive a restart on a SQLite file;
//! with `MELO_TEST_MYSQL_URL` set the scenario runs on a fresh MySQL database (and the restart
//! is checked there too), with `MELO_TEST_REDIS_URL` set as well on two nodes sharing Redis:
//! requests go to one node, sockets and status reads to the other. Set but unreachable fails.

// The fresh-database guard of the audit test; this file uses only part of it.
#[cfg(all(feature = "mysql", feature = "redis"))]
#[allow(dead_code, unreachable_pub)]
#[path = "zk_audit/backends.rs"]
mod backends;
mod common;

use common::read_markers::{
    add, assert_status_ok, marker_of, new_chat, read, read_frame, scenario, send_in,
};
use common::realtime::{make_contacts, online, Target};
use common::ws::is;
use common::{new_user, TestServer};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_markers_and_typing_in_process() {
    let s = TestServer::start().await;
    let t = Target::of(&s);
    scenario(&t, &t).await;
    s.stop().await;
}

/// A member reads, then the server restarts on the same database: the marker is still listed and
/// still only moves forward.
async fn marker_survives_restart(
    first: TestServer,
    reopen: impl std::future::Future<Output = TestServer>,
) {
    let t = Target::of(&first);
    let a = new_user(&t.client, "Ann").await;
    let b = new_user(&t.client, "Ben").await;
    make_contacts(&t, &a, &b).await;
    let k = new_chat(&t, &a, "Durable", "chat").await;
    add(&t, &a, k, &b).await;
    let m1 = send_in(&t, &a, k, "T25l").await;
    let m2 = send_in(&t, &a, k, "VHdv").await;
    assert_status_ok(&read(&t, &b, k, &m2).await);
    assert_eq!(marker_of(&t, &b, k).await, json!(m2));
    first.stop().await;

    let second = reopen.await;
    let t = Target::of(&second);
    assert_eq!(marker_of(&t, &b, k).await, json!(m2), "after the restart");
    let mut wa = online(&t, &a).await;
    assert_status_ok(&read(&t, &b, k, &m1).await);
    wa.expect_no("messages_read", |f| is(f, "messages_read"), t.quiet)
        .await;
    assert_eq!(marker_of(&t, &b, k).await, json!(m2), "still forward only");
    let m3 = send_in(&t, &a, k, "VGhyZWU=").await;
    assert_status_ok(&read(&t, &b, k, &m3).await);
    read_frame(&mut wa, &b, k, &m3).await;
    assert_eq!(marker_of(&t, &a, k).await, Value::Null);
    wa.close().await;
    second.stop().await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marker_survives_a_restart_on_sqlite() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("melo.db");
    let open = |path: std::path::PathBuf| async move {
        let store = melo::SqliteStore::open(&path).await.expect("open sqlite");
        TestServer::start_with(common::test_config(), Arc::new(store)).await
    };
    let first = open(path.clone()).await;
    marker_survives_restart(first, open(path)).await;
}

/// The scenario and the restart on MySQL; on two nodes sharing Redis when `MELO_TEST_REDIS_URL`
/// is set too.
#[cfg(all(feature = "mysql", feature = "redis"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_markers_and_typing_on_mysql_and_redis() {
    use std::sync::Arc;

    use melo::{Ephemeral, MysqlStore, Store};
    let Some(mysql) = backends::env_url("MELO_TEST_MYSQL_URL") else {
        eprintln!("MELO_TEST_MYSQL_URL is unset: skipping the MySQL run");
        return;
    };
    let (db, url) = backends::MysqlDb::create_empty(&mysql).await;
    let store = || async {
        let s = MysqlStore::connect(&url).await.expect("open MysqlStore");
        Arc::new(s) as Arc<dyn Store>
    };
    let shared = store().await;
    let mut _redis_keys = None;
    let (n1, n2) = match backends::env_url("MELO_TEST_REDIS_URL") {
        Some(redis) => {
            let (eph, keys) = backends::redis(&redis).await;
            _redis_keys = Some(keys);
            let eph: Arc<dyn Ephemeral> = eph;
            let config = common::test_config();
            (
                TestServer::start_node(config.clone(), shared.clone(), eph.clone()).await,
                Some(TestServer::start_node(config, shared.clone(), eph).await),
            )
        }
        None => {
            eprintln!("MELO_TEST_REDIS_URL is unset: one node on MySQL");
            (
                TestServer::start_with(common::test_config(), shared.clone()).await,
                None,
            )
        }
    };
    let t1 = Target::of(&n1);
    let t2 = n2.as_ref().map_or_else(|| t1.clone(), Target::of);
    scenario(&t1, &t2).await;
    if let Some(n2) = n2 {
        n2.stop().await;
    }
    n1.stop().await;
    drop(shared);

    let first = TestServer::start_with(common::test_config(), store().await).await;
    let reopen = async { TestServer::start_with(common::test_config(), store().await).await };
    marker_survives_restart(first, reopen).await;
    db.drop_database().await;
}
