//! Conformance cases for avatars: at most one sealed avatar per existing user.

use std::sync::Arc;

use super::{uid, user, Store, StoreError};
use crate::model::Timestamp;
use crate::store::StoredAvatar;

fn stored(mime: &str, sealed: &[u8], etag: &str, at: Timestamp) -> StoredAvatar {
    StoredAvatar {
        mime: mime.to_owned(),
        sealed: sealed.to_vec(),
        etag: etag.to_owned(),
        updated_at: at,
    }
}

pub(crate) async fn avatars_put_replace_get(s: Arc<dyn Store>) {
    let a = user(11_111_111, b"idx-a");
    let b = user(22_222_222, b"idx-b");
    s.create_user(&a).await.expect("create");
    s.create_user(&b).await.expect("create");
    assert_eq!(s.avatar(a.id).await.expect("read"), None);
    let t1 = Timestamp::from_millis(1_700_000_000_123);
    s.put_avatar(a.id, "image/png", b"sealed-1", "etag-1", t1)
        .await
        .expect("put");
    assert_eq!(
        s.avatar(a.id).await.expect("read"),
        Some(stored("image/png", b"sealed-1", "etag-1", t1))
    );
    let t2 = Timestamp::from_millis(1_700_000_000_456);
    s.put_avatar(a.id, "image/webp", b"sealed-2", "etag-2", t2)
        .await
        .expect("replace");
    assert_eq!(
        s.avatar(a.id).await.expect("read"),
        Some(stored("image/webp", b"sealed-2", "etag-2", t2)),
        "one avatar per user, the newest"
    );
    assert_eq!(s.avatar(b.id).await.expect("read"), None, "per user");
}

pub(crate) async fn avatars_delete(s: Arc<dyn Store>) {
    let a = user(11_111_111, b"idx-a");
    let b = user(22_222_222, b"idx-b");
    s.create_user(&a).await.expect("create");
    s.create_user(&b).await.expect("create");
    let t = Timestamp::from_millis(1_700_000_000_000);
    assert!(!s.delete_avatar(a.id).await.expect("none yet"));
    s.put_avatar(a.id, "image/png", b"a", "ea", t)
        .await
        .expect("put");
    s.put_avatar(b.id, "image/jpeg", b"b", "eb", t)
        .await
        .expect("put");
    assert!(s.delete_avatar(a.id).await.expect("delete"));
    assert!(!s.delete_avatar(a.id).await.expect("twice"));
    assert_eq!(s.avatar(a.id).await.expect("read"), None);
    assert_eq!(
        s.avatar(b.id).await.expect("read").map(|v| v.sealed),
        Some(b"b".to_vec()),
        "other users keep theirs"
    );
}

pub(crate) async fn avatars_need_a_user(s: Arc<dyn Store>) {
    let t = Timestamp::from_millis(1_700_000_000_000);
    assert!(matches!(
        s.put_avatar(uid(99_999_999), "image/png", b"x", "e", t)
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.avatar(uid(99_999_999)).await.expect("read"), None);
    assert!(!s.delete_avatar(uid(99_999_999)).await.expect("delete"));
}
