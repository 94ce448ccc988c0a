//! Conformance cases for erasing an account ([`EraseStore`](crate::store::EraseStore)) and the
//! reads of an export.

use std::sync::Arc;

use bytes::Bytes;

use super::messages::{dm, stored, to};
use super::{uid, upsert, user, Store, StoreError};
use crate::model::{
    ChatKind, ChatMember, ChatRole, InviteRecord, NewEntry, SessionId, Timestamp, UserId,
};
use crate::store::{Contact, ContactState, ErasedMembership};

fn at(n: i64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + n)
}

async fn event(s: &Arc<dyn Store>, session: SessionId, body: &'static [u8]) {
    s.enqueue(&[(session, NewEntry::Event(Bytes::from_static(body)))])
        .await
        .expect("enqueue");
}

pub(crate) async fn erase_removes_the_account_and_retires_the_uid(s: Arc<dyn Store>) {
    let a = user(11_111_111, b"idx-a");
    let b = user(22_222_222, b"idx-b");
    s.create_user(&a).await.expect("create");
    s.create_user(&b).await.expect("create");
    for u in [a.id, b.id] {
        s.put_secret_key(u, b"backup", at(1)).await.expect("backup");
        s.put_settings(u, b"settings").await.expect("settings");
        s.put_avatar(u, "image/png", b"img", "etag", at(1))
            .await
            .expect("avatar");
    }
    let erased = s.erase_user(a.id).await.expect("erase").expect("a user");
    assert_eq!(erased.sessions, Vec::<SessionId>::new());
    assert!(erased.contacts.is_empty() && erased.chats.is_empty());
    assert_eq!(s.user(a.id).await.expect("read"), None);
    assert_eq!(s.user_by_phone_index(b"idx-a").await.expect("read"), None);
    assert_eq!(s.secret_key(a.id).await.expect("read"), None);
    assert_eq!(s.avatar(a.id).await.expect("read"), None);
    assert_eq!(
        s.settings(&[a.id, b.id]).await.expect("read"),
        vec![(b.id, b"settings".to_vec())]
    );
    // The uid is never handed out again, even for another phone…
    let reuse = user(11_111_111, b"idx-new");
    assert!(matches!(
        s.create_user(&reuse).await,
        Err(StoreError::Conflict("uid"))
    ));
    assert_eq!(s.user(a.id).await.expect("read"), None, "nothing stored");
    // …but the phone is free for a new account.
    let again = user(33_333_333, b"idx-a");
    s.create_user(&again)
        .await
        .expect("the phone registers again");
    assert_eq!(
        s.user_by_phone_index(b"idx-a").await.expect("read"),
        Some(again)
    );
    // The other user is untouched; a second erase, or an unknown uid, is None.
    assert_eq!(s.user(b.id).await.expect("read"), Some(b.clone()));
    assert!(s.secret_key(b.id).await.expect("read").is_some());
    assert!(s.avatar(b.id).await.expect("read").is_some());
    assert_eq!(s.erase_user(a.id).await.expect("again"), None);
    assert_eq!(s.erase_user(uid(44_444_444)).await.expect("unknown"), None);
}

pub(crate) async fn erase_sessions_queues_and_push(s: Arc<dyn Store>) {
    let (a, b) = (user(11_111_111, b"idx-a"), user(22_222_222, b"idx-b"));
    s.create_user(&a).await.expect("create");
    s.create_user(&b).await.expect("create");
    let s1 = s
        .upsert_session(&upsert(a.id, "a1b2c3d4e5f60718", b"ip"))
        .await
        .expect("s1");
    let s2 = s
        .upsert_session(&upsert(a.id, "a2b2c3d4e5f60718", b"ip"))
        .await
        .expect("s2");
    let s3 = s
        .upsert_session(&upsert(a.id, "a3b2c3d4e5f60718", b"ip"))
        .await
        .expect("s3");
    let sb = s
        .upsert_session(&upsert(b.id, "b1b2c3d4e5f60718", b"ip"))
        .await
        .expect("sb");
    assert!(s.revoke_session(a.id, s2.id).await.expect("revoke"));
    assert!(s.set_push(a.id, s1.id, b"push-a").await.expect("push"));
    assert!(s.set_push(b.id, sb.id, b"push-b").await.expect("push"));
    event(&s, s1.id, b"a1").await;
    event(&s, s1.id, b"a2").await;
    event(&s, s3.id, b"a3").await;
    event(&s, sb.id, b"b1").await;
    assert_eq!(
        s.queued_entries(&[s1.id, s3.id, s1.id]).await.expect("n"),
        3
    );
    let (ever, total) = s.sessions_ever(a.id, 10).await.expect("ever");
    let ids: Vec<SessionId> = ever.iter().map(|x| x.id).collect();
    assert_eq!(
        ids,
        vec![s3.id, s2.id, s1.id],
        "revoked ones too, newest first"
    );
    assert_eq!(total, 3);
    assert!(!ever[1].active);
    assert_eq!(ever[2], s.session(s1.id).await.expect("read").expect("s1"));
    let (two, total) = s.sessions_ever(a.id, 2).await.expect("ever");
    assert_eq!((two.len(), total), (2, 3));

    let erased = s.erase_user(a.id).await.expect("erase").expect("a user");
    assert_eq!(erased.active_sessions, vec![s1.id, s3.id]);
    assert_eq!(erased.sessions, vec![s1.id, s2.id, s3.id]);
    for id in [s1.id, s2.id, s3.id] {
        assert_eq!(s.session(id).await.expect("read"), None, "{id:?}");
        assert_eq!(
            s.last_seq(id).await.expect("seq"),
            0,
            "the seq counter goes too"
        );
    }
    assert!(s.sessions_of(a.id).await.expect("read").is_empty());
    assert_eq!(s.sessions_ever(a.id, 10).await.expect("read"), (vec![], 0));
    assert!(s.push_registrations(a.id).await.expect("read").is_empty());
    assert_eq!(
        s.queued_entries(&[s1.id, s2.id, s3.id]).await.expect("n"),
        0
    );
    // The other user keeps everything.
    assert_eq!(s.queued_entries(&[sb.id]).await.expect("n"), 1);
    assert_eq!(
        s.push_registrations(b.id).await.expect("read"),
        vec![(sb.id, b"push-b".to_vec())]
    );
    assert!(s
        .session(sb.id)
        .await
        .expect("read")
        .is_some_and(|x| x.active));
}

pub(crate) async fn erase_contacts_both_ways(s: Arc<dyn Store>) {
    let a = user(55_555_555, b"idx-a");
    s.create_user(&a).await.expect("create");
    let (b, c, d, e) = (
        uid(22_222_222),
        uid(33_333_333),
        uid(11_111_111),
        uid(66_666_666),
    );
    s.request_contact(b, a.id, false, at(1))
        .await
        .expect("b asks a");
    assert!(s.accept_contact(b, a.id).await.expect("accepted"));
    s.request_contact(a.id, e, true, at(2))
        .await
        .expect("a asks e");
    s.request_contact(d, a.id, false, at(3))
        .await
        .expect("d asks a");
    s.request_contact(a.id, c, false, at(4))
        .await
        .expect("a asks c");
    assert!(s.accept_contact(a.id, c).await.expect("accepted"));
    s.request_contact(b, c, false, at(5)).await.expect("others");
    let contact = |requester, target, state, secret, n| Contact {
        requester,
        target,
        state,
        secret,
        requested_at: at(n),
    };
    let all = vec![
        contact(b, a.id, ContactState::Accepted, false, 1),
        contact(a.id, c, ContactState::Accepted, false, 4),
        contact(d, a.id, ContactState::Pending, false, 3),
        contact(a.id, e, ContactState::Pending, true, 2),
    ];
    assert_eq!(
        s.relationships_of(a.id, 10).await.expect("read"),
        (all.clone(), 4),
        "accepted first, then pending, each by the other uid"
    );
    assert_eq!(
        s.relationships_of(a.id, 3).await.expect("read"),
        (all[..3].to_vec(), 4)
    );
    assert_eq!(s.relationships_of(b, 10).await.expect("read").1, 2);
    let erased = s.erase_user(a.id).await.expect("erase").expect("a user");
    assert_eq!(
        erased.contacts, all,
        "what the erase removed, in the same order"
    );
    assert_eq!(
        s.relationships_of(a.id, 10).await.expect("read"),
        (vec![], 0)
    );
    for other in [b, c, d, e] {
        assert_eq!(s.relationship(a.id, other).await.expect("read"), None);
    }
    assert!(s.contacts_of(b, 0, 10).await.expect("read").0.is_empty());
    assert!(s.pending_of(d).await.expect("read").is_empty());
    assert!(
        s.relationship(b, c).await.expect("read").is_some(),
        "others keep theirs"
    );
}

async fn join(s: &Arc<dyn Store>, chat: i64, u: UserId, role: ChatRole, n: i64) {
    assert!(s.add_member(chat, u, role, at(n)).await.expect("join"));
}

fn invite(chat_id: i64, created_by: UserId) -> InviteRecord {
    InviteRecord {
        chat_id,
        code: b"sealed-code".to_vec(),
        created_by,
        expires_at: at(1_000_000),
    }
}

pub(crate) async fn erase_chats_pass_ownership_or_go(s: Arc<dyn Store>) {
    let a = user(55_555_555, b"idx-a");
    s.create_user(&a).await.expect("create");
    let (m1, m2, adm, adm2, b) = (
        uid(11_111_111),
        uid(22_222_222),
        uid(77_777_777),
        uid(88_888_888),
        uid(99_999_999),
    );
    // 1: the oldest admin inherits, though a plain member joined earlier.
    let c1 = s
        .create_chat(ChatKind::Chat, b"n1", a.id, at(0))
        .await
        .expect("c1");
    join(&s, c1, m1, ChatRole::Member, 1).await;
    join(&s, c1, adm2, ChatRole::Admin, 3).await;
    join(&s, c1, adm, ChatRole::Admin, 2).await;
    // 2: no admin: the oldest member; a tie on the time goes to the smaller uid.
    let c2 = s
        .create_chat(ChatKind::Channel, b"n2", a.id, at(0))
        .await
        .expect("c2");
    join(&s, c2, m2, ChatRole::Member, 5).await;
    join(&s, c2, b, ChatRole::Member, 4).await;
    join(&s, c2, m1, ChatRole::Member, 4).await;
    // 3: the owner alone: the chat goes, with its permanent code and invites.
    let c3 = s
        .create_chat(ChatKind::Chat, b"n3", a.id, at(0))
        .await
        .expect("c3");
    s.set_public(c3, true, Some((b"sealed-perm", b"perm-idx")))
        .await
        .expect("public");
    s.create_invite(b"inv-c3", &invite(c3, a.id))
        .await
        .expect("invite");
    // 4: a plain member of another's chat: only the membership and the invites a made go.
    let c4 = s
        .create_chat(ChatKind::Chat, b"n4", b, at(0))
        .await
        .expect("c4");
    join(&s, c4, a.id, ChatRole::Admin, 1).await;
    s.create_invite(b"inv-by-a", &invite(c4, a.id))
        .await
        .expect("invite");
    s.create_invite(b"inv-by-b", &invite(c4, b))
        .await
        .expect("invite");

    let erased = s.erase_user(a.id).await.expect("erase").expect("a user");
    let m = |chat_id, kind, role, new_owner, deleted| ErasedMembership {
        chat_id,
        kind,
        role,
        new_owner,
        deleted,
    };
    assert_eq!(
        erased.chats,
        vec![
            m(c1, ChatKind::Chat, ChatRole::Owner, Some(adm), false),
            m(c2, ChatKind::Channel, ChatRole::Owner, Some(m1), false),
            m(c3, ChatKind::Chat, ChatRole::Owner, None, true),
            m(c4, ChatKind::Chat, ChatRole::Admin, None, false),
        ]
    );
    for (chat, heir) in [(c1, adm), (c2, m1)] {
        assert_eq!(s.chat(chat).await.expect("read").expect("kept").owner, heir);
        assert_eq!(
            s.member(chat, heir).await.expect("read").map(|x| x.role),
            Some(ChatRole::Owner)
        );
        assert_eq!(s.member(chat, a.id).await.expect("read"), None);
    }
    assert_eq!(
        s.member(c1, adm2).await.expect("read").map(|x| x.role),
        Some(ChatRole::Admin),
        "the other admin stays admin"
    );
    assert_eq!(
        s.member(c2, b).await.expect("read"),
        Some(ChatMember {
            user: b,
            role: ChatRole::Member,
            joined_at: at(4)
        })
    );
    assert_eq!(s.chat(c3).await.expect("read"), None, "an empty chat goes");
    assert!(s.member_ids(c3).await.expect("read").is_empty());
    assert_eq!(s.chat_by_code_index(b"perm-idx").await.expect("read"), None);
    assert_eq!(s.invite(b"inv-c3").await.expect("read"), None);
    assert_eq!(s.invite(b"inv-by-a").await.expect("read"), None);
    assert_eq!(
        s.invite(b"inv-by-b").await.expect("read"),
        Some(invite(c4, b))
    );
    let c4_now = s.chat(c4).await.expect("read").expect("kept");
    assert_eq!(c4_now.owner, b);
    assert_eq!(s.member_ids(c4).await.expect("read"), vec![b]);
    assert!(s.chats_of(a.id, 0, 10).await.expect("read").0.is_empty());
    // Chat ids are not reused after a deleted chat.
    let next = s
        .create_chat(ChatKind::Chat, b"n5", b, at(9))
        .await
        .expect("c5");
    assert!(next > c4, "{next} after {c4}");
}

pub(crate) async fn erase_keeps_messages(s: Arc<dyn Store>) {
    let (a, b) = (user(11_111_111, b"idx-a"), user(22_222_222, b"idx-b"));
    s.create_user(&a).await.expect("create");
    s.create_user(&b).await.expect("create");
    let m = dm(1, 11_111_111, 22_222_222);
    stored(&s, &m, &[to(500, 22_222_222, false)]).await;
    let reply = dm(2, 22_222_222, 11_111_111);
    stored(&s, &reply, &[to(600, 11_111_111, false)]).await;
    s.erase_user(a.id).await.expect("erase").expect("a user");
    assert_eq!(
        s.message(m.message.id).await.expect("read"),
        Some(m.message.clone()),
        "delivered to b: stays"
    );
    assert!(s.message(reply.message.id).await.expect("read").is_some());
    assert_eq!(s.dm_count(a.id, b.id).await.expect("count"), 2);
    assert_eq!(s.queued_entries(&[SessionId(500)]).await.expect("n"), 1);
}
