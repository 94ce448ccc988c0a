//! Conformance cases for read markers: forward only by (at, message_id), atomic under
//! concurrency, per user, returned only while a member, gone with the membership and the account.

use std::sync::Arc;

use super::{uid, user, Store, StoreError};
use crate::model::{ChatKind, ChatRole, Timestamp, UserId};
use crate::store::ReadMarker;

fn at(n: i64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + n)
}

fn marker(id: &str, t: Timestamp) -> ReadMarker {
    ReadMarker {
        message_id: id.to_owned(),
        at: t,
    }
}

/// A 32-hex Melo-style id ending in `n`.
fn hex(n: u32) -> String {
    format!("{:032x}", n)
}

async fn chat_with(s: &Arc<dyn Store>, owner: UserId, others: &[UserId]) -> i64 {
    let chat = s
        .create_chat(ChatKind::Chat, b"sealed-name", owner, at(0))
        .await
        .expect("create chat");
    for m in others {
        assert!(s
            .add_member(chat, *m, ChatRole::Member, at(1))
            .await
            .expect("add member"));
    }
    chat
}

async fn markers(s: &Arc<dyn Store>, who: UserId, chats: &[i64]) -> Vec<(i64, ReadMarker)> {
    let mut v = s.read_markers(who, chats).await.expect("read markers");
    v.sort_by_key(|(c, _)| *c);
    v
}

pub(crate) async fn read_markers_forward_only(s: Arc<dyn Store>) {
    let a = uid(11_111_111);
    let chat = chat_with(&s, a, &[]).await;
    let adv = |m: ReadMarker| {
        let s = Arc::clone(&s);
        async move { s.advance_read_marker(a, chat, &m).await.expect("advance") }
    };
    assert!(
        adv(marker(&hex(5), at(50))).await,
        "the first marker is set"
    );
    assert!(
        !adv(marker(&hex(5), at(50))).await,
        "the same again: no move"
    );
    assert!(!adv(marker(&hex(9), at(40))).await, "older time: no move");
    assert!(
        !adv(marker(&hex(4), at(50))).await,
        "same time, smaller id: no move"
    );
    assert_eq!(
        markers(&s, a, &[chat]).await,
        vec![(chat, marker(&hex(5), at(50)))]
    );
    assert!(
        adv(marker(&hex(6), at(50))).await,
        "same time, greater id: moves"
    );
    assert!(adv(marker(&hex(1), at(51))).await, "newer time: moves");
    assert_eq!(
        markers(&s, a, &[chat]).await,
        vec![(chat, marker(&hex(1), at(51)))]
    );
    // The id order is bytewise: "a" (0x61) sorts after "F" (0x46) and "9".
    assert!(adv(marker("F", at(51))).await);
    assert!(adv(marker("a", at(51))).await);
    assert!(!adv(marker("F", at(51))).await);

    // An imported marker (time 0, the original server's text) moves on any newer read.
    let other = chat_with(&s, a, &[]).await;
    let long = "x".repeat(64);
    assert!(s
        .advance_read_marker(a, other, &marker(&long, Timestamp::from_millis(0)))
        .await
        .expect("64-byte id"));
    assert_eq!(
        markers(&s, a, &[other]).await,
        vec![(other, marker(&long, Timestamp::from_millis(0)))],
        "a 64-byte id round-trips"
    );
    assert!(s
        .advance_read_marker(a, other, &marker(&hex(2), at(1)))
        .await
        .expect("advance"));
    for bad in ["y".repeat(65), String::new()] {
        assert!(
            matches!(
                s.advance_read_marker(a, other, &marker(&bad, at(99))).await,
                Err(StoreError::Backend(_))
            ),
            "an empty id or one over 64 bytes is refused"
        );
    }
    assert_eq!(
        markers(&s, a, &[other, chat]).await,
        vec![(chat, marker("a", at(51))), (other, marker(&hex(2), at(1)))],
        "refused ids change nothing"
    );
}

pub(crate) async fn read_markers_concurrent_advances(s: Arc<dyn Store>) {
    let a = uid(11_111_111);
    let chat = chat_with(&s, a, &[]).await;
    // Interleaved orders: evens ascending, odds descending, with id ties at one time.
    let order: Vec<u32> = (0..40)
        .filter(|n| n % 2 == 0)
        .chain((0..40).rev().filter(|n| n % 2 == 1))
        .collect();
    let tasks: Vec<_> = order
        .into_iter()
        .map(|n| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let m = marker(&hex(n), at(i64::from(n / 4)));
                s.advance_read_marker(a, chat, &m).await.expect("advance")
            })
        })
        .collect();
    let mut moved = 0;
    for t in tasks {
        moved += u32::from(t.await.expect("task"));
    }
    assert!(moved >= 1, "at least the first advance moved it");
    assert_eq!(
        markers(&s, a, &[chat]).await,
        vec![(chat, marker(&hex(39), at(9)))],
        "the newest marker wins whatever the interleaving"
    );
    assert!(!s
        .advance_read_marker(a, chat, &marker(&hex(38), at(9)))
        .await
        .expect("advance"));
}

pub(crate) async fn read_markers_per_user(s: Arc<dyn Store>) {
    let (a, b, c) = (uid(11_111_111), uid(22_222_222), uid(33_333_333));
    let one = chat_with(&s, a, &[b, c]).await;
    let two = chat_with(&s, b, &[a]).await;
    assert!(s
        .advance_read_marker(a, one, &marker(&hex(1), at(1)))
        .await
        .expect("a in one"));
    assert!(s
        .advance_read_marker(b, one, &marker(&hex(3), at(3)))
        .await
        .expect("b in one"));
    assert!(s
        .advance_read_marker(b, two, &marker(&hex(2), at(2)))
        .await
        .expect("b in two"));
    assert!(s
        .advance_read_marker(a, one, &marker(&hex(2), at(2)))
        .await
        .expect("a moves independently of b's newer marker"),);
    assert_eq!(
        markers(&s, a, &[one, two]).await,
        vec![(one, marker(&hex(2), at(2)))]
    );
    assert_eq!(
        markers(&s, b, &[two, one, two]).await,
        vec![(one, marker(&hex(3), at(3))), (two, marker(&hex(2), at(2)))],
        "any order, a repeated id once"
    );
    assert_eq!(markers(&s, c, &[one, two]).await, vec![], "c has none");
}

pub(crate) async fn read_markers_empty(s: Arc<dyn Store>) {
    let a = uid(11_111_111);
    assert_eq!(markers(&s, a, &[]).await, vec![]);
    let chat = chat_with(&s, a, &[]).await;
    assert_eq!(markers(&s, a, &[]).await, vec![]);
    assert_eq!(markers(&s, a, &[chat, chat + 100, -1]).await, vec![]);
    assert!(s
        .advance_read_marker(a, chat, &marker(&hex(1), at(1)))
        .await
        .expect("advance"));
    assert_eq!(markers(&s, a, &[]).await, vec![], "an empty list is empty");
    assert_eq!(
        markers(&s, a, &[chat + 100]).await,
        vec![],
        "only the chats asked for"
    );
}

/// Markers are returned only while a member; leaving deletes the marker (a rejoin starts
/// without one); erasing the account deletes them all.
pub(crate) async fn read_markers_follow_membership(s: Arc<dyn Store>) {
    let (a, b) = (uid(11_111_111), uid(22_222_222));
    s.create_user(&user(11_111_111, b"idx-a"))
        .await
        .expect("create a");
    s.create_user(&user(22_222_222, b"idx-b"))
        .await
        .expect("create b");
    let one = chat_with(&s, a, &[b]).await;
    let two = chat_with(&s, a, &[b]).await;
    let outside = chat_with(&s, a, &[]).await;
    for chat in [one, two, outside] {
        assert!(s
            .advance_read_marker(b, chat, &marker(&hex(7), at(7)))
            .await
            .expect("advance"));
    }
    assert_eq!(
        markers(&s, b, &[one, two, outside]).await,
        vec![(one, marker(&hex(7), at(7))), (two, marker(&hex(7), at(7)))],
        "no marker of a chat b is not a member of"
    );
    assert!(s.remove_member(one, b).await.expect("leave"));
    assert_eq!(markers(&s, b, &[one]).await, vec![]);
    assert!(s
        .add_member(one, b, ChatRole::Member, at(8))
        .await
        .expect("rejoin"));
    assert_eq!(
        markers(&s, b, &[one]).await,
        vec![],
        "leaving deleted the marker"
    );
    assert!(s
        .advance_read_marker(a, two, &marker(&hex(9), at(9)))
        .await
        .expect("a's marker"));

    s.erase_user(b).await.expect("erase").expect("b existed");
    // The store does not check users: put b back into the chats to see that nothing remains.
    for chat in [two, outside] {
        assert!(s
            .add_member(chat, b, ChatRole::Member, at(10))
            .await
            .expect("add again"));
    }
    assert_eq!(
        markers(&s, b, &[one, two, outside]).await,
        vec![],
        "the erase deleted every marker of b"
    );
    assert_eq!(
        markers(&s, a, &[two]).await,
        vec![(two, marker(&hex(9), at(9)))],
        "a's marker stays"
    );
}
