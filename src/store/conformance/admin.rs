//! Conformance cases for the operator tools' store traits ([`AdminStore`](crate::store::AdminStore),
//! [`RegistrationInviteStore`](crate::store::RegistrationInviteStore)).

use std::sync::Arc;

use super::messages::{dm, to};
use super::{uid, upsert, user, Store};
use crate::model::{ChatKind, ChatRole, Session, SessionId, Timestamp, UserId};
use crate::store::{StoreCounts, StoreError};

async fn login(s: &Arc<dyn Store>, user: UserId, dev: &str) -> Session {
    s.upsert_session(&upsert(user, dev, b"ip"))
        .await
        .expect("session")
}

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + ms)
}

/// Every note after `after`.
async fn notes(s: &Arc<dyn Store>, after: i64) -> Vec<(i64, UserId)> {
    s.revocation_notes(after, 1000).await.expect("notes")
}

pub(crate) async fn admin_lock_revokes_and_notes(s: Arc<dyn Store>) {
    let a = user(11_111_111, b"idx-a");
    let b = user(22_222_222, b"idx-b");
    s.create_user(&a).await.expect("create");
    s.create_user(&b).await.expect("create");
    assert_eq!(s.user_locked(a.id).await.expect("read"), Some(false));
    assert_eq!(s.user_locked(uid(99_999_999)).await.expect("read"), None);
    let s1 = login(&s, a.id, "aaaaaaaaaaaaaaa1").await;
    let s2 = login(&s, a.id, "aaaaaaaaaaaaaaa2").await;
    let other = login(&s, b.id, "bbbbbbbbbbbbbbb1").await;
    assert!(s.set_push(a.id, s1.id, b"sealed-push").await.expect("push"));
    let before = s.last_revocation_note().await.expect("last");

    let revoked = s.lock_user(a.id, t(1)).await.expect("lock");
    assert_eq!(
        revoked,
        Some(vec![s1.id, s2.id]),
        "every active session, ascending"
    );
    assert_eq!(s.user_locked(a.id).await.expect("read"), Some(true));
    assert!(s.sessions_of(a.id).await.expect("list").is_empty());
    let gone = s.session(s1.id).await.expect("read").expect("kept");
    assert!(
        !gone.active && gone.device_token_hash.is_none() && gone.device_token_expires.is_none()
    );
    assert!(s.push_registrations(a.id).await.expect("push").is_empty());
    assert_eq!(
        s.user_locked(b.id).await.expect("read"),
        Some(false),
        "others untouched"
    );
    assert_eq!(s.sessions_of(b.id).await.expect("list"), vec![other]);
    let noted = notes(&s, before).await;
    assert_eq!(noted.len(), 1, "one note per revocation: {noted:?}");
    assert_eq!(noted[0].1, a.id);
    assert!(noted[0].0 > before);
    assert_eq!(s.last_revocation_note().await.expect("last"), noted[0].0);

    // Locking again revokes nothing more and notes nothing; an unknown user changes nothing.
    assert_eq!(s.lock_user(a.id, t(2)).await.expect("lock"), Some(vec![]));
    assert_eq!(
        s.lock_user(uid(99_999_999), t(2)).await.expect("lock"),
        None
    );
    assert_eq!(notes(&s, before).await.len(), 1);

    // Unlocking leaves the sessions revoked; a new login works again.
    assert!(s.unlock_user(a.id).await.expect("unlock"));
    assert!(
        s.unlock_user(a.id).await.expect("unlock again"),
        "idempotent"
    );
    assert!(!s.unlock_user(uid(99_999_999)).await.expect("unlock"));
    assert_eq!(s.user_locked(a.id).await.expect("read"), Some(false));
    assert!(s.sessions_of(a.id).await.expect("list").is_empty());
    let s3 = login(&s, a.id, "aaaaaaaaaaaaaaa1").await;
    assert!(
        s3.active && s3.id != s1.id,
        "a new session, not the revoked one"
    );
}

pub(crate) async fn admin_revoke_noted_one_or_all(s: Arc<dyn Store>) {
    let a = user(11_111_111, b"idx-a");
    let b = user(22_222_222, b"idx-b");
    s.create_user(&a).await.expect("create");
    s.create_user(&b).await.expect("create");
    let s1 = login(&s, a.id, "aaaaaaaaaaaaaaa1").await;
    let s2 = login(&s, a.id, "aaaaaaaaaaaaaaa2").await;
    let s3 = login(&s, a.id, "aaaaaaaaaaaaaaa3").await;
    let sb = login(&s, b.id, "bbbbbbbbbbbbbbb1").await;
    let start = s.last_revocation_note().await.expect("last");

    assert_eq!(
        s.revoke_noted(a.id, Some(s2.id), t(1)).await.expect("one"),
        vec![s2.id]
    );
    let ids: Vec<SessionId> = s
        .sessions_of(a.id)
        .await
        .expect("list")
        .iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(ids, vec![s1.id, s3.id]);
    // Nothing revoked, nothing noted: again, another user's session, an unknown one.
    assert!(s
        .revoke_noted(a.id, Some(s2.id), t(2))
        .await
        .expect("again")
        .is_empty());
    assert!(s
        .revoke_noted(a.id, Some(sb.id), t(2))
        .await
        .expect("foreign")
        .is_empty());
    assert!(s
        .revoke_noted(a.id, Some(SessionId(987_654)), t(2))
        .await
        .expect("unknown")
        .is_empty());
    assert!(s.session(sb.id).await.expect("read").expect("b").active);
    assert_eq!(notes(&s, start).await.len(), 1);

    assert_eq!(
        s.revoke_noted(a.id, None, t(3)).await.expect("all"),
        vec![s1.id, s3.id]
    );
    assert!(s
        .revoke_noted(a.id, None, t(4))
        .await
        .expect("none left")
        .is_empty());
    let noted = notes(&s, start).await;
    assert_eq!(
        noted.iter().map(|n| n.1).collect::<Vec<_>>(),
        vec![a.id, a.id]
    );
    assert!(noted[0].0 < noted[1].0, "ascending ids");
    // Paging: after the first, at most one.
    assert_eq!(
        s.revocation_notes(noted[0].0, 1).await.expect("page"),
        vec![noted[1]]
    );
    assert_eq!(
        s.revocation_notes(start, 1).await.expect("page"),
        vec![noted[0]]
    );

    // Purging drops the notes written before the time given; ids are not reused.
    s.revoke_noted(b.id, None, t(10)).await.expect("b");
    assert_eq!(s.purge_revocation_notes(t(4)).await.expect("purge"), 2);
    let kept = notes(&s, start).await;
    assert_eq!(kept.iter().map(|n| n.1).collect::<Vec<_>>(), vec![b.id]);
    assert!(kept[0].0 > noted[1].0);
    assert_eq!(s.last_revocation_note().await.expect("last"), kept[0].0);
    assert_eq!(s.purge_revocation_notes(t(11)).await.expect("purge all"), 1);
    let sb2 = login(&s, b.id, "bbbbbbbbbbbbbbb2").await;
    s.revoke_noted(b.id, Some(sb2.id), t(12))
        .await
        .expect("again");
    let fresh = notes(&s, start).await;
    assert_eq!(fresh.len(), 1);
    assert!(
        fresh[0].0 > kept[0].0,
        "an id after a purge is still higher"
    );
}

pub(crate) async fn admin_all_sessions_newest_first(s: Arc<dyn Store>) {
    let a = user(11_111_111, b"idx-a");
    let b = user(22_222_222, b"idx-b");
    s.create_user(&a).await.expect("create");
    s.create_user(&b).await.expect("create");
    let s1 = login(&s, a.id, "aaaaaaaaaaaaaaa1").await;
    let s2 = login(&s, a.id, "aaaaaaaaaaaaaaa2").await;
    login(&s, b.id, "bbbbbbbbbbbbbbb1").await;
    s.revoke_noted(a.id, Some(s2.id), t(1))
        .await
        .expect("revoke");
    // The same device logs in again: a new session beside the revoked one.
    let s3 = login(&s, a.id, "aaaaaaaaaaaaaaa2").await;
    let all = s.all_sessions_of(a.id, 10).await.expect("all");
    let seen: Vec<(SessionId, bool)> = all.iter().map(|x| (x.id, x.active)).collect();
    assert_eq!(seen, vec![(s3.id, true), (s2.id, false), (s1.id, true)]);
    assert_eq!(all[2], s1, "whole rows");
    let two = s.all_sessions_of(a.id, 2).await.expect("limited");
    assert_eq!(
        two.iter().map(|x| x.id).collect::<Vec<_>>(),
        vec![s3.id, s2.id]
    );
    assert!(s
        .all_sessions_of(uid(99_999_999), 10)
        .await
        .expect("none")
        .is_empty());
}

pub(crate) async fn admin_counts(s: Arc<dyn Store>) {
    let now = t(1000);
    assert_eq!(s.counts(now).await.expect("empty"), StoreCounts::default());
    for (n, idx) in [
        (11_111_111, b"idx-a"),
        (22_222_222, b"idx-b"),
        (33_333_333, b"idx-c"),
    ] {
        s.create_user(&user(n, idx)).await.expect("create");
    }
    let (a, b, c) = (uid(11_111_111), uid(22_222_222), uid(33_333_333));
    let sa = login(&s, a, "aaaaaaaaaaaaaaa1").await;
    login(&s, a, "aaaaaaaaaaaaaaa2").await;
    let sb = login(&s, b, "bbbbbbbbbbbbbbb1").await;
    let sc = login(&s, c, "ccccccccccccccc1").await;
    s.lock_user(c, t(1)).await.expect("lock c");
    assert!(s.set_push(a, sa.id, b"push").await.expect("push"));
    s.put_avatar(b, "image/png", b"sealed", "etag", t(2))
        .await
        .expect("avatar");
    s.request_contact(a, b, false, t(3)).await.expect("ask");
    assert!(s.accept_contact(a, b).await.expect("accept"));
    s.request_contact(a, c, false, t(4)).await.expect("ask");
    let chat = s
        .create_chat(ChatKind::Chat, b"n", a, t(5))
        .await
        .expect("chat");
    s.add_member(chat, b, ChatRole::Member, t(6))
        .await
        .expect("member");
    s.create_chat(ChatKind::Channel, b"n", b, t(7))
        .await
        .expect("channel");
    s.create_chat(ChatKind::Channel, b"n", c, t(8))
        .await
        .expect("channel");
    let m = dm(1, 11_111_111, 22_222_222);
    s.store_message(
        &m,
        &[
            to(sb.id.0, 22_222_222, false),
            to(sa.id.0, 11_111_111, true),
        ],
    )
    .await
    .expect("store");
    let m2 = dm(2, 22_222_222, 11_111_111);
    s.store_message(&m2, &[to(sa.id.0, 11_111_111, false)])
        .await
        .expect("store");
    s.create_registration_invite(b"open", t(2000))
        .await
        .expect("invite");
    s.create_registration_invite(b"used", t(2000))
        .await
        .expect("invite");
    s.create_registration_invite(b"expired", now)
        .await
        .expect("invite");
    assert!(s.use_registration_invite(b"used", t(1)).await.expect("use"));
    let want = StoreCounts {
        users: 3,
        locked_users: 1,
        active_sessions: 3,
        chats: 1,
        channels: 2,
        chat_members: 4,
        contacts: 1,
        contact_requests: 1,
        messages: 2,
        queued_entries: 3,
        push_registrations: 1,
        avatars: 1,
        open_registration_invites: 1,
    };
    assert_eq!(s.counts(now).await.expect("counts"), want);
    assert!(!s.session(sc.id).await.expect("read").expect("c").active);
}

pub(crate) async fn registration_invites_single_use(s: Arc<dyn Store>) {
    let now = t(0);
    s.create_registration_invite(b"idx-1", t(60_000))
        .await
        .expect("create");
    assert!(matches!(
        s.create_registration_invite(b"idx-1", t(90_000)).await,
        Err(StoreError::Conflict("invite"))
    ));
    assert!(!s
        .restore_registration_invite(b"idx-1")
        .await
        .expect("restore unused"));
    assert!(s.use_registration_invite(b"idx-1", now).await.expect("use"));
    assert!(!s
        .use_registration_invite(b"idx-1", now)
        .await
        .expect("used"));
    // A failed registration gives it back, once.
    assert!(s
        .restore_registration_invite(b"idx-1")
        .await
        .expect("restore"));
    assert!(!s
        .restore_registration_invite(b"idx-1")
        .await
        .expect("restore twice"));
    assert!(s
        .use_registration_invite(b"idx-1", now)
        .await
        .expect("use again"));
    assert!(!s
        .use_registration_invite(b"nope", now)
        .await
        .expect("unknown"));
    // Expiry: usable strictly before `expires_at`.
    s.create_registration_invite(b"idx-2", t(10))
        .await
        .expect("create");
    assert!(!s
        .use_registration_invite(b"idx-2", t(10))
        .await
        .expect("expired"));
    assert!(s
        .use_registration_invite(b"idx-2", t(9))
        .await
        .expect("in time"));

    // Concurrent registrations with one code: exactly one takes it.
    s.create_registration_invite(b"idx-3", t(60_000))
        .await
        .expect("create");
    let tries: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.use_registration_invite(b"idx-3", now).await })
        })
        .collect();
    let mut won = 0;
    for h in tries {
        if h.await.expect("task").expect("use") {
            won += 1;
        }
    }
    assert_eq!(won, 1);

    // Purge: expired ones go, used or not; live ones stay.
    assert_eq!(s.purge_registration_invites(t(10)).await.expect("purge"), 1);
    assert!(
        matches!(
            s.create_registration_invite(b"idx-1", t(1)).await,
            Err(StoreError::Conflict("invite"))
        ),
        "idx-1 is still there"
    );
    assert_eq!(
        s.purge_registration_invites(t(60_000))
            .await
            .expect("purge"),
        2
    );
    s.create_registration_invite(b"idx-1", t(70_000))
        .await
        .expect("recreated after purge");
}
