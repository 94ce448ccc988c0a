//! Conformance cases for messages and device queues ([`MessageStore`](crate::store::MessageStore),
//! [`QueueStore`](crate::store::QueueStore)).

use std::sync::Arc;

use bytes::Bytes;

use super::{uid, Store};
use crate::model::{
    AckSelector, AckedEntry, Message, MessageId, NewMessage, QueueItem, QueueTarget, QueuedEntry,
    SessionId, StoreOutcome, Timestamp,
};

/// Message `n`. High and low bytes move in opposite directions, so a backend that does not keep
/// the id's numeric order (a little-endian key, say) sorts them wrongly.
pub(super) fn mid(n: u8) -> MessageId {
    MessageId::from_u128((u128::from(n) << 120) | u128::from(u8::MAX - n))
}

/// DM `n` from `from` to `to`, sent by session 900 without a client id.
pub(super) fn dm(n: u8, from: u32, to: u32) -> NewMessage {
    NewMessage {
        message: Message {
            id: mid(n),
            from: uid(from),
            to: Some(uid(to)),
            chat_id: None,
            payload: format!("ciphertext-{n}"),
            signature: Some(format!("sig-{n}")),
            created_at: Timestamp::from_millis(1_700_000_000_000 + i64::from(n)),
            delivered: false,
            read: false,
            edited_at: None,
            deleted: false,
            pinned: false,
            reactions: Default::default(),
        },
        sender_session: SessionId(900),
        client_id: None,
    }
}

pub(super) fn to(session: i64, user: u32, self_copy: bool) -> QueueTarget {
    QueueTarget {
        session: SessionId(session),
        user: uid(user),
        self_copy,
    }
}

pub(super) async fn stored(
    s: &Arc<dyn Store>,
    m: &NewMessage,
    targets: &[QueueTarget],
) -> Vec<i64> {
    match s.store_message(m, targets).await.expect("store") {
        StoreOutcome::Stored(seqs) => seqs,
        other => panic!("expected Stored, got {other:?}"),
    }
}

pub(super) fn seqs(entries: &[QueuedEntry]) -> Vec<i64> {
    entries.iter().map(|e| e.seq).collect()
}

pub(super) fn ids(messages: &[Message]) -> Vec<MessageId> {
    messages.iter().map(|m| m.id).collect()
}

pub(super) fn acked(seq: i64, message: Option<u8>, self_copy: bool) -> AckedEntry {
    AckedEntry {
        seq,
        message_id: message.map(mid),
        self_copy,
    }
}

pub(crate) async fn messages_store_and_read(s: Arc<dyn Store>) {
    let (a, b) = (11_000_001, 11_000_002);
    let m = dm(1, a, b);
    assert_eq!(stored(&s, &m, &[]).await, Vec::<i64>::new());
    assert_eq!(s.message(mid(1)).await.expect("read"), Some(m.message));
    let mut chat = dm(2, a, b);
    chat.message.to = None;
    chat.message.chat_id = Some(5);
    chat.message.signature = None;
    assert_eq!(stored(&s, &chat, &[to(101, b, false)]).await, vec![1]);
    assert_eq!(s.message(mid(2)).await.expect("read"), Some(chat.message));
    assert_eq!(s.message(mid(3)).await.expect("read"), None);
    assert_eq!(
        s.dm_count(uid(a), uid(b)).await.expect("count"),
        1,
        "a chat message is not DM history"
    );
}

pub(crate) async fn messages_duplicate_client_id(s: Arc<dyn Store>) {
    let (a, b) = (12_000_001, 12_000_002);
    let with_cid = |n, session| {
        let mut m = dm(n, a, b);
        m.sender_session = SessionId(session);
        m.client_id = Some("c-1".into());
        m
    };
    let targets = [to(201, b, false), to(202, a, true)];
    assert_eq!(stored(&s, &with_cid(1, 211), &targets).await, vec![1, 1]);
    assert_eq!(
        s.store_message(&with_cid(2, 211), &targets)
            .await
            .expect("repeat"),
        StoreOutcome::Duplicate(mid(1))
    );
    assert_eq!(
        s.message(mid(2)).await.expect("read"),
        None,
        "nothing stored"
    );
    assert_eq!(
        s.last_seq(SessionId(201)).await.expect("seq"),
        1,
        "no seq used"
    );
    let queued = s.queue_after(SessionId(201), 0, None, 10).await.expect("q");
    assert_eq!(seqs(&queued), vec![1]);
    assert_eq!(s.dm_count(uid(a), uid(b)).await.expect("count"), 1);
    assert_eq!(
        stored(&s, &with_cid(3, 212), &targets).await,
        vec![2, 2],
        "another device may use the same client_id"
    );
    let mut plain = dm(4, a, b);
    plain.sender_session = SessionId(211);
    assert_eq!(stored(&s, &plain, &targets[..1]).await, vec![3]);
    plain.message.id = mid(5);
    assert_eq!(
        stored(&s, &plain, &targets[..1]).await,
        vec![4],
        "no client_id, no deduplication"
    );
}

pub(crate) async fn queue_seqs_per_session(s: Arc<dyn Store>) {
    let (a, b) = (13_000_001, 13_000_002);
    let ev = |t: &'static str| Bytes::from_static(t.as_bytes());
    assert_eq!(
        stored(&s, &dm(1, a, b), &[to(301, b, false), to(311, a, true)]).await,
        vec![1, 1]
    );
    let events = [
        (SessionId(301), ev("e1")),
        (SessionId(301), ev("e2")),
        (SessionId(302), ev("e3")),
    ];
    assert_eq!(
        s.enqueue_events(&events).await.expect("enqueue"),
        vec![2, 3, 1]
    );
    assert_eq!(
        stored(&s, &dm(2, b, a), &[to(311, a, false), to(302, b, true)]).await,
        vec![2, 2]
    );
    assert!(s.enqueue_events(&[]).await.expect("none").is_empty());
    for (session, last) in [(301, 3), (302, 2), (311, 2), (399, 0)] {
        assert_eq!(
            s.last_seq(SessionId(session)).await.expect("seq"),
            last,
            "session {session}"
        );
    }
    let q = s.queue_after(SessionId(301), 0, None, 10).await.expect("q");
    assert_eq!(seqs(&q), vec![1, 2, 3]);
    assert_eq!(q[2].item, QueueItem::Event(ev("e2")));
}

pub(crate) async fn queue_after_bounds(s: Arc<dyn Store>) {
    let (a, b) = (14_000_001, 14_000_002);
    let me = SessionId(401);
    let ev = |t: &'static str| Bytes::from_static(t.as_bytes());
    let m1 = dm(1, a, b);
    assert_eq!(stored(&s, &m1, &[to(401, b, false)]).await, vec![1]);
    let events = [(me, ev("e2")), (SessionId(402), ev("other"))];
    assert_eq!(s.enqueue_events(&events).await.expect("ev"), vec![2, 1]);
    let m3 = dm(3, b, a);
    assert_eq!(stored(&s, &m3, &[to(401, b, true)]).await, vec![3]);
    assert_eq!(
        s.enqueue_events(&[(me, ev("e4"))]).await.expect("ev"),
        vec![4]
    );
    assert_eq!(
        stored(&s, &dm(5, a, b), &[to(401, b, false)]).await,
        vec![5]
    );

    let all = s.queue_after(me, 0, None, 100).await.expect("all");
    assert_eq!(seqs(&all), vec![1, 2, 3, 4, 5]);
    let message = |m: &NewMessage, self_copy| QueueItem::Message {
        message: m.message.clone(),
        self_copy,
    };
    assert_eq!(all[0].item, message(&m1, false));
    assert_eq!(all[1].item, QueueItem::Event(ev("e2")));
    assert_eq!(all[2].item, message(&m3, true));
    let page = |after, upto, limit| s.queue_after(me, after, upto, limit);
    assert_eq!(seqs(&page(2, None, 100).await.expect("q")), vec![3, 4, 5]);
    assert_eq!(seqs(&page(2, Some(4), 100).await.expect("q")), vec![3, 4]);
    assert_eq!(seqs(&page(2, None, 1).await.expect("q")), vec![3]);
    assert!(page(5, None, 100).await.expect("q").is_empty());
    assert!(page(0, None, 0).await.expect("q").is_empty());
    let other = s.queue_after(SessionId(402), 0, None, 10).await.expect("q");
    assert_eq!(
        other,
        vec![QueuedEntry {
            seq: 1,
            item: QueueItem::Event(ev("other"))
        }]
    );
    assert!(s
        .queue_after(SessionId(499), 0, None, 10)
        .await
        .expect("q")
        .is_empty());

    s.mark_delivered(&[mid(1)]).await.expect("delivered");
    let first = page(0, Some(1), 10).await.expect("q");
    assert!(
        matches!(&first[..], [QueuedEntry { item: QueueItem::Message { message, .. }, .. }]
            if message.delivered),
        "entries carry the message as currently stored"
    );
}

pub(crate) async fn queue_ack(s: Arc<dyn Store>) {
    let (a, b) = (15_000_001, 15_000_002);
    let (me, other) = (SessionId(501), SessionId(502));
    let ev = Bytes::from_static(b"event");
    let both = [to(501, b, false), to(502, b, false)];
    assert_eq!(stored(&s, &dm(1, a, b), &both).await, vec![1, 1]);
    assert_eq!(
        s.enqueue_events(&[(me, ev.clone())]).await.expect("ev"),
        vec![2]
    );
    assert_eq!(stored(&s, &dm(3, b, a), &[to(501, b, true)]).await, vec![3]);
    assert_eq!(stored(&s, &dm(4, a, b), &both).await, vec![4, 2]);
    assert_eq!(stored(&s, &dm(5, a, b), &both[..1]).await, vec![5]);
    assert_eq!(s.enqueue_events(&[(me, ev)]).await.expect("ev"), vec![6]);

    let ack = |sel| s.ack(me, sel);
    assert_eq!(
        ack(AckSelector::Seq(2)).await.expect("ack"),
        vec![acked(2, None, false)]
    );
    assert!(ack(AckSelector::Seq(2)).await.expect("again").is_empty());
    assert_eq!(
        ack(AckSelector::Message(mid(3))).await.expect("ack"),
        vec![acked(3, Some(3), true)]
    );
    assert!(ack(AckSelector::Message(mid(3)))
        .await
        .expect("again")
        .is_empty());
    assert_eq!(
        ack(AckSelector::UpTo(4)).await.expect("ack"),
        vec![acked(1, Some(1), false), acked(4, Some(4), false)]
    );
    assert!(ack(AckSelector::UpTo(4)).await.expect("again").is_empty());
    let left = s.queue_after(me, 0, None, 10).await.expect("q");
    assert_eq!(seqs(&left), vec![5, 6]);
    assert_eq!(
        seqs(&s.queue_after(other, 0, None, 10).await.expect("q")),
        vec![1, 2],
        "another device's queue is untouched"
    );
    assert!(s
        .ack(other, AckSelector::Message(mid(5)))
        .await
        .expect("not queued there")
        .is_empty());
    assert!(s
        .ack(SessionId(599), AckSelector::UpTo(100))
        .await
        .expect("unknown session")
        .is_empty());
    assert_eq!(
        ack(AckSelector::UpTo(i64::MAX)).await.expect("ack"),
        vec![acked(5, Some(5), false), acked(6, None, false)]
    );
    assert_eq!(s.last_seq(me).await.expect("seq"), 6, "acks keep last_seq");
}

pub(crate) async fn queue_drop(s: Arc<dyn Store>) {
    let (a, b) = (16_000_001, 16_000_002);
    let (gone, kept) = (SessionId(601), SessionId(602));
    let ev = Bytes::from_static(b"event");
    assert_eq!(
        stored(&s, &dm(1, a, b), &[to(601, b, false), to(602, b, false)]).await,
        vec![1, 1]
    );
    assert_eq!(
        s.enqueue_events(&[(gone, ev.clone())]).await.expect("ev"),
        vec![2]
    );
    s.drop_queue(gone).await.expect("drop");
    assert!(s
        .queue_after(gone, 0, None, 10)
        .await
        .expect("q")
        .is_empty());
    assert_eq!(
        seqs(&s.queue_after(kept, 0, None, 10).await.expect("q")),
        vec![1]
    );
    assert_eq!(
        s.last_seq(gone).await.expect("seq"),
        2,
        "seqs are never reused"
    );
    assert_eq!(s.enqueue_events(&[(gone, ev)]).await.expect("ev"), vec![3]);
    s.drop_queue(SessionId(699)).await.expect("unknown session");
}

pub(crate) async fn dm_history_paging(s: Arc<dyn Store>) {
    let (a, b, c) = (17_000_001, 17_000_002, 17_000_003);
    // Stored out of id order: history follows ids, not insertion.
    for n in [12, 10, 14, 11, 13] {
        let (from, other) = if n % 2 == 0 { (a, b) } else { (b, a) };
        stored(&s, &dm(n, from, other), &[]).await;
    }
    stored(&s, &dm(20, c, a), &[]).await;
    stored(&s, &dm(21, b, c), &[]).await;
    let mut chat = dm(22, a, b);
    chat.message.to = None;
    chat.message.chat_id = Some(7);
    stored(&s, &chat, &[]).await;

    let (ua, ub, uc) = (uid(a), uid(b), uid(c));
    let hist = |x, y, before, skip, take| s.dm_history(x, y, before, skip, take);
    let newest_first: Vec<_> = [14, 13, 12, 11, 10].map(mid).into();
    assert_eq!(
        ids(&hist(ua, ub, None, 0, 100).await.expect("h")),
        newest_first
    );
    assert_eq!(
        ids(&hist(ub, ua, None, 0, 100).await.expect("h")),
        newest_first
    );
    assert_eq!(
        hist(ua, ub, None, 0, 1).await.expect("h"),
        vec![dm(14, a, b).message]
    );
    let page = |before, skip, take| async move {
        ids(&hist(ua, ub, before, skip, take).await.expect("h"))
    };
    assert_eq!(page(Some(mid(13)), 0, 100).await, [12, 11, 10].map(mid));
    assert_eq!(page(None, 1, 2).await, [13, 12].map(mid));
    assert_eq!(page(Some(mid(13)), 1, 1).await, [mid(11)]);
    assert_eq!(page(Some(mid(10)), 0, 10).await, []);
    assert_eq!(page(None, 0, 0).await, []);
    assert_eq!(page(None, 5, 10).await, []);
    assert_eq!(ids(&hist(ua, uc, None, 0, 10).await.expect("h")), [mid(20)]);
    assert!(hist(ua, uid(17_000_009), None, 0, 10)
        .await
        .expect("h")
        .is_empty());
    for (x, y, n) in [
        (ua, ub, 5),
        (ub, ua, 5),
        (ua, uc, 1),
        (uc, ub, 1),
        (uc, uid(17_000_009), 0),
    ] {
        assert_eq!(s.dm_count(x, y).await.expect("count"), n, "{x:?}-{y:?}");
    }
}

pub(crate) async fn messages_delivered_and_read(s: Arc<dyn Store>) {
    let (a, b) = (18_000_001, 18_000_002);
    for n in 1..=4 {
        stored(&s, &dm(n, a, b), &[]).await;
    }
    let mut newly = s
        .mark_delivered(&[mid(2), mid(1), mid(99)])
        .await
        .expect("mark");
    newly.sort();
    assert_eq!(newly, vec![mid(1), mid(2)], "unknown ids are skipped");
    assert_eq!(
        s.mark_delivered(&[mid(1), mid(3), mid(2), mid(3)])
            .await
            .expect("mark"),
        vec![mid(3)],
        "only ids that were not delivered, each once"
    );
    assert!(s.mark_delivered(&[]).await.expect("none").is_empty());
    let one = s.message(mid(1)).await.expect("read").expect("exists");
    assert!(one.delivered && !one.read);
    assert_eq!(s.mark_read(mid(1)).await.expect("read"), (false, true));
    assert_eq!(s.mark_read(mid(1)).await.expect("again"), (false, false));
    assert_eq!(s.mark_read(mid(4)).await.expect("read"), (true, true));
    let four = s.message(mid(4)).await.expect("read").expect("exists");
    assert!(four.delivered && four.read, "read implies delivered");
    assert!(s.mark_delivered(&[mid(4)]).await.expect("mark").is_empty());
    assert_eq!(s.mark_read(mid(99)).await.expect("unknown"), (false, false));
}

pub(crate) async fn queue_concurrent_appends(s: Arc<dyn Store>) {
    let (a, b) = (19_000_001, 19_000_002);
    let tasks: Vec<_> = (1..=24u8)
        .map(|n| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                if n % 3 == 0 {
                    let ev = Bytes::from_static(b"event");
                    let events = [(SessionId(801), ev.clone()), (SessionId(802), ev)];
                    s.enqueue_events(&events).await.expect("enqueue")
                } else {
                    stored(&s, &dm(n, a, b), &[to(801, b, false), to(802, a, true)]).await
                }
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task").len(), 2);
    }
    for session in [SessionId(801), SessionId(802)] {
        let q = s.queue_after(session, 0, None, 100).await.expect("q");
        assert_eq!(
            seqs(&q),
            (1..=24).collect::<Vec<_>>(),
            "no seq lost or repeated"
        );
        assert_eq!(s.last_seq(session).await.expect("seq"), 24);
    }
}

/// `upto` at or below `after` selects nothing. Not yet in `store_conformance!`: the memory
/// store's `queue_after` panics on such a range (`BTreeMap::range` with start > end).
pub(crate) async fn queue_after_empty_range(s: Arc<dyn Store>) {
    let ev = Bytes::from_static(b"event");
    let me = SessionId(701);
    let events = [(me, ev.clone()), (me, ev.clone()), (me, ev)];
    assert_eq!(s.enqueue_events(&events).await.expect("ev"), vec![1, 2, 3]);
    assert!(s
        .queue_after(me, 2, Some(2), 10)
        .await
        .expect("q")
        .is_empty());
    assert!(s
        .queue_after(me, 3, Some(1), 10)
        .await
        .expect("q")
        .is_empty());
    assert_eq!(
        seqs(&s.queue_after(me, 1, Some(2), 10).await.expect("q")),
        vec![2]
    );
}
