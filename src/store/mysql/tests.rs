//! Conformance of [`MysqlStore`] against the server named by `MELO_TEST_MYSQL_URL` (e.g.
//! `mysql://root@127.0.0.1:3306/test`), each case in a database of its own (`melo_t_…`), created
//! for it and dropped after it. Unset: every case prints a note and passes without running. Set:
//! any failure, an unreachable server included, fails the case.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{ConnectOptions, Connection};

use super::MysqlStore;
use crate::model::{
    Message, MessageId, NewEntry, NewMessage, QueueTarget, SessionId, StoreOutcome, Timestamp,
    UserId,
};
use crate::store::{DeliveryStore, MessageStore, QueueStore};

/// Name prefix of test databases.
const PREFIX: &str = "melo_t_";

/// Test databases older than this (left by a killed run) are dropped by the next run.
const STALE_SECS: u64 = 3600;

/// A test database, dropped with the last store using it.
#[derive(Debug)]
pub(super) struct TestDb {
    admin: MySqlConnectOptions,
    name: String,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = std::mem::take(&mut self.name);
        // This runs inside the test's runtime: block on a thread and runtime of its own.
        let dropped = std::thread::spawn(move || -> anyhow::Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let mut conn = admin.connect().await?;
                // The store's connections may still be open, even inside a transaction whose
                // ROLLBACK waits for a pool task this blocked runtime cannot run: end them, or
                // DROP DATABASE waits on their metadata locks.
                let ids: Vec<i64> = sqlx::query_scalar(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? \
                     AND ID != CONNECTION_ID()",
                )
                .bind(&name)
                .fetch_all(&mut conn)
                .await?;
                for id in ids {
                    // Gone meanwhile is fine.
                    let _ = sqlx::query(&format!("KILL {id}")).execute(&mut conn).await;
                }
                sqlx::query("SET SESSION lock_wait_timeout = 30")
                    .execute(&mut conn)
                    .await?;
                drop_database(&mut conn, &name).await?;
                conn.close().await?;
                Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop a MySQL test database: {dropped:?}");
        }
    }
}

async fn drop_database(conn: &mut MySqlConnection, name: &str) -> sqlx::Result<()> {
    sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
        .execute(conn)
        .await
        .map(|_| ())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Drops the test databases of earlier runs that are older than [`STALE_SECS`].
async fn sweep_stale(conn: &mut MySqlConnection) {
    let names: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'melo\\_t\\_%'",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("list test databases");
    for name in names {
        let name = String::from_utf8_lossy(&name).into_owned();
        let created = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|c| c + STALE_SECS < now_secs()) {
            drop_database(conn, &name)
                .await
                .expect("drop stale test database");
        }
    }
}

/// A store on a fresh database, or `None` (after a note) when `MELO_TEST_MYSQL_URL` is unset.
pub(super) async fn fresh_store() -> Option<Arc<MysqlStore>> {
    let Ok(url) = std::env::var("MELO_TEST_MYSQL_URL") else {
        eprintln!("MELO_TEST_MYSQL_URL is unset: MySQL conformance case not run");
        return None;
    };
    let url = url.replacen("mariadb:", "mysql:", 1);
    let admin = MySqlConnectOptions::from_str(&url).expect("parse MELO_TEST_MYSQL_URL");
    let mut conn = admin
        .connect()
        .await
        .expect("connect to MELO_TEST_MYSQL_URL");
    sweep_stale(&mut conn).await;
    let name = format!("{PREFIX}{}_{:016x}", now_secs(), rand::random::<u64>());
    sqlx::query(&format!(
        "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    ))
    .execute(&mut conn)
    .await
    .expect("create test database");
    conn.close().await.expect("close admin connection");
    let guard = Arc::new(TestDb {
        admin: admin.clone(),
        name: name.clone(),
    });
    let mut store = MysqlStore::connect_with(admin.database(&name))
        .await
        .expect("open MysqlStore on the test database");
    store._test_db = Some(guard);
    Some(Arc::new(store))
}

crate::store::conformance::store_conformance!(mysql, async { super::fresh_store().await });

/// Fan-outs over overlapping sessions, listed in different orders, from several threads: every
/// session's seqs stay gap-free (lock ordering and the deadlock retries under real parallelism).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_fan_outs_stay_gap_free() {
    let Some(store) = fresh_store().await else {
        return;
    };
    let sessions: Vec<SessionId> = (1..=6).map(SessionId).collect();
    let tasks: Vec<_> = (0..40usize)
        .map(|n| {
            let store = Arc::clone(&store);
            let mut targets = sessions.clone();
            targets.rotate_left(n % 6);
            if n % 2 == 1 {
                targets.reverse();
            }
            tokio::spawn(async move {
                let events: Vec<_> = targets
                    .iter()
                    .map(|t| (*t, NewEntry::Event(Bytes::from_static(b"event"))))
                    .collect();
                store.enqueue(&events).await.expect("enqueue")
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task").len(), 6);
    }
    for s in sessions {
        let q = store.queue_after(s, 0, None, 100, u64::MAX);
        let seqs: Vec<i64> = q
            .await
            .expect("queue")
            .entries
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, (1..=40).collect::<Vec<_>>(), "session {s:?}");
        assert_eq!(store.last_seq(s).await.expect("last"), 40);
    }
}

/// The same `client_id` sent from several threads at once: one message is stored, every other
/// send is its duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_duplicate_client_ids() {
    let Some(store) = fresh_store().await else {
        return;
    };
    let tasks: Vec<_> = (1..=12u8)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let msg = NewMessage {
                    message: Message {
                        id: MessageId::from_u128(u128::from(n)),
                        from: UserId::new(11_000_001).expect("uid"),
                        to: UserId::new(11_000_002),
                        chat_id: None,
                        payload: format!("ciphertext-{n}"),
                        signature: None,
                        created_at: Timestamp::now(),
                        delivered: false,
                        read: false,
                        edited_at: None,
                        deleted: false,
                        pinned: false,
                        reactions: Default::default(),
                    },
                    sender_session: SessionId(7),
                    client_id: Some("same-client-id".into()),
                };
                let target = QueueTarget {
                    session: SessionId(8),
                    user: msg.message.to.expect("to"),
                    self_copy: false,
                };
                (
                    n,
                    store.store_message(&msg, &[target]).await.expect("store"),
                )
            })
        })
        .collect();
    let mut stored = Vec::new();
    let mut duplicates = Vec::new();
    for t in tasks {
        match t.await.expect("task") {
            (n, StoreOutcome::Stored(seqs)) => stored.push((n, seqs)),
            (_, StoreOutcome::Duplicate(first)) => duplicates.push(first),
        }
    }
    assert_eq!(stored.len(), 1, "{stored:?}");
    let (winner, seqs) = &stored[0];
    assert_eq!(seqs, &vec![1]);
    let first = MessageId::from_u128(u128::from(*winner));
    assert_eq!(duplicates, vec![first; 11]);
    assert_eq!(store.last_seq(SessionId(8)).await.expect("last"), 1);
}

/// The purge pages through more old messages than one page holds (with ties on `created_at`
/// across page ends) and keeps the queued ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_pages_and_keeps_queued_messages() {
    let Some(store) = fresh_store().await else {
        return;
    };
    let tasks: Vec<_> = (0..2_100u32)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let msg = NewMessage {
                    message: Message {
                        id: MessageId::from_u128(u128::from(n) + 1),
                        from: UserId::new(11_000_001).expect("uid"),
                        to: UserId::new(11_000_002),
                        chat_id: None,
                        payload: format!("old-{n}"),
                        signature: None,
                        created_at: Timestamp::from_millis(1_000 + i64::from(n / 3)),
                        delivered: false,
                        read: false,
                        edited_at: None,
                        deleted: false,
                        pinned: false,
                        reactions: Default::default(),
                    },
                    sender_session: SessionId(7),
                    client_id: None,
                };
                // Three of them stay queued (one at each end of a page and the last).
                let targets: Vec<QueueTarget> = [0, 999, 1_000, 2_099]
                    .contains(&n)
                    .then_some(QueueTarget {
                        session: SessionId(8),
                        user: msg.message.to.expect("to"),
                        self_copy: false,
                    })
                    .into_iter()
                    .collect();
                store.store_message(&msg, &targets).await.expect("store");
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let at = Timestamp::from_millis(1_000_000);
    assert_eq!(store.purge_messages(at, at).await.expect("purge"), 2_096);
    for n in [0u128, 999, 1_000, 2_099] {
        let kept = store
            .message(MessageId::from_u128(n + 1))
            .await
            .expect("read");
        assert!(kept.is_some(), "queued message {n} kept");
    }
    assert!(store
        .message(MessageId::from_u128(2))
        .await
        .expect("read")
        .is_none());
    assert_eq!(store.purge_messages(at, at).await.expect("again"), 0);
}
