use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::model::{
    Message, MessageId, NewMessage, QueueTarget, SessionId, StoreOutcome, Timestamp, UserId,
};
use crate::store::{MessageStore, StoreError};
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

/// Concurrent acks, several for one session (run one by one inside a batch) and single ones
/// of other sessions (run as one statement per kind): each entry is acked exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_acks_remove_each_entry_once() {
    use crate::model::AckSelector;
    use crate::store::QueueStore;

    let store = Arc::new(
        SqliteStore::connect("sqlite::memory:")
            .await
            .expect("sqlite"),
    );
    let mut ids = Vec::new();
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
        ids.push(msg.message.id);
    }
    let acks = [
        (50, AckSelector::UpTo(3)),
        (50, AckSelector::Seq(5)),
        (50, AckSelector::Message(ids[6])),
        (50, AckSelector::UpTo(2)),
        (51, AckSelector::UpTo(4)),
        (52, AckSelector::Seq(9)),
        (53, AckSelector::Message(ids[0])),
    ];
    let tasks: Vec<_> = acks
        .iter()
        .map(|&(s, sel)| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { (s, store.ack(SessionId(s), sel).await) })
        })
        .collect();
    let mut got: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for t in tasks {
        let (s, acked) = t.await.expect("task");
        for e in acked.expect("ack") {
            let seq = usize::try_from(e.seq - 1).expect("positive");
            assert_eq!(e.message_id, Some(ids[seq]));
            assert_eq!(e.self_copy, s == 53);
            got.entry(s).or_default().push(e.seq);
        }
    }
    for v in got.values_mut() {
        v.sort_unstable();
    }
    let want: BTreeMap<i64, Vec<i64>> = [
        (50, vec![1, 2, 3, 5, 7]),
        (51, vec![1, 2, 3, 4]),
        (52, vec![9]),
        (53, vec![1]),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want);
    for (s, left) in [(50, 5), (51, 6), (52, 9), (53, 9)] {
        let q = store
            .queue_after(SessionId(s), 0, None, 100)
            .await
            .expect("queue");
        assert_eq!(q.len(), left, "session {s}");
    }
}
