//! Conformance cases for message management (edit, delete, pin, react) and chat history
//! ([`MessageStore`](crate::store::MessageStore)).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::messages::{dm, dm_hist, ids, mid, queued, spec, stored, to};
use super::{uid, Store};
use crate::model::{Message, MessageId, NewMessage, QueueItem, SessionId, Timestamp, UserId};

/// Message `n` from `from` in chat `chat`.
fn chat_msg(n: u8, from: u32, chat: i64) -> NewMessage {
    let mut m = dm(n, from, from);
    m.message.to = None;
    m.message.chat_id = Some(chat);
    m
}

async fn get(s: &Arc<dyn Store>, id: MessageId) -> Message {
    s.message(id).await.expect("read").expect("present")
}

fn reactions(pairs: &[(&str, &[u32])]) -> BTreeMap<String, Vec<UserId>> {
    pairs
        .iter()
        .map(|(e, users)| ((*e).to_owned(), users.iter().map(|u| uid(*u)).collect()))
        .collect()
}

pub(crate) async fn manage_edit(s: Arc<dyn Store>) {
    let (a, b) = (31_000_001, 31_000_002);
    stored(&s, &dm(1, a, b), &[]).await;
    stored(&s, &dm(2, a, b), &[]).await;
    let at = Timestamp::from_millis(1_700_000_500_000);
    assert!(s.edit_message(mid(1), "edited-1", at).await.expect("edit"));

    let mut want = dm(1, a, b).message;
    want.payload = "edited-1".into();
    want.edited_at = Some(at);
    assert_eq!(
        get(&s, mid(1)).await,
        want,
        "signature kept, payload replaced"
    );
    let hist = dm_hist(&s, uid(a), uid(b), None, 0, 10).await;
    assert_eq!(hist, vec![dm(2, a, b).message, want.clone()]);

    // A second edit replaces both again.
    let later = Timestamp::from_millis(1_700_000_600_000);
    assert!(s
        .edit_message(mid(1), "edited-2", later)
        .await
        .expect("edit"));
    let m = get(&s, mid(1)).await;
    assert_eq!((m.payload.as_str(), m.edited_at), ("edited-2", Some(later)));

    assert!(!s.edit_message(mid(9), "x", at).await.expect("edit unknown"));
    assert_eq!(s.message(mid(9)).await.expect("read"), None);
}

pub(crate) async fn manage_delete(s: Arc<dyn Store>) {
    let (a, b) = (32_000_001, 32_000_002);
    for n in 1..=3 {
        stored(&s, &dm(n, a, b), &[]).await;
    }
    assert!(s.delete_message(mid(2)).await.expect("delete"));
    let m = get(&s, mid(2)).await;
    assert!(m.deleted);
    assert_eq!(m.payload, "");
    assert_eq!(m.signature, None);
    assert_eq!(m.edited_at, None);
    assert_eq!((m.from, m.to, m.created_at), {
        let o = dm(2, a, b).message;
        (o.from, o.to, o.created_at)
    });

    // Keeps its place in history and in the count.
    let hist = dm_hist(&s, uid(a), uid(b), None, 0, 10).await;
    assert_eq!(ids(&hist), [3, 2, 1].map(mid));
    assert!(hist[1].deleted && hist[1].payload.is_empty());
    assert!(!hist[0].deleted && !hist[2].deleted);
    assert_eq!(s.dm_count(uid(a), uid(b)).await.expect("count"), 3);

    // Idempotent; a deleted message cannot be edited.
    assert!(s.delete_message(mid(2)).await.expect("again"));
    let at = Timestamp::from_millis(1_700_000_500_000);
    assert!(!s.edit_message(mid(2), "back", at).await.expect("edit"));
    assert_eq!(get(&s, mid(2)).await, m);

    assert!(!s.delete_message(mid(9)).await.expect("unknown"));
    assert_eq!(s.message(mid(9)).await.expect("read"), None);
}

pub(crate) async fn manage_pin(s: Arc<dyn Store>) {
    let (a, b) = (33_000_001, 33_000_002);
    stored(&s, &dm(1, a, b), &[]).await;
    stored(&s, &dm(2, a, b), &[]).await;
    assert!(!get(&s, mid(1)).await.pinned);
    assert!(s.set_pinned(mid(1), true).await.expect("pin"));
    assert!(s.set_pinned(mid(1), true).await.expect("pin again"));
    assert!(get(&s, mid(1)).await.pinned);
    assert!(!get(&s, mid(2)).await.pinned);
    let hist = dm_hist(&s, uid(a), uid(b), None, 0, 10).await;
    assert_eq!(
        hist.iter().map(|m| m.pinned).collect::<Vec<_>>(),
        [false, true]
    );
    assert!(s.set_pinned(mid(1), false).await.expect("unpin"));
    assert!(!get(&s, mid(1)).await.pinned);
    assert!(!s.set_pinned(mid(9), true).await.expect("unknown"));
}

pub(crate) async fn manage_reactions(s: Arc<dyn Store>) {
    let (a, b, c, d) = (34_000_001, 34_000_002, 34_000_003, 34_000_004);
    stored(&s, &dm(1, a, b), &[]).await;
    stored(&s, &dm(2, a, b), &[]).await;
    let react = |id, user, r: Option<&'static str>| {
        let s = s.clone();
        async move { s.set_reaction(id, uid(user), r).await.expect("react") }
    };
    assert!(react(mid(1), c, Some("👍")).await);
    assert!(react(mid(1), a, Some("👍")).await);
    assert!(react(mid(1), b, Some("❤")).await);
    assert!(react(mid(1), d, Some("👍")).await);
    assert_eq!(
        get(&s, mid(1)).await.reactions,
        reactions(&[("👍", &[c, a, d]), ("❤", &[b])]),
        "users in the order they reacted"
    );
    assert!(get(&s, mid(2)).await.reactions.is_empty());

    // Setting the same reaction again keeps the place; replacing moves to the end of the new
    // emoji's list (one reaction per user).
    assert!(react(mid(1), c, Some("👍")).await);
    assert!(react(mid(1), a, Some("❤")).await);
    assert_eq!(
        get(&s, mid(1)).await.reactions,
        reactions(&[("👍", &[c, d]), ("❤", &[b, a])])
    );
    // Removing; an emoji without users disappears; removing twice is fine.
    assert!(react(mid(1), b, None).await);
    assert!(react(mid(1), a, None).await);
    assert!(react(mid(1), a, None).await);
    assert_eq!(
        get(&s, mid(1)).await.reactions,
        reactions(&[("👍", &[c, d])])
    );
    assert!(react(mid(2), b, Some("🔥")).await);

    // History pages and queue replays carry them.
    let hist = dm_hist(&s, uid(a), uid(b), None, 0, 10).await;
    assert_eq!(hist[0].reactions, reactions(&[("🔥", &[b])]));
    assert_eq!(hist[1].reactions, reactions(&[("👍", &[c, d])]));

    // Reactions survive a delete (the store applies no policy) and unknown ids are refused.
    assert!(s.delete_message(mid(2)).await.expect("delete"));
    assert_eq!(get(&s, mid(2)).await.reactions, reactions(&[("🔥", &[b])]));
    assert!(!react(mid(9), a, Some("👍")).await);
    assert!(!react(mid(9), a, None).await);
    assert_eq!(s.message(mid(9)).await.expect("read"), None);
}

pub(crate) async fn manage_state_in_queue_replay(s: Arc<dyn Store>) {
    let (a, b) = (35_000_001, 35_000_002);
    let device = SessionId(3501);
    stored(&s, &dm(1, a, b), &[to(3501, b, false)]).await;
    stored(&s, &dm(2, a, b), &[to(3501, b, false)]).await;
    let at = Timestamp::from_millis(1_700_000_500_000);
    assert!(s.edit_message(mid(1), "new", at).await.expect("edit"));
    assert!(s.set_pinned(mid(1), true).await.expect("pin"));
    assert!(s.set_reaction(mid(1), uid(b), Some("👍")).await.expect("r"));
    assert!(s.delete_message(mid(2)).await.expect("delete"));
    let q = queued(&s, device, 0, None, 10).await;
    let msgs: Vec<&Message> = q
        .iter()
        .filter_map(|e| match &e.item {
            QueueItem::Message { message, .. } => Some(message),
            _ => None,
        })
        .collect();
    assert_eq!(msgs.len(), 2);
    assert_eq!(*msgs[0], get(&s, mid(1)).await);
    assert_eq!(msgs[0].reactions, reactions(&[("👍", &[b])]));
    assert_eq!(msgs[0].edited_at, Some(at));
    assert!(msgs[0].pinned);
    assert!(msgs[1].deleted && msgs[1].payload.is_empty());
}

pub(crate) async fn chat_history_paging(s: Arc<dyn Store>) {
    let (a, b) = (36_000_001, 36_000_002);
    // Two chats, stored out of id order, and DMs between members that never mix in.
    for n in [12, 10, 14, 11, 13] {
        stored(&s, &chat_msg(n, if n % 2 == 0 { a } else { b }, 7), &[]).await;
    }
    stored(&s, &chat_msg(20, a, 8), &[]).await;
    stored(&s, &chat_msg(21, b, 8), &[]).await;
    stored(&s, &dm(15, a, b), &[]).await;
    stored(&s, &dm(16, b, a), &[]).await;

    let hist = |chat, before, skip, take| {
        let s = &s;
        async move {
            let rows = s.chat_history(chat, before, spec(skip, take)).await;
            rows.map(|r| r.messages)
        }
    };
    assert_eq!(
        ids(&hist(7, None, 0, 100).await.expect("h")),
        [14, 13, 12, 11, 10].map(mid)
    );
    assert_eq!(
        hist(7, None, 0, 1).await.expect("h"),
        vec![chat_msg(14, a, 7).message]
    );
    let page = |before, skip, take| {
        let hist = &hist;
        async move { ids(&hist(7, before, skip, take).await.expect("h")) }
    };
    assert_eq!(page(Some(mid(13)), 0, 100).await, [12, 11, 10].map(mid));
    assert_eq!(page(None, 1, 2).await, [13, 12].map(mid));
    assert_eq!(page(Some(mid(13)), 1, 1).await, [mid(11)]);
    assert_eq!(page(Some(mid(10)), 0, 10).await, []);
    assert_eq!(page(None, 0, 0).await, []);
    assert_eq!(page(None, 5, 10).await, []);
    assert_eq!(
        ids(&hist(8, None, 0, 10).await.expect("h")),
        [21, 20].map(mid)
    );
    assert!(hist(9, None, 0, 10).await.expect("h").is_empty());

    assert_eq!(s.chat_count(7).await.expect("count"), 5);
    assert_eq!(s.chat_count(8).await.expect("count"), 2);
    assert_eq!(s.chat_count(9).await.expect("count"), 0);
    assert_eq!(s.dm_count(uid(a), uid(b)).await.expect("count"), 2);
    assert_eq!(
        ids(&dm_hist(&s, uid(a), uid(b), None, 0, 10).await),
        [16, 15].map(mid)
    );

    // Management state shows in chat history too.
    assert!(s.delete_message(mid(13)).await.expect("delete"));
    assert!(s
        .set_reaction(mid(12), uid(b), Some("👍"))
        .await
        .expect("r"));
    let h = hist(7, None, 1, 2).await.expect("h");
    assert!(h[0].deleted && h[0].payload.is_empty());
    assert_eq!(h[1].reactions, reactions(&[("👍", &[b])]));
    assert_eq!(s.chat_count(7).await.expect("count"), 5);
}

pub(crate) async fn purge_removes_reactions(s: Arc<dyn Store>) {
    let (a, b) = (37_000_001, 37_000_002);
    stored(&s, &dm(1, a, b), &[]).await;
    stored(&s, &chat_msg(2, a, 37), &[]).await;
    stored(&s, &dm(3, a, b), &[]).await;
    for n in 1..=3 {
        assert!(s.set_reaction(mid(n), uid(b), Some("👍")).await.expect("r"));
    }
    let before = Timestamp::from_millis(1_700_000_000_003);
    assert_eq!(
        s.purge_messages(before, Timestamp::from_millis(0))
            .await
            .expect("purge"),
        2
    );
    assert_eq!(s.message(mid(1)).await.expect("read"), None);
    assert_eq!(s.message(mid(2)).await.expect("read"), None);
    assert_eq!(s.chat_count(37).await.expect("count"), 0);
    assert!(s
        .chat_history(37, None, spec(0, 10))
        .await
        .expect("h")
        .messages
        .is_empty());
    assert_eq!(get(&s, mid(3)).await.reactions, reactions(&[("👍", &[b])]));
    // Ids are never reused in practice; a message stored again under a purged id starts clean.
    stored(&s, &dm(1, a, b), &[]).await;
    assert!(get(&s, mid(1)).await.reactions.is_empty());
}
