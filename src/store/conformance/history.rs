//! Conformance cases for conversation history ([`MessageStore`](crate::store::MessageStore)):
//! paging, the byte bound of a page, and the system sender.

use std::sync::Arc;

use super::messages::{dm, dm_hist, ids, mid, queued, stored, to};
use super::{uid, Store};
use crate::model::{QueueItem, QueuedEntry, SessionId, UserId};
use crate::store::{HistoryPageSpec, HistoryRows};

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
    let newest_first: Vec<_> = [14, 13, 12, 11, 10].map(mid).into();
    assert_eq!(ids(&dm_hist(&s, ua, ub, None, 0, 100).await), newest_first);
    assert_eq!(ids(&dm_hist(&s, ub, ua, None, 0, 100).await), newest_first);
    assert_eq!(
        dm_hist(&s, ua, ub, None, 0, 1).await,
        vec![dm(14, a, b).message]
    );
    let page = |before, skip, take| {
        let s = &s;
        async move { ids(&dm_hist(s, ua, ub, before, skip, take).await) }
    };
    assert_eq!(page(Some(mid(13)), 0, 100).await, [12, 11, 10].map(mid));
    assert_eq!(page(None, 1, 2).await, [13, 12].map(mid));
    assert_eq!(page(Some(mid(13)), 1, 1).await, [mid(11)]);
    assert_eq!(page(Some(mid(10)), 0, 10).await, []);
    assert_eq!(page(None, 0, 0).await, []);
    assert_eq!(page(None, 5, 10).await, []);
    assert_eq!(ids(&dm_hist(&s, ua, uc, None, 0, 10).await), [mid(20)]);
    assert!(dm_hist(&s, ua, uid(17_000_009), None, 0, 10)
        .await
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

/// History reads stop at their byte budget (newest first), always with one message, and say
/// when they cut.
pub(crate) async fn history_byte_bound(s: Arc<dyn Store>) {
    let (a, b) = (17_500_001, 17_500_002);
    for (n, len) in [(1u8, 400usize), (2, 300), (3, 200), (4, 100)] {
        let mut m = dm(n, a, b);
        m.message.payload = "x".repeat(len);
        m.message.signature = None;
        stored(&s, &m, &[]).await;
    }
    let (ua, ub) = (uid(a), uid(b));
    let read = |before, skip, take, max_bytes| {
        s.dm_history(
            ua,
            ub,
            before,
            HistoryPageSpec {
                skip,
                take,
                max_bytes,
            },
        )
    };
    let got = |r: HistoryRows| (ids(&r.messages), r.cut);
    assert_eq!(
        got(read(None, 0, 10, 300).await.expect("h")),
        (vec![mid(4), mid(3)], true),
        "100 + 200, then 300 would pass"
    );
    assert_eq!(
        got(read(None, 0, 10, 1000).await.expect("h")),
        (vec![mid(4), mid(3), mid(2), mid(1)], false)
    );
    assert_eq!(
        got(read(None, 0, 2, 1000).await.expect("h")),
        (vec![mid(4), mid(3)], false),
        "stopped by take, not by bytes"
    );
    assert_eq!(
        got(read(Some(mid(4)), 0, 10, 10).await.expect("h")),
        (vec![mid(3)], true),
        "one message whatever its size"
    );
    assert_eq!(
        got(read(None, 2, 10, 300).await.expect("h")),
        (vec![mid(2)], true)
    );
}

/// A system message (sender [`UserId::SYSTEM`], uid 0, which no account has) reads back with
/// that sender from the message, the queue and the DM history of its recipient.
pub(crate) async fn system_sender_round_trips(s: Arc<dyn Store>) {
    let b = 11_500_002;
    let mut m = dm(1, b, b);
    m.message.from = UserId::SYSTEM;
    m.message.signature = None;
    assert_eq!(stored(&s, &m, &[to(151, b, false)]).await, vec![1]);
    assert_eq!(
        s.message(mid(1)).await.expect("read"),
        Some(m.message.clone())
    );
    match &queued(&s, SessionId(151), 0, None, 10).await[..] {
        [QueuedEntry {
            item: QueueItem::Message { message, .. },
            ..
        }] => assert_eq!(message.from, UserId::SYSTEM),
        other => panic!("expected the system message queued, got {other:?}"),
    }
    assert_eq!(
        dm_hist(&s, uid(b), UserId::SYSTEM, None, 0, 10).await,
        vec![m.message]
    );
}
