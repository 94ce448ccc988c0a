use std::sync::Arc;

use crate::crypto::{DataKeys, JwtKey, StaticKeys};
use crate::ephemeral::Ephemeral;
use crate::model::{Timestamp, UserId, UserRecord};
use crate::service::Error;
use crate::{Melo, MemoryEphemeral, MemoryStore};

/// A socket of the erased user that closes only after the erase (on another node, say) runs
/// presence for a user who no longer exists: no last-seen time may be written again.
#[tokio::test]
async fn an_erased_account_gets_no_last_seen_time_afterwards() {
    let keys = StaticKeys::new(JwtKey::generate(0).expect("key"), DataKeys::generate());
    let eph = Arc::new(MemoryEphemeral::new());
    let store = Arc::new(MemoryStore::new());
    let melo = Melo::builder(store.clone(), Arc::new(keys))
        .ephemeral(eph.clone())
        .build()
        .expect("build");
    let services = melo.services();
    let uid = UserId::new(12_345_678).expect("uid");
    let record = UserRecord {
        id: uid,
        phone_index: b"idx".to_vec(),
        phone: b"sealed".to_vec(),
        name: b"sealed".to_vec(),
        nickname: b"sealed".to_vec(),
        username: None,
        bio: None,
        public_key: None,
        password_hash: "$2b$04$hash".into(),
        created_at: Timestamp::now(),
    };
    crate::store::UserStore::create_user(&*store, &record)
        .await
        .expect("user");
    let seen = format!("seen:{uid}");
    services.presence.refresh(uid).await;
    assert!(
        eph.get(&seen).await.expect("get").is_some(),
        "offline: seen"
    );
    let done = services
        .accounts
        .delete_account(uid)
        .await
        .expect("deleted");
    assert_eq!(done.user_id, uid);
    assert_eq!(eph.get(&seen).await.expect("get"), None, "forgotten");
    services.presence.refresh(uid).await;
    assert_eq!(
        eph.get(&seen).await.expect("get"),
        None,
        "not written again"
    );
    assert!(matches!(
        services.accounts.delete_account(uid).await,
        Err(Error::UserNotFound)
    ));
}
