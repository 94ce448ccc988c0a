//! The group-commit writer of [`MysqlStore`] against `MELO_TEST_MYSQL_URL` (each case on a
//! fresh database; unset: the case prints a note and passes without running). [`one_batch`]
//! queues every operation before the writer starts, so they are drained as one batch.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use sqlx::MySqlPool;
use tokio::sync::{mpsc, oneshot};

use super::super::tests::fresh_store;
use super::{run, Op, Req, Resp};
use crate::model::{
    AckSelector, Message, MessageId, NewMessage, QueueTarget, SessionId, StoreOutcome, Timestamp,
    UserId,
};
use crate::store::{MessageStore, QueueStore, StoreError, StoreResult};
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
    run(pool.clone(), rx).await;
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

/// One batch mixing every kind: duplicates of a client_id inside the batch and of a committed
/// one, an id conflict, events, delivery flags asked twice, and acks of one session twice.
#[tokio::test]
async fn one_batch_decides_each_operation() {
    let Some(store) = fresh_store().await else {
        return;
    };
    let early = new_message(MessageId::new(), 1, Some("old"));
    let out = store.store_message(&early, &[target(10)]).await;
    assert_eq!(out.expect("store"), StoreOutcome::Stored(vec![1]));

    let (a, b, c) = (MessageId::new(), MessageId::new(), MessageId::new());
    let reqs = vec![
        Req::Store(new_message(a, 1, Some("x")), vec![target(10), target(11)]),
        Req::Store(new_message(b, 1, Some("x")), vec![target(10)]),
        Req::Store(new_message(c, 1, Some("old")), vec![target(10)]),
        Req::Store(new_message(a, 2, None), vec![target(10)]),
        Req::Enqueue(vec![(SessionId(11), Bytes::from_static(b"e"))]),
        Req::Delivered(vec![a, early.message.id]),
        Req::Delivered(vec![early.message.id]),
        Req::Ack(SessionId(10), AckSelector::Seq(1)),
        Req::Ack(SessionId(10), AckSelector::UpTo(2)),
        Req::Ack(SessionId(12), AckSelector::UpTo(5)),
    ];
    let out = one_batch(store.pool(), reqs).await;
    assert_eq!(stored(&out[0]), Some(&StoreOutcome::Stored(vec![2, 1])));
    assert_eq!(stored(&out[1]), Some(&StoreOutcome::Duplicate(a)));
    assert_eq!(
        stored(&out[2]),
        Some(&StoreOutcome::Duplicate(early.message.id))
    );
    assert!(matches!(out[3], Err(StoreError::Conflict("message_id"))));
    assert!(matches!(&out[4], Ok(Resp::Seqs(s)) if s == &vec![2]));
    assert!(matches!(&out[5], Ok(Resp::Delivered(d)) if d == &vec![a, early.message.id]));
    assert!(matches!(&out[6], Ok(Resp::Delivered(d)) if d.is_empty()));
    let seqs = |r: &StoreResult<Resp>| match r {
        Ok(Resp::Acked(e)) => e.iter().map(|e| e.seq).collect::<Vec<_>>(),
        _ => panic!("not an ack answer"),
    };
    assert_eq!(seqs(&out[7]), vec![1]);
    assert_eq!(seqs(&out[8]), vec![2]);
    assert!(seqs(&out[9]).is_empty());
    assert!(store
        .queue_after(SessionId(10), 0, None, 10)
        .await
        .expect("q")
        .is_empty());
    assert_eq!(store.last_seq(SessionId(11)).await.expect("last"), 2);
    assert!(store.message(b).await.expect("read").is_none());
}

/// An operation the database refuses (a client_id longer than its column) fails alone: the
/// rest of its batch is committed.
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
        Req::Enqueue(vec![(SessionId(10), Bytes::from_static(b"e"))]),
    ];
    let out = one_batch(store.pool(), reqs).await;
    assert_eq!(stored(&out[0]), Some(&StoreOutcome::Stored(vec![1])));
    assert!(out[1].is_err(), "the refused one fails");
    assert_eq!(stored(&out[2]), Some(&StoreOutcome::Stored(vec![2])));
    assert!(matches!(&out[3], Ok(Resp::Seqs(s)) if s == &vec![3]));
    assert!(store.message(a).await.expect("read").is_some());
    assert!(store.message(b).await.expect("read").is_none());
    assert_eq!(store.last_seq(SessionId(10)).await.expect("last"), 3);
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

/// Concurrent acks, several for one session and single ones of other sessions: each entry is
/// acked exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_acks_remove_each_entry_once() {
    let Some(store) = fresh_store().await else {
        return;
    };
    let mut ids = Vec::new();
    for i in 0..10 {
        let msg = new_message(MessageId::new(), 1, None);
        let targets: Vec<QueueTarget> = (50..54).map(target).collect();
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
        let q = store.queue_after(SessionId(s), 0, None, 100).await;
        assert_eq!(q.expect("queue").len(), left, "session {s}");
    }
}
