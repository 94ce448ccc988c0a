//! Conformance cases for queue expiry, overflow and history purge.

use std::sync::Arc;

use bytes::Bytes;

use super::messages::{acks, dm, dm_hist, ids, mid, queued, seqs, stored, to};
use super::{uid, Store};
use crate::model::{Gap, NewEntry, QueueItem, QueuedEntry, SessionId, StoreOutcome, Timestamp};

/// Queue times cannot be set from outside: cutoffs are "before everything" or "after everything
/// queued so far".
fn never() -> Timestamp {
    Timestamp::from_millis(0)
}

fn after_now() -> Timestamp {
    Timestamp::from_millis(Timestamp::now().millis() + 1)
}

/// The gap at the head of `entries`, checking its seq and that it was recorded within `window`.
fn gap_at(entries: &[QueuedEntry], seq: i64, window: (Timestamp, Timestamp)) -> Gap {
    match entries.first() {
        Some(QueuedEntry {
            seq: s,
            item: QueueItem::Gap(g),
        }) if *s == seq => {
            assert!(
                window.0 <= g.at && g.at <= window.1,
                "gap time {:?} outside {window:?}",
                g.at
            );
            *g
        }
        other => panic!("expected a gap at seq {seq}, got {other:?}"),
    }
}

async fn events(s: &Arc<dyn Store>, session: SessionId, n: usize) -> Vec<i64> {
    let ev = Bytes::from_static(b"event");
    s.enqueue(&vec![(session, NewEntry::Event(ev)); n])
        .await
        .expect("enqueue")
}

pub(crate) async fn queue_trim_overflow(s: Arc<dyn Store>) {
    let (a, b) = (21_000_001, 21_000_002);
    let (me, small) = (SessionId(1001), SessionId(1002));
    for n in 1..=5 {
        assert_eq!(
            stored(&s, &dm(n, a, b), &[to(1001, b, false)]).await,
            vec![i64::from(n)]
        );
    }
    assert_eq!(events(&s, me, 5).await, vec![6, 7, 8, 9, 10]);
    assert_eq!(events(&s, small, 4).await, vec![1, 2, 3, 4]);

    let t0 = Timestamp::now();
    assert_eq!(
        s.trim_queues(4, never()).await.expect("trim"),
        vec![(me, 7)],
        "a queue of max_len entries is left alone"
    );
    let q = queued(&s, me, 0, None, 100).await;
    assert_eq!(seqs(&q), vec![7, 8, 9, 10], "the gap counts toward max_len");
    let g = gap_at(&q, 7, (t0, Timestamp::now()));
    assert_eq!(
        (g.from_seq, g.count, g.overflow),
        (1, 7, true),
        "seqs 1..=7 dropped"
    );
    assert_eq!(
        seqs(&queued(&s, me, 6, Some(7), 100).await),
        vec![7],
        "the gap is an entry like any other"
    );
    assert_eq!(
        seqs(&queued(&s, small, 0, None, 100).await),
        vec![1, 2, 3, 4]
    );

    assert!(
        s.trim_queues(4, never()).await.expect("again").is_empty(),
        "nothing more to trim"
    );
    assert_eq!(
        queued(&s, me, 0, None, 100).await,
        q,
        "a no-op trim changes nothing"
    );

    assert_eq!(events(&s, me, 3).await, vec![11, 12, 13]);
    let t1 = Timestamp::now();
    assert_eq!(
        s.trim_queues(4, never()).await.expect("trim"),
        vec![(me, 10)]
    );
    let q = queued(&s, me, 0, None, 100).await;
    assert_eq!(seqs(&q), vec![10, 11, 12, 13]);
    let g = gap_at(&q, 10, (t1, Timestamp::now()));
    assert_eq!(
        (g.from_seq, g.count, g.overflow),
        (1, 7 + 3, true),
        "the old gap merges: its 7 plus entries 8, 9, 10"
    );
    assert_eq!(
        s.last_seq(me).await.expect("seq"),
        13,
        "seqs are never reused"
    );
    assert_eq!(events(&s, me, 1).await, vec![14]);

    s.ack(me, &acks(0, &[10]))
        .await
        .expect("a gap acks like an event");
    assert_eq!(
        seqs(&queued(&s, me, 0, None, 100).await),
        vec![11, 12, 13, 14]
    );
}

pub(crate) async fn queue_trim_expired(s: Arc<dyn Store>) {
    let (a, b) = (22_000_001, 22_000_002);
    let me = SessionId(1101);
    assert_eq!(events(&s, me, 3).await, vec![1, 2, 3]);
    assert_eq!(
        stored(&s, &dm(4, a, b), &[to(1101, b, false)]).await,
        vec![4]
    );
    let acked_all = SessionId(1102);
    assert_eq!(events(&s, acked_all, 2).await, vec![1, 2]);
    s.ack(acked_all, &acks(2, &[])).await.expect("ack");

    let t0 = Timestamp::now();
    assert_eq!(
        s.trim_queues(100, after_now()).await.expect("trim"),
        vec![(me, 4)],
        "an empty queue gets no gap"
    );
    let q = queued(&s, me, 0, None, 100).await;
    assert_eq!(seqs(&q), vec![4]);
    let g = gap_at(&q, 4, (t0, Timestamp::now()));
    assert_eq!((g.from_seq, g.count, g.overflow), (1, 4, false));

    assert!(
        s.trim_queues(100, after_now())
            .await
            .expect("again")
            .is_empty(),
        "a gap alone never expires"
    );
    assert_eq!(queued(&s, me, 0, None, 100).await, q);

    let t1 = Timestamp::now();
    assert_eq!(events(&s, me, 2).await, vec![5, 6]);
    assert!(
        s.trim_queues(100, t1).await.expect("trim").is_empty(),
        "entries queued at or after expire_before are kept, and the gap before them too"
    );
    let q = queued(&s, me, 0, None, 100).await;
    assert_eq!(seqs(&q), vec![4, 5, 6]);
    assert_eq!(gap_at(&q, 4, (t0, t1)), g);

    let t2 = Timestamp::now();
    assert_eq!(
        s.trim_queues(100, after_now()).await.expect("trim"),
        vec![(me, 6)]
    );
    let q = queued(&s, me, 0, None, 100).await;
    assert_eq!(seqs(&q), vec![6]);
    let g = gap_at(&q, 6, (t2, Timestamp::now()));
    assert_eq!(
        (g.from_seq, g.count, g.overflow),
        (1, 4 + 2, false),
        "the leading gap merges into the new one"
    );

    assert_eq!(events(&s, me, 1).await, vec![7]);
    assert_eq!(
        s.trim_queues(1, never()).await.expect("trim"),
        vec![(me, 7)],
        "past max_len, the gap itself is dropped and merged"
    );
    let q = queued(&s, me, 0, None, 100).await;
    let g = gap_at(&q, 7, (t2, Timestamp::now()));
    assert_eq!((g.from_seq, g.count, g.overflow), (1, 6 + 1, true));
    assert_eq!(s.last_seq(me).await.expect("seq"), 7);
}

pub(crate) async fn purge_messages_keeps_queued_and_forgets_client_ids(s: Arc<dyn Store>) {
    let (a, b) = (23_000_001, 23_000_002);
    let device = SessionId(1201);
    let with_cid = |n, cid: &str| {
        let mut m = dm(n, a, b);
        m.sender_session = SessionId(1211);
        m.client_id = Some(cid.into());
        m
    };
    let created = |n: i64| Timestamp::from_millis(1_700_000_000_000 + n);
    let target = [to(1201, b, false)];
    assert_eq!(stored(&s, &with_cid(1, "c-1"), &target).await, vec![1]);
    assert_eq!(stored(&s, &with_cid(2, "c-2"), &target).await, vec![2]);
    assert_eq!(stored(&s, &dm(3, a, b), &[]).await, Vec::<i64>::new());
    s.ack(device, &acks(0, &[2])).await.expect("ack");

    assert_eq!(
        s.purge_messages(created(3), never()).await.expect("purge"),
        1,
        "only the acked message older than the cutoff goes"
    );
    assert_eq!(s.message(mid(2)).await.expect("read"), None);
    assert!(
        s.message(mid(1)).await.expect("read").is_some(),
        "still queued"
    );
    assert!(
        s.message(mid(3)).await.expect("read").is_some(),
        "not older than history_before"
    );
    assert_eq!(
        ids(&dm_hist(&s, uid(a), uid(b), None, 0, 10).await),
        vec![mid(3), mid(1)]
    );
    assert_eq!(s.dm_count(uid(a), uid(b)).await.expect("count"), 2);
    let q = queued(&s, device, 0, None, 10).await;
    assert_eq!(seqs(&q), vec![1]);
    assert!(matches!(&q[0].item, QueueItem::Message { message, .. } if message.id == mid(1)));

    assert_eq!(
        s.purge_messages(after_now(), never()).await.expect("purge"),
        1,
        "the unqueued one goes once old enough"
    );
    assert_eq!(s.message(mid(3)).await.expect("read"), None);
    assert_eq!(
        s.store_message(&with_cid(10, "c-1"), &target)
            .await
            .expect("repeat"),
        StoreOutcome::Duplicate(mid(1)),
        "client_ids are kept until dedupe_before passes them"
    );
    assert_eq!(
        s.purge_messages(never(), created(1)).await.expect("purge"),
        0
    );
    assert_eq!(
        s.store_message(&with_cid(11, "c-1"), &target)
            .await
            .expect("repeat"),
        StoreOutcome::Duplicate(mid(1)),
        "dedupe_before is exclusive"
    );
    assert_eq!(
        s.purge_messages(never(), after_now()).await.expect("purge"),
        0
    );
    assert_eq!(
        stored(&s, &with_cid(12, "c-1"), &target).await,
        vec![3],
        "a forgotten client_id stores a new message"
    );
    assert!(s.message(mid(1)).await.expect("read").is_some());
    assert!(s.message(mid(12)).await.expect("read").is_some());
    assert_eq!(
        s.store_message(&with_cid(13, "c-1"), &target)
            .await
            .expect("repeat"),
        StoreOutcome::Duplicate(mid(12)),
        "and the new one is deduplicated again"
    );
}
