//! The group-commit writer of [`MysqlStore`] against `MELO_TEST_MYSQL_URL` (each case on a
//! fresh database; unset: the case prints a note and passes without running). [`one_batch`]
//! queues every operation before the writer starts, so they are drained as one batch.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use sqlx::MySqlPool;
use tokio::sync::{mpsc, oneshot};

use super::tests::fresh_store;
use super::writer::{run, Op, Req, Resp};
use crate::model::{
    Acks, Message, MessageId, NewEntry, NewMessage, QueueItem, QueueTarget, SessionId,
    StoreOutcome, Timestamp, UserId,
};
use crate::store::{DeliveryStore, MessageStore, StoreError, StoreResult};
use crate::MysqlStore;

fn uid(n: u32) -> UserId {
    UserId::new(10_000_000 + n).expect("valid uid")
}

fn new_message(id: MessageId, sender: i64, client_id: Option<&str>) -> NewMessage {
    NewMessage {
        message: Message {
            id,
            from: uid(1),
            to: Some(uid(2)),
            chat_id: None,
            payload: format!("payload {id} \u{e9}"),
            signature: None,
            created_at: Timestamp::now(),
            delivered: false,
            read: false,
            edited_at: None,
            deleted: false,
            pinned: false,
            reactions: Default::default(),
        },
        sender_session: SessionId(sender),
        client_id: client_id.map(str::to_owned),
    }
}

fn target(session: i64) -> QueueTarget {
    QueueTarget {
        session: SessionId(session),
        user: uid(2),
        self_copy: false,
    }
}

/// Runs `reqs` through a writer as one batch; the answers in order.
async fn one_batch(pool: &MySqlPool, reqs: Vec<Req>) -> Vec<StoreResult<Resp>> {
    let (tx, rx) = mpsc::channel(reqs.len());
    let mut answers = Vec::new();
    for req in reqs {
        let (reply, answer) = oneshot::channel();
        tx.try_send(Op { req, reply }).expect("room for the batch");
        answers.push(answer);
    }
    drop(tx);
    run(
        pool.clone(),
        std::sync::Arc::new(tokio::sync::Mutex::new(rx)),
    )
    .await;
    let mut out = Vec::new();
    for a in answers {
        out.push(a.await.expect("answered"));
    }
    out
}

fn stored(r: &StoreResult<Resp>) -> Option<&StoreOutcome> {
    match r {
        Ok(Resp::Store(o)) => Some(o),
        _ => None,
    }
}

fn seqs_of(r: &StoreResult<Resp>) -> Option<&Vec<i64>> {
    match r {
        Ok(Resp::Seqs(s)) => Some(s),
        _ => None,
    }
}

/// The seqs queued for `session`.
async fn queued(store: &MysqlStore, session: i64) -> Vec<i64> {
    let rows = store.queue_after(SessionId(session), 0, None, 1000, u64::MAX);
    rows.await
        .expect("queue")
        .entries
        .iter()
        .map(|e| e.seq)
        .collect()
}

fn status(body: &'static [u8]) -> NewEntry {
    NewEntry::Status(Bytes::from_static(body))
}

/// One batch mixing every kind: duplicates of a client_id inside the batch and of a committed
/// one, an id conflict, events and receipts, delivery flags asked twice, and acks of one
/// session twice (ranges that overlap) with receipts to a session the batch also stores to.
#[tokio::test]
async fn one_batch_decides_each_operation() {
    let Some(store) = fresh_store().await else {
        return;
    };
    let early = new_message(MessageId::new(), 1, Some("old"));
    let out = store.store_message(&early, &[target(10)]).await;
    assert_eq!(out.expect("store"), StoreOutcome::Stored(vec![1]));
    for _ in 0..4 {
        let e = [(SessionId(12), NewEntry::Event(Bytes::from_static(b"e")))];
        store.enqueue(&e).await.expect("enqueue");
    }

    let (a, b, c) = (MessageId::new(), MessageId::new(), MessageId::new());
    let ack = |upto, seqs: &[i64], receipts: Vec<(SessionId, NewEntry)>, delivered| Acks {
        upto,
        seqs: seqs.to_vec(),
        receipts,
        delivered,
    };
    let reqs = vec![
        Req::Store(new_message(a, 1, Some("x")), vec![target(10), target(11)]),
        Req::Store(new_message(b, 1, Some("x")), vec![target(10)]),
        Req::Store(new_message(c, 1, Some("old")), vec![target(10)]),
        Req::Store(new_message(a, 2, None), vec![target(10)]),
        Req::Enqueue(vec![
            (SessionId(11), NewEntry::Event(Bytes::from_static(b"e"))),
            (SessionId(11), status(b"s")),
        ]),
        Req::Ack(
            SessionId(12),
            ack(
                1,
                &[3],
                vec![(SessionId(10), status(b"r1"))],
                vec![a, early.message.id],
            ),
        ),
        Req::Ack(
            SessionId(12),
            ack(
                2,
                &[],
                vec![(SessionId(11), status(b"r2"))],
                vec![early.message.id],
            ),
        ),
        Req::Ack(SessionId(13), ack(5, &[7], vec![], vec![])),
    ];
    let out = one_batch(store.pool(), reqs).await;
    assert_eq!(stored(&out[0]), Some(&StoreOutcome::Stored(vec![2, 1])));
    assert_eq!(stored(&out[1]), Some(&StoreOutcome::Duplicate(a)));
    assert_eq!(
        stored(&out[2]),
        Some(&StoreOutcome::Duplicate(early.message.id))
    );
    assert!(matches!(out[3], Err(StoreError::Conflict("message_id"))));
    assert_eq!(seqs_of(&out[4]), Some(&vec![2, 3]));
    assert_eq!(
        seqs_of(&out[5]),
        Some(&vec![3]),
        "after the stored copy at 2"
    );
    assert_eq!(seqs_of(&out[6]), Some(&vec![4]));
    assert_eq!(seqs_of(&out[7]), Some(&vec![]));
    assert_eq!(queued(&store, 12).await, vec![4]);
    assert_eq!(queued(&store, 10).await, vec![1, 2, 3]);
    let q = store.queue_after(SessionId(11), 0, None, 10, u64::MAX);
    let items: Vec<QueueItem> = q
        .await
        .expect("q")
        .entries
        .into_iter()
        .map(|e| e.item)
        .collect();
    assert!(matches!(&items[0], QueueItem::Message { message, .. } if message.id == a));
    assert_eq!(items[1], QueueItem::Event(Bytes::from_static(b"e")));
    assert_eq!(items[2], QueueItem::Status(Bytes::from_static(b"s")));
    assert_eq!(items[3], QueueItem::Status(Bytes::from_static(b"r2")));
    for id in [a, early.message.id] {
        let m = store.message(id).await.expect("read").expect("exists");
        assert!(m.delivered, "{id} flagged");
    }
    assert!(store.message(b).await.expect("read").is_none());
}

/// Operations the database refuses (a client_id longer than its column, a receipt longer than
/// its column) fail alone: the rest of their batch is committed.
#[tokio::test]
async fn a_failing_operation_does_not_fail_its_batch() {
    let Some(store) = fresh_store().await else {
        return;
    };
    let long = "c".repeat(300);
    let (a, b, c) = (MessageId::new(), MessageId::new(), MessageId::new());
    let reqs = vec![
        Req::Store(new_message(a, 1, Some("ok")), vec![target(10)]),
        Req::Store(new_message(b, 1, Some(&long)), vec![target(10)]),
        Req::Store(new_message(c, 1, None), vec![target(10)]),
        Req::Enqueue(vec![(
            SessionId(10),
            NewEntry::Event(Bytes::from_static(b"e")),
        )]),
        Req::Enqueue(vec![(
            SessionId(10),
            NewEntry::Status(Bytes::from(vec![1u8; 300])),
        )]),
        Req::Ack(
            SessionId(11),
            Acks {
                upto: 0,
                seqs: vec![],
                receipts: vec![(SessionId(10), status(b"r"))],
                delivered: vec![a],
            },
        ),
    ];
    let out = one_batch(store.pool(), reqs).await;
    assert_eq!(stored(&out[0]), Some(&StoreOutcome::Stored(vec![1])));
    assert!(out[1].is_err(), "the refused message fails");
    assert_eq!(stored(&out[2]), Some(&StoreOutcome::Stored(vec![2])));
    assert_eq!(seqs_of(&out[3]), Some(&vec![3]));
    assert!(out[4].is_err(), "the refused receipt fails");
    assert_eq!(seqs_of(&out[5]), Some(&vec![4]));
    assert!(store.message(a).await.expect("read").expect("a").delivered);
    assert!(store.message(b).await.expect("read").is_none());
    assert_eq!(store.last_seq(SessionId(10)).await.expect("last"), 4);
    assert_eq!(queued(&store, 10).await, vec![1, 2, 3, 4]);
}

/// 200 concurrent stores from 4 sender sessions to 3 target sessions (a session may be
/// targeted twice by one message), 3 in 4 with a client_id shared by 5: every session's seqs are
/// consecutive from 1, each (session, client_id) is stored once and the others are duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_stores_get_consecutive_seqs_and_duplicates() {
    let Some(store) = fresh_store().await else {
        return;
    };
    let tasks: Vec<_> = (0..200u32)
        .map(|i| {
            let store: Arc<MysqlStore> = Arc::clone(&store);
            tokio::spawn(async move {
                let sender = i64::from(i % 4) + 1;
                let cid = (i % 4 != 3).then(|| format!("c{}", i % 40));
                let targets: Vec<QueueTarget> =
                    [10, 11, 10 + i64::from(i % 3)].map(target).to_vec();
                let msg = new_message(MessageId::new(), sender, cid.as_deref());
                let out = store.store_message(&msg, &targets).await;
                (sender, cid, msg.message.id, targets, out)
            })
        })
        .collect();
    let mut per_session: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let mut first: HashMap<(i64, String), MessageId> = HashMap::new();
    let mut dups = Vec::new();
    for t in tasks {
        let (sender, cid, id, targets, out) = t.await.expect("task");
        match out.expect("store") {
            StoreOutcome::Stored(seqs) => {
                assert_eq!(seqs.len(), targets.len());
                for (t, s) in targets.iter().zip(seqs) {
                    per_session.entry(t.session.0).or_default().push(s);
                }
                if let Some(c) = cid {
                    assert!(first.insert((sender, c), id).is_none(), "stored twice");
                }
            }
            StoreOutcome::Duplicate(of) => dups.push(((sender, cid.expect("cid")), of)),
        }
    }
    assert_eq!(dups.len(), 120);
    for (key, of) in &dups {
        assert_eq!(first.get(key), Some(of), "duplicate of the stored one");
    }
    for (session, mut seqs) in per_session {
        seqs.sort_unstable();
        let want: Vec<i64> = (1..=i64::try_from(seqs.len()).expect("small")).collect();
        assert_eq!(seqs, want, "session {session}");
    }
}

/// Concurrent acks, several for one session, with receipts to one shared session: each entry
/// is removed exactly when acknowledged, and the receipts' seqs are gap-free.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_acks_with_receipts() {
    let Some(store) = fresh_store().await else {
        return;
    };
    for i in 0..10 {
        let msg = new_message(MessageId::new(), 1, None);
        let targets: Vec<QueueTarget> = (50..54).map(target).collect();
        let out = store.store_message(&msg, &targets).await.expect("store");
        assert_eq!(out, StoreOutcome::Stored(vec![i + 1; 4]));
    }
    let acks: [(i64, i64, &[i64]); 7] = [
        (50, 3, &[]),
        (50, 0, &[5]),
        (50, 0, &[7, 8]),
        (50, 2, &[]),
        (51, 4, &[6]),
        (52, 0, &[9]),
        (53, 0, &[1, 10]),
    ];
    let tasks: Vec<_> = acks
        .iter()
        .map(|&(s, upto, seqs)| {
            let store = Arc::clone(&store);
            let acks = Acks {
                upto,
                seqs: seqs.to_vec(),
                receipts: vec![(SessionId(60), status(b"r")), (SessionId(60), status(b"r"))],
                delivered: vec![],
            };
            tokio::spawn(async move { store.ack(SessionId(s), &acks).await })
        })
        .collect();
    let mut receipts = Vec::new();
    for t in tasks {
        let seqs = t.await.expect("task").expect("ack");
        assert_eq!(seqs.len(), 2);
        assert_eq!(seqs[1], seqs[0] + 1, "one ack's receipts are consecutive");
        receipts.extend(seqs);
    }
    receipts.sort_unstable();
    assert_eq!(receipts, (1..=14).collect::<Vec<_>>());
    let want: BTreeMap<i64, Vec<i64>> = [
        (50, vec![4, 6, 9, 10]),
        (51, vec![5, 7, 8, 9, 10]),
        (52, vec![1, 2, 3, 4, 5, 6, 7, 8, 10]),
        (53, vec![2, 3, 4, 5, 6, 7, 8, 9]),
    ]
    .into_iter()
    .collect();
    for (s, left) in want {
        assert_eq!(queued(&store, s).await, left, "session {s}");
    }
}
