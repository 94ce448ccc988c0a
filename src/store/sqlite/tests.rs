use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::model::{
    Message, MessageId, NewMessage, QueueTarget, SessionId, StoreOutcome, Timestamp, UserId,
};
use crate::store::{DeliveryStore, MessageStore, StoreError};
use crate::SqliteStore;

fn uid(n: u32) -> UserId {
    UserId::new(10_000_000 + n).expect("valid uid")
}

/// 200 concurrent stores from 4 sender sessions to 3 target sessions (a session may be
/// targeted twice by one message), 3 in 4 with a client_id shared by 5: every session's seqs are
/// consecutive from 1, each (session, client_id) is stored once and the others are its
/// duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_stores_get_consecutive_seqs_and_duplicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(
        SqliteStore::open(dir.path().join("melo.db"))
            .await
            .expect("sqlite"),
    );
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let sender = SessionId(i64::from(i % 4) + 1);
            let cid = (i % 4 != 3).then(|| format!("c{}", i % 40));
            let targets: Vec<QueueTarget> = [10, 11, 10 + i64::from(i % 3)]
                .iter()
                .map(|&s| QueueTarget {
                    session: SessionId(s),
                    user: uid(2),
                    self_copy: false,
                })
                .collect();
            let msg = NewMessage {
                message: Message {
                    id: MessageId::new(),
                    from: uid(1),
                    to: Some(uid(2)),
                    chat_id: None,
                    payload: format!("payload \"{i}\" \u{e9}"),
                    signature: None,
                    created_at: Timestamp::now(),
                    delivered: false,
                    read: false,
                    edited_at: None,
                    deleted: false,
                    pinned: false,
                    reactions: Default::default(),
                },
                sender_session: sender,
                client_id: cid.clone(),
            };
            let out = store.store_message(&msg, &targets).await;
            (sender, cid, msg.message.id, targets, out)
        }));
    }
    let mut per_session: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let mut stored: HashMap<(SessionId, String), MessageId> = HashMap::new();
    let mut dups: Vec<((SessionId, String), MessageId)> = Vec::new();
    let mut n_stored = 0;
    for t in tasks {
        let (sender, cid, id, targets, out) = t.await.expect("task");
        match out.expect("store") {
            StoreOutcome::Stored(seqs) => {
                n_stored += 1;
                assert_eq!(seqs.len(), targets.len());
                for (t, s) in targets.iter().zip(seqs) {
                    per_session.entry(t.session.0).or_default().push(s);
                }
                if let Some(c) = cid {
                    assert!(stored.insert((sender, c), id).is_none(), "stored twice");
                }
                let back = store.message(id).await.expect("read");
                assert!(back.is_some_and(|m| m.payload.starts_with("payload")));
            }
            StoreOutcome::Duplicate(first) => {
                dups.push(((sender, cid.expect("only client_ids duplicate")), first));
            }
        }
    }
    for (key, first) in &dups {
        assert_eq!(stored.get(key), Some(first), "duplicate of the stored one");
    }
    // Keys (i % 4, i % 40) for i % 4 != 3: 30 keys, each used 5 times.
    assert_eq!(n_stored + dups.len(), 200);
    assert_eq!(dups.len(), 120);
    for (session, mut seqs) in per_session {
        seqs.sort_unstable();
        let expect: Vec<i64> = (1..=i64::try_from(seqs.len()).expect("small")).collect();
        assert_eq!(seqs, expect, "session {session}");
    }
    // The same message id again is a conflict, not a duplicate.
    let again = NewMessage {
        message: store
            .message(*stored.values().next().expect("one stored"))
            .await
            .expect("read")
            .expect("exists"),
        sender_session: SessionId(99),
        client_id: None,
    };
    assert!(matches!(
        store.store_message(&again, &[]).await,
        Err(StoreError::Conflict("message_id"))
    ));
}

/// Concurrent acknowledgements of several sessions, some acknowledging the same entries twice:
/// each entry is removed once, the others stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_acks_remove_what_they_name() {
    use crate::model::Acks;

    let store = Arc::new(
        SqliteStore::connect("sqlite::memory:")
            .await
            .expect("sqlite"),
    );
    for i in 0..10 {
        let msg = NewMessage {
            message: Message {
                id: MessageId::new(),
                from: uid(1),
                to: Some(uid(2)),
                chat_id: None,
                payload: format!("m{i}"),
                signature: None,
                created_at: Timestamp::now(),
                delivered: false,
                read: false,
                edited_at: None,
                deleted: false,
                pinned: false,
                reactions: Default::default(),
            },
            sender_session: SessionId(1),
            client_id: None,
        };
        let targets: Vec<QueueTarget> = (50..54)
            .map(|s| QueueTarget {
                session: SessionId(s),
                user: uid(2),
                self_copy: s == 53,
            })
            .collect();
        let out = store.store_message(&msg, &targets).await.expect("store");
        assert_eq!(out, StoreOutcome::Stored(vec![i + 1; 4]));
    }
    let ack = |upto, seqs: &[i64]| Acks {
        upto,
        seqs: seqs.to_vec(),
        ..Acks::default()
    };
    let acks = [
        (50, ack(3, &[])),
        (50, ack(0, &[5, 7])),
        (50, ack(2, &[5])),
        (51, ack(4, &[])),
        (52, ack(0, &[9])),
        (53, ack(0, &[1])),
    ];
    let tasks: Vec<_> = acks
        .into_iter()
        .map(|(s, a)| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.ack(SessionId(s), &a).await })
        })
        .collect();
    for t in tasks {
        assert!(t.await.expect("task").expect("ack").is_empty());
    }
    for (s, left) in [
        (50, vec![4, 6, 8, 9, 10]),
        (51, vec![5, 6, 7, 8, 9, 10]),
        (52, vec![1, 2, 3, 4, 5, 6, 7, 8, 10]),
        (53, vec![2, 3, 4, 5, 6, 7, 8, 9, 10]),
    ] {
        let q = store
            .queue_after(SessionId(s), 0, None, 100, u64::MAX)
            .await
            .expect("queue");
        let seqs: Vec<i64> = q.entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, left, "session {s}");
    }
}

/// The plan SQLite picks for `sql`, with integer parameters `1..=params` bound.
async fn plan(s: &SqliteStore, sql: &str, params: i64) -> String {
    let explain = format!("EXPLAIN QUERY PLAN {sql}");
    s.db.read(move |c| {
        let mut st = c.prepare(&explain).map_err(super::db::be)?;
        let rows = st
            .query_map(rusqlite::params_from_iter(1..=params), |r| {
                r.get::<_, String>(3)
            })
            .map_err(super::db::be)?;
        let lines = rows.collect::<Result<Vec<_>, _>>().map_err(super::db::be)?;
        Ok(lines.join("\n"))
    })
    .await
    .expect("plan")
}

/// The per-user and per-chat lookups seek an index; none scans a whole table.
#[tokio::test]
async fn lookups_use_indexes() {
    let s = SqliteStore::connect("sqlite::memory:")
        .await
        .expect("sqlite");
    let chats_of = plan(&s, &super::chats::chats_of_sql(), 3).await;
    assert!(chats_of.contains("chat_members_uid"), "{chats_of}");
    assert!(!chats_of.contains("SCAN"), "{chats_of}");
    let count = plan(&s, "SELECT COUNT(*) FROM chat_members WHERE uid = ?", 1).await;
    assert!(count.contains("chat_members_uid"), "{count}");
    let ids = plan(&s, super::chats::MEMBER_IDS, 1).await;
    assert!(ids.contains("PRIMARY KEY (chat_id=?)"), "{ids}");
    let share = plan(&s, super::chats::SHARE_CHAT, 2).await;
    assert!(
        share.contains("USING COVERING INDEX chat_members_uid"),
        "{share}"
    );
    assert!(
        share.contains("PRIMARY KEY (chat_id=? AND uid=?)"),
        "{share}"
    );
    assert!(
        !share.contains("SCAN x") && !share.contains("SCAN y"),
        "{share}"
    );
}

/// A database migrated by an earlier release keeps its data, and its receipts column exists.
#[tokio::test]
async fn reopening_keeps_data_and_migrations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("melo.db");
    {
        let s = SqliteStore::open(&path).await.expect("open");
        assert_eq!(s.last_seq(SessionId(5)).await.expect("seq"), 0);
        let e = crate::model::NewEntry::Status(bytes::Bytes::from_static(b"r"));
        assert_eq!(s.enqueue(&[(SessionId(5), e)]).await.expect("q"), vec![1]);
    }
    let s = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("reopen");
    assert_eq!(s.last_seq(SessionId(5)).await.expect("seq"), 1);
}

crate::store::conformance::store_conformance!(sqlite_memory, async {
    std::sync::Arc::new(
        crate::SqliteStore::connect("sqlite::memory:")
            .await
            .expect("sqlite"),
    )
});

crate::store::conformance::store_conformance!(sqlite_file, async {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = crate::SqliteStore::open(dir.path().join("melo.db"))
        .await
        .expect("sqlite");
    // Keep the directory for the life of the test process; the OS cleans /tmp.
    std::mem::forget(dir);
    std::sync::Arc::new(store)
});

/// The checkpointer copies the WAL back into the database by itself: after a burst of writes
/// (far below the writer's own automatic checkpoint) and a pause, the database file holds them.
#[tokio::test]
async fn the_checkpointer_copies_the_wal_into_the_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("melo.db");
    let s = SqliteStore::open(&path).await.expect("open");
    let before = std::fs::metadata(&path).expect("db file").len();
    for i in 0..200u8 {
        let e = crate::model::NewEntry::Event(bytes::Bytes::from(vec![i; 2000]));
        s.enqueue(&[(SessionId(1 + i64::from(i % 7)), e)])
            .await
            .expect("write");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let size = std::fs::metadata(&path).expect("db file").len();
        if size >= before + 200 * 2000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the database file stayed at {size} bytes: nothing was checkpointed"
        );
        tokio::time::sleep(super::db::CHECKPOINT_EVERY).await;
    }
}
