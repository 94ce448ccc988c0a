//! Conformance cases for push registrations: one sealed registration per active session.

use std::sync::Arc;

use super::{uid, upsert, Store};
use crate::model::{Session, SessionId, UserId};

async fn login(s: &Arc<dyn Store>, user: UserId, dev: &str) -> Session {
    s.upsert_session(&upsert(user, dev, b"ip"))
        .await
        .expect("session")
}

async fn listed(s: &Arc<dyn Store>, user: UserId) -> Vec<(SessionId, Vec<u8>)> {
    let mut v = s.push_registrations(user).await.expect("list");
    v.sort_by_key(|(id, _)| *id);
    v
}

fn reg(id: SessionId, sealed: &[u8]) -> (SessionId, Vec<u8>) {
    (id, sealed.to_vec())
}

pub(crate) async fn push_set_replace_list(s: Arc<dyn Store>) {
    let a = uid(11_111_111);
    let s1 = login(&s, a, "a1b2c3d4e5f60718").await;
    let s2 = login(&s, a, "a2b2c3d4e5f60718").await;
    assert!(listed(&s, a).await.is_empty());
    assert!(s.set_push(a, s1.id, b"sealed-1").await.expect("set"));
    assert_eq!(listed(&s, a).await, vec![reg(s1.id, b"sealed-1")]);
    assert!(s.set_push(a, s1.id, b"sealed-1b").await.expect("replace"));
    assert!(s.set_push(a, s2.id, b"sealed-2").await.expect("second"));
    assert_eq!(
        listed(&s, a).await,
        vec![reg(s1.id, b"sealed-1b"), reg(s2.id, b"sealed-2")],
        "one registration per session, the newest"
    );
    // Setting the same value again is still a success.
    assert!(s.set_push(a, s2.id, b"sealed-2").await.expect("same"));
    // A re-login of the same device keeps the session and its registration.
    let again = login(&s, a, "a1b2c3d4e5f60718").await;
    assert_eq!(again.id, s1.id);
    assert_eq!(listed(&s, a).await.len(), 2);
}

pub(crate) async fn push_refused_for_foreign_or_revoked_session(s: Arc<dyn Store>) {
    let (a, b) = (uid(11_111_111), uid(22_222_222));
    let s1 = login(&s, a, "a1b2c3d4e5f60718").await;
    assert!(
        !s.set_push(b, s1.id, b"theirs").await.expect("foreign"),
        "only the owner registers"
    );
    assert!(listed(&s, a).await.is_empty());
    assert!(listed(&s, b).await.is_empty());
    assert!(
        !s.set_push(a, SessionId(999_999), b"x")
            .await
            .expect("unknown"),
        "unknown session"
    );
    assert!(s.revoke_session(a, s1.id).await.expect("revoke"));
    assert!(
        !s.set_push(a, s1.id, b"late").await.expect("revoked"),
        "a revoked session takes no registration"
    );
    assert!(listed(&s, a).await.is_empty());
    assert!(
        !s.delete_push(s1.id, b"late").await.expect("delete"),
        "nothing was stored"
    );
}

pub(crate) async fn push_delete_is_conditional(s: Arc<dyn Store>) {
    let a = uid(11_111_111);
    let s1 = login(&s, a, "a1b2c3d4e5f60718").await;
    let s2 = login(&s, a, "a2b2c3d4e5f60718").await;
    assert!(s.set_push(a, s1.id, b"old").await.expect("set"));
    assert!(s.set_push(a, s1.id, b"new").await.expect("replace"));
    assert!(s.set_push(a, s2.id, b"old").await.expect("set"));
    assert!(
        !s.delete_push(s1.id, b"old").await.expect("stale"),
        "a stale 404/410 must not delete the newer registration"
    );
    assert!(!s.delete_push(s1.id, b"ne").await.expect("prefix"));
    assert!(!s.delete_push(s1.id, b"").await.expect("empty"));
    assert_eq!(
        listed(&s, a).await,
        vec![reg(s1.id, b"new"), reg(s2.id, b"old")]
    );
    assert!(s.delete_push(s1.id, b"new").await.expect("delete"));
    assert!(!s.delete_push(s1.id, b"new").await.expect("twice"));
    assert!(!s
        .delete_push(SessionId(999_999), b"new")
        .await
        .expect("unknown"));
    assert_eq!(listed(&s, a).await, vec![reg(s2.id, b"old")]);
    assert!(s
        .set_push(a, s1.id, b"again")
        .await
        .expect("set after delete"));
    assert_eq!(
        listed(&s, a).await,
        vec![reg(s1.id, b"again"), reg(s2.id, b"old")]
    );
}

pub(crate) async fn push_revocation_removes_registrations(s: Arc<dyn Store>) {
    let (a, b) = (uid(11_111_111), uid(22_222_222));
    let s1 = login(&s, a, "a1b2c3d4e5f60718").await;
    let s2 = login(&s, a, "a2b2c3d4e5f60718").await;
    let s3 = login(&s, a, "a3b2c3d4e5f60718").await;
    let s4 = login(&s, a, "a4b2c3d4e5f60718").await;
    let other = login(&s, b, "a1b2c3d4e5f60718").await;
    for (id, v) in [
        (s1.id, b"p1"),
        (s2.id, b"p2"),
        (s3.id, b"p3"),
        (s4.id, b"p4"),
    ] {
        assert!(s.set_push(a, id, v).await.expect("set"));
    }
    assert!(s.set_push(b, other.id, b"pb").await.expect("set"));

    assert!(s.revoke_session(a, s1.id).await.expect("revoke one"));
    assert_eq!(
        listed(&s, a).await,
        vec![reg(s2.id, b"p2"), reg(s3.id, b"p3"), reg(s4.id, b"p4")]
    );
    assert!(
        !s.delete_push(s1.id, b"p1").await.expect("delete"),
        "the revoked session's registration is gone, not merely hidden"
    );

    // The device logs in again: a new session, without the old registration.
    let fresh = login(&s, a, "a1b2c3d4e5f60718").await;
    assert_ne!(fresh.id, s1.id);
    assert!(listed(&s, a).await.iter().all(|(id, _)| *id != fresh.id));
    assert!(s.set_push(a, fresh.id, b"p1b").await.expect("set"));

    let mut revoked = s
        .revoke_sessions_except(a, Some(s3.id))
        .await
        .expect("revoke others");
    revoked.sort();
    let mut want = vec![s2.id, s4.id, fresh.id];
    want.sort();
    assert_eq!(revoked, want);
    assert_eq!(listed(&s, a).await, vec![reg(s3.id, b"p3")]);
    for (id, v) in [(s2.id, &b"p2"[..]), (s4.id, b"p4"), (fresh.id, b"p1b")] {
        assert!(!s.delete_push(id, v).await.expect("delete"), "deleted");
    }

    s.revoke_sessions_except(a, None).await.expect("revoke all");
    assert!(listed(&s, a).await.is_empty());
    assert!(!s.delete_push(s3.id, b"p3").await.expect("delete"));
    assert_eq!(
        listed(&s, b).await,
        vec![reg(other.id, b"pb")],
        "another user's registrations survive"
    );
}

pub(crate) async fn push_listing_excludes_other_users(s: Arc<dyn Store>) {
    let (a, b, c) = (uid(11_111_111), uid(22_222_222), uid(33_333_333));
    let sa = login(&s, a, "a1b2c3d4e5f60718").await;
    // Same device id, different users: distinct sessions.
    let sb = login(&s, b, "a1b2c3d4e5f60718").await;
    let sb2 = login(&s, b, "a2b2c3d4e5f60718").await;
    assert!(s.set_push(a, sa.id, b"pa").await.expect("set"));
    assert!(s.set_push(b, sb.id, b"pb").await.expect("set"));
    assert!(s.set_push(b, sb2.id, b"pb2").await.expect("set"));
    assert_eq!(listed(&s, a).await, vec![reg(sa.id, b"pa")]);
    assert_eq!(
        listed(&s, b).await,
        vec![reg(sb.id, b"pb"), reg(sb2.id, b"pb2")]
    );
    assert!(listed(&s, c).await.is_empty());
    // Opaque bytes survive unchanged, including NULs and non-UTF-8.
    let blob = [0u8, 255, 0, 1, 0xc3, 0x28];
    assert!(s.set_push(a, sa.id, &blob).await.expect("binary"));
    assert_eq!(listed(&s, a).await, vec![reg(sa.id, &blob)]);
}
