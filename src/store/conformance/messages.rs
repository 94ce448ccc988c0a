//! Conformance cases for messages and device queues ([`MessageStore`](crate::store::MessageStore),
//! [`DeliveryStore`](crate::store::DeliveryStore), [`QueueStore`](crate::store::QueueStore)).

use std::sync::Arc;

use bytes::Bytes;

use super::{uid, Store};
use crate::model::{
    Acks, Message, MessageId, NewEntry, NewMessage, QueueItem, QueueTarget, QueuedEntry, SessionId,
    StoreOutcome, Timestamp, UserId,
};
use crate::store::HistoryPageSpec;

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

/// Every entry of `session` after `after` (up to `upto`), at most `limit`, no byte bound.
pub(super) async fn queued(
    s: &Arc<dyn Store>,
    session: SessionId,
    after: i64,
    upto: Option<i64>,
    limit: u64,
) -> Vec<QueuedEntry> {
    s.queue_after(session, after, upto, limit, u64::MAX)
        .await
        .expect("queue read")
        .entries
}

/// An event entry.
pub(super) fn event(body: &'static str) -> NewEntry {
    NewEntry::Event(Bytes::from_static(body.as_bytes()))
}

/// Acknowledges `upto` and `seqs`, nothing else.
pub(super) fn acks(upto: i64, seqs: &[i64]) -> Acks {
    Acks {
        upto,
        seqs: seqs.to_vec(),
        ..Acks::default()
    }
}

/// A history page with no byte bound.
pub(super) fn spec(skip: u64, take: u64) -> HistoryPageSpec {
    HistoryPageSpec {
        skip,
        take,
        max_bytes: u64::MAX,
    }
}

/// The DM history of a pair with no byte bound.
pub(super) async fn dm_hist(
    s: &Arc<dyn Store>,
    x: UserId,
    y: UserId,
    before: Option<MessageId>,
    skip: u64,
    take: u64,
) -> Vec<Message> {
    let rows = s
        .dm_history(x, y, before, spec(skip, take))
        .await
        .expect("history");
    assert!(!rows.cut, "no byte bound, no cut");
    rows.messages
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
    assert_eq!(
        seqs(&queued(&s, SessionId(201), 0, None, 10).await),
        vec![1]
    );
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
    assert_eq!(
        stored(&s, &dm(1, a, b), &[to(301, b, false), to(311, a, true)]).await,
        vec![1, 1]
    );
    let entries = [
        (SessionId(301), event("e1")),
        (SessionId(301), event("e2")),
        (SessionId(302), event("e3")),
    ];
    assert_eq!(s.enqueue(&entries).await.expect("enqueue"), vec![2, 3, 1]);
    assert_eq!(
        stored(&s, &dm(2, b, a), &[to(311, a, false), to(302, b, true)]).await,
        vec![2, 2]
    );
    assert!(s.enqueue(&[]).await.expect("none").is_empty());
    for (session, last) in [(301, 3), (302, 2), (311, 2), (399, 0)] {
        assert_eq!(
            s.last_seq(SessionId(session)).await.expect("seq"),
            last,
            "session {session}"
        );
    }
    let q = queued(&s, SessionId(301), 0, None, 10).await;
    assert_eq!(seqs(&q), vec![1, 2, 3]);
    assert_eq!(q[2].item, QueueItem::Event(Bytes::from_static(b"e2")));
}

pub(crate) async fn queue_after_bounds(s: Arc<dyn Store>) {
    let (a, b) = (14_000_001, 14_000_002);
    let me = SessionId(401);
    let m1 = dm(1, a, b);
    assert_eq!(stored(&s, &m1, &[to(401, b, false)]).await, vec![1]);
    let status = Bytes::from_static(b"compact receipt");
    let entries = [
        (me, NewEntry::Status(status.clone())),
        (SessionId(402), event("other")),
    ];
    assert_eq!(s.enqueue(&entries).await.expect("ev"), vec![2, 1]);
    let m3 = dm(3, b, a);
    assert_eq!(stored(&s, &m3, &[to(401, b, true)]).await, vec![3]);
    assert_eq!(s.enqueue(&[(me, event("e4"))]).await.expect("ev"), vec![4]);
    assert_eq!(
        stored(&s, &dm(5, a, b), &[to(401, b, false)]).await,
        vec![5]
    );

    let all = queued(&s, me, 0, None, 100).await;
    assert_eq!(seqs(&all), vec![1, 2, 3, 4, 5]);
    let message = |m: &NewMessage, self_copy| QueueItem::Message {
        message: m.message.clone(),
        self_copy,
    };
    assert_eq!(all[0].item, message(&m1, false));
    assert_eq!(all[1].item, QueueItem::Status(status));
    assert_eq!(all[2].item, message(&m3, true));
    let page = |after, upto, limit| queued(&s, me, after, upto, limit);
    assert_eq!(seqs(&page(2, None, 100).await), vec![3, 4, 5]);
    assert_eq!(seqs(&page(2, Some(4), 100).await), vec![3, 4]);
    assert_eq!(seqs(&page(2, None, 1).await), vec![3]);
    assert!(page(5, None, 100).await.is_empty());
    assert!(page(0, None, 0).await.is_empty());
    assert_eq!(
        queued(&s, SessionId(402), 0, None, 10).await,
        vec![QueuedEntry {
            seq: 1,
            item: QueueItem::Event(Bytes::from_static(b"other"))
        }]
    );
    assert!(queued(&s, SessionId(499), 0, None, 10).await.is_empty());

    // Acknowledging with a delivered flag: later reads carry the message as currently stored.
    let flag = crate::model::Acks {
        delivered: vec![mid(1)],
        ..acks(0, &[])
    };
    s.ack(SessionId(498), &flag).await.expect("flag");
    let first = page(0, Some(1), 10).await;
    assert!(
        matches!(&first[..], [QueuedEntry { item: QueueItem::Message { message, .. }, .. }]
            if message.delivered),
        "entries carry the message as currently stored"
    );
}

/// The byte bound of queue reads: content bytes (payload and signature, event and receipt
/// bodies) add up to at most `max_bytes`, the first entry always comes, and `cut` tells.
pub(crate) async fn queue_after_byte_bound(s: Arc<dyn Store>) {
    let (a, b) = (14_500_001, 14_500_002);
    let me = SessionId(451);
    let big = |n: u8, len: usize| {
        let mut m = dm(n, a, b);
        m.message.payload = "p".repeat(len);
        m.message.signature = Some("s".repeat(10));
        m
    };
    stored(&s, &big(1, 990), &[to(451, b, false)]).await;
    stored(&s, &big(2, 990), &[to(451, b, false)]).await;
    s.enqueue(&[(me, NewEntry::Event(Bytes::from(vec![7u8; 500])))])
        .await
        .expect("event");
    stored(&s, &big(4, 90), &[to(451, b, false)]).await;
    let read = |after, max| s.queue_after(me, after, None, 100, max);
    let r = read(0, 2000).await.expect("q");
    assert_eq!((seqs(&r.entries), r.cut), (vec![1, 2], true), "1000 + 1000");
    let r = read(0, 1999).await.expect("q");
    assert_eq!((seqs(&r.entries), r.cut), (vec![1], true));
    let r = read(0, 1).await.expect("q");
    assert_eq!(
        (seqs(&r.entries), r.cut),
        (vec![1], true),
        "the first entry comes whatever its size"
    );
    let r = read(1, 1600).await.expect("q");
    assert_eq!(
        (seqs(&r.entries), r.cut),
        (vec![2, 3, 4], false),
        "1000 + 500 + 100"
    );
    let r = read(2, 599).await.expect("q");
    assert_eq!((seqs(&r.entries), r.cut), (vec![3], true));
    let r = read(4, 10).await.expect("q");
    assert_eq!((r.entries.len(), r.cut), (0, false));
}

pub(crate) async fn queue_ack(s: Arc<dyn Store>) {
    let (a, b) = (15_000_001, 15_000_002);
    let (me, other) = (SessionId(501), SessionId(502));
    let both = [to(501, b, false), to(502, b, false)];
    assert_eq!(stored(&s, &dm(1, a, b), &both).await, vec![1, 1]);
    assert_eq!(s.enqueue(&[(me, event("e"))]).await.expect("ev"), vec![2]);
    assert_eq!(stored(&s, &dm(3, b, a), &[to(501, b, true)]).await, vec![3]);
    assert_eq!(stored(&s, &dm(4, a, b), &both).await, vec![4, 2]);
    assert_eq!(stored(&s, &dm(5, a, b), &both[..1]).await, vec![5]);
    assert_eq!(s.enqueue(&[(me, event("e"))]).await.expect("ev"), vec![6]);

    let left = |session| {
        let s = &s;
        async move { seqs(&queued(s, session, 0, None, 10).await) }
    };
    assert!(s.ack(me, &acks(0, &[2, 3])).await.expect("ack").is_empty());
    assert_eq!(left(me).await, vec![1, 4, 5, 6]);
    s.ack(me, &acks(0, &[2, 3])).await.expect("again: a no-op");
    s.ack(me, &acks(4, &[])).await.expect("up to 4");
    assert_eq!(left(me).await, vec![5, 6]);
    assert_eq!(
        left(other).await,
        vec![1, 2],
        "another device's queue is untouched"
    );
    s.ack(SessionId(599), &acks(100, &[]))
        .await
        .expect("unknown session");
    assert_eq!(
        s.queue_seqs(me, 4, 6).await.expect("seqs"),
        vec![5, 6],
        "queue_seqs lists what is still queued in its range"
    );
    assert_eq!(s.queue_seqs(me, 0, 5).await.expect("seqs"), vec![5]);
    assert!(s.queue_seqs(me, 6, 6).await.expect("seqs").is_empty());
    assert!(s
        .queue_seqs(SessionId(599), 0, 9)
        .await
        .expect("seqs")
        .is_empty());
    s.ack(me, &acks(i64::MAX, &[])).await.expect("everything");
    assert!(left(me).await.is_empty());
    assert!(s.queue_seqs(me, 0, 100).await.expect("seqs").is_empty());
    assert_eq!(s.last_seq(me).await.expect("seq"), 6, "acks keep last_seq");
}

/// An acknowledgement appends its receipts and flags its messages in the same write.
pub(crate) async fn queue_ack_with_receipts(s: Arc<dyn Store>) {
    let (a, b) = (15_500_001, 15_500_002);
    let (reader, author1, author2) = (SessionId(551), SessionId(552), SessionId(553));
    assert_eq!(
        stored(&s, &dm(1, a, b), &[to(551, b, false)]).await,
        vec![1]
    );
    assert_eq!(
        stored(&s, &dm(2, a, b), &[to(551, b, false), to(552, a, true)]).await,
        vec![2, 1]
    );
    let receipt = |t: &'static str| NewEntry::Status(Bytes::from_static(t.as_bytes()));
    let write = crate::model::Acks {
        upto: 2,
        seqs: vec![],
        receipts: vec![
            (author1, receipt("r1")),
            (author2, receipt("r1")),
            (author1, receipt("r2")),
        ],
        delivered: vec![mid(1), mid(2), mid(99)],
    };
    assert_eq!(s.ack(reader, &write).await.expect("ack"), vec![2, 1, 3]);
    assert!(queued(&s, reader, 0, None, 10).await.is_empty());
    let q = queued(&s, author1, 0, None, 10).await;
    assert_eq!(seqs(&q), vec![1, 2, 3]);
    assert_eq!(q[1].item, QueueItem::Status(Bytes::from_static(b"r1")));
    for n in [1, 2] {
        let m = s.message(mid(n)).await.expect("read").expect("exists");
        assert!(m.delivered && !m.read, "message {n} flagged delivered");
    }
    assert_eq!(
        s.ack(reader, &acks(2, &[])).await.expect("nothing left"),
        Vec::<i64>::new()
    );
}

pub(crate) async fn queue_drop(s: Arc<dyn Store>) {
    let (a, b) = (16_000_001, 16_000_002);
    let (gone, kept) = (SessionId(601), SessionId(602));
    assert_eq!(
        stored(&s, &dm(1, a, b), &[to(601, b, false), to(602, b, false)]).await,
        vec![1, 1]
    );
    assert_eq!(s.enqueue(&[(gone, event("e"))]).await.expect("ev"), vec![2]);
    s.drop_queue(gone).await.expect("drop");
    assert!(queued(&s, gone, 0, None, 10).await.is_empty());
    assert_eq!(seqs(&queued(&s, kept, 0, None, 10).await), vec![1]);
    assert_eq!(
        s.last_seq(gone).await.expect("seq"),
        2,
        "seqs are never reused"
    );
    assert_eq!(s.enqueue(&[(gone, event("e"))]).await.expect("ev"), vec![3]);
    s.drop_queue(SessionId(699)).await.expect("unknown session");
}

pub(crate) async fn messages_delivered_and_read(s: Arc<dyn Store>) {
    let (a, b) = (18_000_001, 18_000_002);
    for n in 1..=4 {
        stored(&s, &dm(n, a, b), &[]).await;
    }
    let flag = |ids: &[u8]| crate::model::Acks {
        delivered: ids.iter().map(|n| mid(*n)).collect(),
        ..acks(0, &[])
    };
    s.ack(SessionId(899), &flag(&[2, 1, 99]))
        .await
        .expect("unknown ids are skipped");
    let one = s.message(mid(1)).await.expect("read").expect("exists");
    assert!(one.delivered && !one.read);
    assert_eq!(s.mark_read(mid(1)).await.expect("read"), (false, true));
    assert_eq!(s.mark_read(mid(1)).await.expect("again"), (false, false));
    assert_eq!(s.mark_read(mid(4)).await.expect("read"), (true, true));
    let four = s.message(mid(4)).await.expect("read").expect("exists");
    assert!(four.delivered && four.read, "read implies delivered");
    s.ack(SessionId(899), &flag(&[4])).await.expect("again");
    let four = s.message(mid(4)).await.expect("read").expect("exists");
    assert!(
        four.delivered && four.read,
        "flagging again changes nothing"
    );
    let three = s.message(mid(3)).await.expect("read").expect("exists");
    assert!(!three.delivered);
    assert_eq!(s.mark_read(mid(99)).await.expect("unknown"), (false, false));
}

pub(crate) async fn queue_concurrent_appends(s: Arc<dyn Store>) {
    let (a, b) = (19_000_001, 19_000_002);
    let tasks: Vec<_> = (1..=24u8)
        .map(|n| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                match n % 4 {
                    0 => {
                        let entries = [(SessionId(801), event("e")), (SessionId(802), event("e"))];
                        s.enqueue(&entries).await.expect("enqueue")
                    }
                    1 => {
                        // Receipts appended by an acknowledgement of another device.
                        let write = crate::model::Acks {
                            receipts: vec![
                                (SessionId(801), event("r")),
                                (SessionId(802), event("r")),
                            ],
                            ..acks(1, &[])
                        };
                        s.ack(SessionId(803), &write).await.expect("ack")
                    }
                    _ => stored(&s, &dm(n, a, b), &[to(801, b, false), to(802, a, true)]).await,
                }
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task").len(), 2);
    }
    for session in [SessionId(801), SessionId(802)] {
        let q = queued(&s, session, 0, None, 100).await;
        assert_eq!(
            seqs(&q),
            (1..=24).collect::<Vec<_>>(),
            "no seq lost or repeated"
        );
        assert_eq!(s.last_seq(session).await.expect("seq"), 24);
    }
}

/// `upto` at or below `after` selects nothing.
pub(crate) async fn queue_after_empty_range(s: Arc<dyn Store>) {
    let me = SessionId(701);
    let entries = [(me, event("e")), (me, event("e")), (me, event("e"))];
    assert_eq!(s.enqueue(&entries).await.expect("ev"), vec![1, 2, 3]);
    assert!(queued(&s, me, 2, Some(2), 10).await.is_empty());
    assert!(queued(&s, me, 3, Some(1), 10).await.is_empty());
    assert_eq!(seqs(&queued(&s, me, 1, Some(2), 10).await), vec![2]);
}
