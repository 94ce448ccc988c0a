//! One behaviour suite for every [`Store`] backend. `store_conformance!(name, make)` expands to
//! a test module running each case against a fresh store from `make` (an async block).

use std::sync::Arc;

use bytes::Bytes;

use super::{ContactState, Store, StoreError};
use crate::model::{
    AckSelector, AckedEntry, DeviceId, DeviceType, Gap, Message, MessageId, NewMessage,
    ProfileChange, QueueItem, QueueTarget, QueuedEntry, SessionId, SessionUpsert, StoreOutcome,
    Timestamp, UserId, UserRecord,
};

/// Expands to `mod $name { #[tokio::test] ... }` with one test per conformance case.
macro_rules! store_conformance {
    ($name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::store::conformance::store_conformance!(@cases $make;
                users_create_and_conflicts, users_lookups, users_update, secret_key,
                sessions_upsert_reuses_active, sessions_revoke, sessions_device_token_and_touch,
                contacts_lifecycle, contacts_paging_and_pending, ping,
                messages_store_and_read, messages_duplicate_client_id, queue_seqs_per_session,
                queue_after_bounds, queue_ack, queue_drop, dm_history_paging,
                messages_delivered_and_read, queue_concurrent_appends, queue_after_empty_range,
                queue_trim_overflow, queue_trim_expired,
                purge_messages_keeps_queued_and_forgets_client_ids);
        }
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let store: std::sync::Arc<dyn $crate::store::Store> = $make.await;
                $crate::store::conformance::$case(store).await;
            }
        )*
    };
}
pub(crate) use store_conformance;

fn uid(n: u32) -> UserId {
    UserId::new(n).expect("valid uid")
}

fn device(s: &str) -> DeviceId {
    DeviceId::parse(s).expect("valid device id")
}

fn user(id: u32, phone_index: &[u8]) -> UserRecord {
    UserRecord {
        id: uid(id),
        phone_index: phone_index.to_vec(),
        phone: b"sealed-phone".to_vec(),
        name: b"sealed-name".to_vec(),
        nickname: b"sealed-nick".to_vec(),
        username: None,
        bio: None,
        public_key: Some(b"sealed-key".to_vec()),
        password_hash: "$2b$04$hash".into(),
        created_at: Timestamp::from_millis(1_700_000_000_000),
    }
}

fn upsert(user: UserId, dev: &str, ip: &[u8]) -> SessionUpsert {
    SessionUpsert {
        user,
        device_id: device(dev),
        device_type: DeviceType::Web,
        device_name: b"sealed-ua".to_vec(),
        ip: ip.to_vec(),
        last_activity: b"sealed-time".to_vec(),
        device_token_hash: b"hash-1".to_vec(),
        device_token_expires: Timestamp::from_millis(2_000_000_000_000),
        now: Timestamp::from_millis(1_700_000_000_000),
    }
}

pub(crate) async fn users_create_and_conflicts(s: Arc<dyn Store>) {
    let a = user(11_111_111, b"idx-a");
    s.create_user(&a).await.expect("create");
    assert!(matches!(
        s.create_user(&a).await,
        Err(StoreError::Conflict("uid"))
    ));
    let same_phone = user(22_222_222, b"idx-a");
    assert!(matches!(
        s.create_user(&same_phone).await,
        Err(StoreError::Conflict("phone"))
    ));
    assert_eq!(
        s.user(uid(22_222_222)).await.expect("read"),
        None,
        "failed insert leaves nothing"
    );
    assert_eq!(s.user(a.id).await.expect("read"), Some(a));
}

pub(crate) async fn users_lookups(s: Arc<dyn Store>) {
    let a = user(11_111_111, b"idx-a");
    let b = user(80_000_001, b"idx-b");
    s.create_user(&a).await.expect("create");
    s.create_user(&b).await.expect("create");
    assert_eq!(
        s.user_by_phone_index(b"idx-b").await.expect("read"),
        Some(b.clone())
    );
    assert_eq!(s.user_by_phone_index(b"idx-z").await.expect("read"), None);
    let mut got = s
        .users(&[b.id, uid(33_333_333), a.id])
        .await
        .expect("batch");
    got.sort_by_key(|u| u.id);
    assert_eq!(got, vec![a, b]);
    assert!(s.users(&[]).await.expect("empty batch").is_empty());
}

pub(crate) async fn users_update(s: Arc<dyn Store>) {
    let mut a = user(11_111_111, b"idx-a");
    a.username = Some(b"u".to_vec());
    s.create_user(&a).await.expect("create");
    let change = ProfileChange {
        nickname: Some(b"n2".to_vec()),
        username: Some(None),
        bio: Some(Some(b"bio".to_vec())),
        password_hash: Some("new".into()),
        ..ProfileChange::default()
    };
    assert!(s.update_user(a.id, &change).await.expect("update"));
    let got = s.user(a.id).await.expect("read").expect("exists");
    assert_eq!(got.nickname, b"n2");
    assert_eq!(got.name, a.name, "absent fields unchanged");
    assert_eq!(got.username, None, "Some(None) clears");
    assert_eq!(got.bio.as_deref(), Some(&b"bio"[..]));
    assert_eq!(got.password_hash, "new");
    let key = ProfileChange {
        public_key: Some(b"k2".to_vec()),
        ..ProfileChange::default()
    };
    assert!(s.update_user(a.id, &key).await.expect("update"));
    assert_eq!(
        s.user(a.id)
            .await
            .expect("read")
            .and_then(|u| u.public_key)
            .as_deref(),
        Some(&b"k2"[..])
    );
    assert!(!s
        .update_user(uid(99_999_999), &change)
        .await
        .expect("update missing"));
}

pub(crate) async fn secret_key(s: Arc<dyn Store>) {
    let a = user(11_111_111, b"idx-a");
    s.create_user(&a).await.expect("create");
    assert_eq!(s.secret_key(a.id).await.expect("read"), None);
    let t1 = Timestamp::from_millis(1_700_000_000_123);
    s.put_secret_key(a.id, b"blob-1", t1).await.expect("put");
    let t2 = Timestamp::from_millis(1_700_000_000_456);
    s.put_secret_key(a.id, b"blob-2", t2)
        .await
        .expect("replace");
    assert_eq!(
        s.secret_key(a.id).await.expect("read"),
        Some((b"blob-2".to_vec(), t2))
    );
    assert!(s.put_secret_key(uid(99_999_999), b"x", t1).await.is_err());
}

pub(crate) async fn sessions_upsert_reuses_active(s: Arc<dyn Store>) {
    let a = uid(11_111_111);
    let first = s
        .upsert_session(&upsert(a, "a1b2c3d4e5f60718", b"ip-1"))
        .await
        .expect("create");
    assert!(first.active && first.id.0 >= 1);
    let mut again = upsert(a, "a1b2c3d4e5f60718", b"ip-2");
    again.device_type = DeviceType::Phone;
    let second = s.upsert_session(&again).await.expect("reuse");
    assert_eq!(second.id, first.id);
    assert_eq!(second.ip, b"ip-2");
    assert_eq!(second.device_type, DeviceType::Phone);
    assert_eq!(second.created_at, first.created_at);
    let other = s
        .upsert_session(&upsert(a, "a2b2c3d4e5f60718", b"ip"))
        .await
        .expect("second device");
    assert_ne!(other.id, first.id);
    let other_user = s
        .upsert_session(&upsert(uid(22_222_222), "a1b2c3d4e5f60718", b"ip"))
        .await
        .expect("other user");
    assert_ne!(other_user.id, first.id);
    let ids: Vec<_> = s
        .sessions_of(a)
        .await
        .expect("list")
        .iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&first.id) && ids.contains(&other.id));
    let found = s
        .active_session(a, &device("A1B2C3D4E5F60718"))
        .await
        .expect("read");
    assert_eq!(found.map(|x| x.id), Some(first.id));
}

pub(crate) async fn sessions_revoke(s: Arc<dyn Store>) {
    let a = uid(11_111_111);
    let s1 = s
        .upsert_session(&upsert(a, "a1b2c3d4e5f60718", b"ip"))
        .await
        .expect("create");
    let s2 = s
        .upsert_session(&upsert(a, "a2b2c3d4e5f60718", b"ip"))
        .await
        .expect("create");
    let s3 = s
        .upsert_session(&upsert(a, "a3b2c3d4e5f60718", b"ip"))
        .await
        .expect("create");
    assert!(
        !s.revoke_session(uid(22_222_222), s1.id)
            .await
            .expect("foreign"),
        "only the owner revokes"
    );
    assert!(s.revoke_session(a, s1.id).await.expect("revoke"));
    assert!(!s.revoke_session(a, s1.id).await.expect("again"));
    let gone = s
        .session(s1.id)
        .await
        .expect("read")
        .expect("kept as inactive");
    assert!(!gone.active);
    assert_eq!(
        gone.device_token_hash, None,
        "revocation deletes the device token"
    );
    assert_eq!(
        s.active_session(a, &s1.device_id).await.expect("read"),
        None
    );
    let fresh = s
        .upsert_session(&upsert(a, "a1b2c3d4e5f60718", b"ip"))
        .await
        .expect("new");
    assert_ne!(fresh.id, s1.id, "a revoked session is never reused");
    let revoked = s
        .revoke_sessions_except(a, Some(s2.id))
        .await
        .expect("revoke all");
    let mut want = vec![s3.id, fresh.id];
    want.sort();
    assert_eq!(revoked, want);
    let left: Vec<_> = s
        .sessions_of(a)
        .await
        .expect("list")
        .iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(left, vec![s2.id]);
}

pub(crate) async fn sessions_device_token_and_touch(s: Arc<dyn Store>) {
    let a = uid(11_111_111);
    let s1 = s
        .upsert_session(&upsert(a, "a1b2c3d4e5f60718", b"ip"))
        .await
        .expect("create");
    assert_eq!(s1.device_token_hash.as_deref(), Some(&b"hash-1"[..]));
    let exp = Timestamp::from_millis(2_100_000_000_000);
    assert!(s
        .set_device_token(s1.id, Some((b"hash-2", exp)))
        .await
        .expect("set"));
    let got = s.session(s1.id).await.expect("read").expect("exists");
    assert_eq!(got.device_token_hash.as_deref(), Some(&b"hash-2"[..]));
    assert_eq!(got.device_token_expires, Some(exp));
    assert!(s.set_device_token(s1.id, None).await.expect("clear"));
    let got = s.session(s1.id).await.expect("read").expect("exists");
    assert_eq!(got.device_token_hash, None);
    s.touch_session(s1.id, b"sealed-time-2")
        .await
        .expect("touch");
    let got = s.session(s1.id).await.expect("read").expect("exists");
    assert_eq!(got.last_activity, b"sealed-time-2");
    assert!(s.revoke_session(a, s1.id).await.expect("revoke"));
    assert!(!s
        .set_device_token(s1.id, Some((b"h", exp)))
        .await
        .expect("inactive"));
}

pub(crate) async fn contacts_lifecycle(s: Arc<dyn Store>) {
    let (a, b, c) = (uid(11_111_111), uid(22_222_222), uid(33_333_333));
    let t = Timestamp::from_millis(1_700_000_000_000);
    assert_eq!(s.relationship(a, b).await.expect("read"), None);
    s.request_contact(a, b, true, t).await.expect("request");
    assert!(matches!(
        s.request_contact(b, a, false, t).await,
        Err(StoreError::Conflict("contact"))
    ));
    let r = s.relationship(b, a).await.expect("read").expect("exists");
    assert_eq!(
        (r.requester, r.target, r.state, r.secret),
        (a, b, ContactState::Pending, true)
    );
    assert!(
        !s.accept_contact(b, a).await.expect("wrong direction"),
        "only the target accepts"
    );
    assert!(s.accept_contact(a, b).await.expect("accept"));
    assert!(!s.accept_contact(a, b).await.expect("twice"));
    assert_eq!(
        s.relationship(a, b).await.expect("read").map(|r| r.state),
        Some(ContactState::Accepted)
    );
    assert_eq!(
        s.remove_contact(b, a)
            .await
            .expect("remove")
            .map(|r| r.state),
        Some(ContactState::Accepted)
    );
    assert_eq!(s.remove_contact(a, b).await.expect("again"), None);
    assert_eq!(s.relationship(a, c).await.expect("read"), None);
}

pub(crate) async fn contacts_paging_and_pending(s: Arc<dyn Store>) {
    let me = uid(50_000_000);
    let t = |ms| Timestamp::from_millis(1_700_000_000_000 + ms);
    for (i, n) in [40_000_004u32, 40_000_001, 60_000_003, 40_000_002]
        .into_iter()
        .enumerate()
    {
        s.request_contact(uid(n), me, false, t(i as i64))
            .await
            .expect("request");
        assert!(s.accept_contact(uid(n), me).await.expect("accept"));
    }
    s.request_contact(me, uid(70_000_000), false, t(10))
        .await
        .expect("outgoing");
    s.request_contact(uid(80_000_000), me, false, t(11))
        .await
        .expect("incoming");
    let (page, total) = s.contacts_of(me, 1, 2).await.expect("page");
    assert_eq!(total, 4);
    assert_eq!(page, vec![uid(40_000_002), uid(40_000_004)]);
    let (rest, _) = s.contacts_of(me, 4, 2).await.expect("past end");
    assert!(rest.is_empty());
    let pending = s.pending_of(me).await.expect("pending");
    assert_eq!(pending.len(), 2);
    assert!(pending
        .iter()
        .any(|p| p.requester == me && p.target == uid(70_000_000)));
    assert!(pending
        .iter()
        .any(|p| p.requester == uid(80_000_000) && p.target == me));
    assert!(s
        .pending_of(uid(40_000_001))
        .await
        .expect("none")
        .is_empty());
}

pub(crate) async fn ping(s: Arc<dyn Store>) {
    s.ping().await.expect("ping");
}

// ---- messages and device queues ----

/// Message `n`. High and low bytes move in opposite directions, so a backend that does not keep
/// the id's numeric order (a little-endian key, say) sorts them wrongly.
fn mid(n: u8) -> MessageId {
    MessageId::from_u128((u128::from(n) << 120) | u128::from(u8::MAX - n))
}

/// DM `n` from `from` to `to`, sent by session 900 without a client id.
fn dm(n: u8, from: u32, to: u32) -> NewMessage {
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
        },
        sender_session: SessionId(900),
        client_id: None,
    }
}

fn to(session: i64, user: u32, self_copy: bool) -> QueueTarget {
    QueueTarget {
        session: SessionId(session),
        user: uid(user),
        self_copy,
    }
}

async fn stored(s: &Arc<dyn Store>, m: &NewMessage, targets: &[QueueTarget]) -> Vec<i64> {
    match s.store_message(m, targets).await.expect("store") {
        StoreOutcome::Stored(seqs) => seqs,
        other => panic!("expected Stored, got {other:?}"),
    }
}

fn seqs(entries: &[QueuedEntry]) -> Vec<i64> {
    entries.iter().map(|e| e.seq).collect()
}

fn ids(messages: &[Message]) -> Vec<MessageId> {
    messages.iter().map(|m| m.id).collect()
}

fn acked(seq: i64, message: Option<u8>, self_copy: bool) -> AckedEntry {
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
    s.enqueue_events(&vec![(session, ev); n])
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
    let q = s.queue_after(me, 0, None, 100).await.expect("q");
    assert_eq!(seqs(&q), vec![7, 8, 9, 10], "the gap counts toward max_len");
    let g = gap_at(&q, 7, (t0, Timestamp::now()));
    assert_eq!(
        (g.from_seq, g.count, g.overflow),
        (1, 7, true),
        "seqs 1..=7 dropped"
    );
    assert_eq!(
        seqs(&s.queue_after(me, 6, Some(7), 100).await.expect("q")),
        vec![7],
        "the gap is an entry like any other"
    );
    assert_eq!(
        seqs(&s.queue_after(small, 0, None, 100).await.expect("q")),
        vec![1, 2, 3, 4]
    );

    assert!(
        s.trim_queues(4, never()).await.expect("again").is_empty(),
        "nothing more to trim"
    );
    assert_eq!(
        s.queue_after(me, 0, None, 100).await.expect("q"),
        q,
        "a no-op trim changes nothing"
    );

    assert_eq!(events(&s, me, 3).await, vec![11, 12, 13]);
    let t1 = Timestamp::now();
    assert_eq!(
        s.trim_queues(4, never()).await.expect("trim"),
        vec![(me, 10)]
    );
    let q = s.queue_after(me, 0, None, 100).await.expect("q");
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

    assert_eq!(
        s.ack(me, AckSelector::Seq(10)).await.expect("ack gap"),
        vec![acked(10, None, false)],
        "a gap acks like an event"
    );
    assert_eq!(
        seqs(&s.queue_after(me, 0, None, 100).await.expect("q")),
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
    assert_eq!(
        s.ack(acked_all, AckSelector::UpTo(2))
            .await
            .expect("ack")
            .len(),
        2
    );

    let t0 = Timestamp::now();
    assert_eq!(
        s.trim_queues(100, after_now()).await.expect("trim"),
        vec![(me, 4)],
        "an empty queue gets no gap"
    );
    let q = s.queue_after(me, 0, None, 100).await.expect("q");
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
    assert_eq!(s.queue_after(me, 0, None, 100).await.expect("q"), q);

    let t1 = Timestamp::now();
    assert_eq!(events(&s, me, 2).await, vec![5, 6]);
    assert!(
        s.trim_queues(100, t1).await.expect("trim").is_empty(),
        "entries queued at or after expire_before are kept, and the gap before them too"
    );
    let q = s.queue_after(me, 0, None, 100).await.expect("q");
    assert_eq!(seqs(&q), vec![4, 5, 6]);
    assert_eq!(gap_at(&q, 4, (t0, t1)), g);

    let t2 = Timestamp::now();
    assert_eq!(
        s.trim_queues(100, after_now()).await.expect("trim"),
        vec![(me, 6)]
    );
    let q = s.queue_after(me, 0, None, 100).await.expect("q");
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
    let q = s.queue_after(me, 0, None, 100).await.expect("q");
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
    assert_eq!(
        s.ack(device, AckSelector::Message(mid(2)))
            .await
            .expect("ack"),
        vec![acked(2, Some(2), false)]
    );

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
        ids(&s.dm_history(uid(a), uid(b), None, 0, 10).await.expect("h")),
        vec![mid(3), mid(1)]
    );
    assert_eq!(s.dm_count(uid(a), uid(b)).await.expect("count"), 2);
    let q = s.queue_after(device, 0, None, 10).await.expect("q");
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
