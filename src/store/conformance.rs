//! One behaviour suite for every [`Store`] backend. `store_conformance!(name, make)` expands to
//! a test module running each case against a fresh store from `make` (an async block yielding an
//! `Arc` of the store, or an `Option` of one: `None` skips the case). With feature `testing`,
//! [`crate::testing::store_conformance`] runs the same cases for backends outside the crate.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::{ContactState, Store, StoreError};
use crate::model::{
    DeviceId, DeviceType, ProfileChange, SessionUpsert, Timestamp, UserId, UserRecord,
};

/// Calls back `$crate::store::conformance::store_cases!(@$mode ($args) ; case, case, ...)` with
/// every case of the suite: the one list behind both the crate's unit tests and
/// [`cases`] (what [`crate::testing::store_conformance`] runs).
macro_rules! store_cases {
    (@tests ($make:expr); $($case:ident),*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(store) = $crate::store::conformance::MaybeStore::into_store($make.await)
                else {
                    return;
                };
                $crate::store::conformance::$case(store).await;
            }
        )*
    };
    (@table (); $($case:ident),*) => {
        /// Every case of the suite, by name, in the suite's order.
        #[cfg_attr(all(test, not(feature = "testing")), allow(dead_code))]
        pub(crate) fn cases() -> Vec<(&'static str, Case)> {
            vec![$((
                stringify!($case),
                (|s: Arc<dyn Store>| -> Pin<Box<dyn Future<Output = ()> + Send>> {
                    Box::pin($case(s))
                }) as Case,
            )),*]
        }
    };
    ($mode:ident $args:tt) => {
        $crate::store::conformance::store_cases!(@$mode $args;
            users_create_and_conflicts, users_lookups, users_update, secret_key, user_settings,
                sessions_upsert_reuses_active, sessions_revoke, sessions_device_token_and_touch,
                contacts_lifecycle, contacts_paging_and_pending, ping,
                messages_store_and_read, system_sender_round_trips, messages_duplicate_client_id, queue_seqs_per_session,
                queue_after_bounds, queue_ack, queue_drop, dm_history_paging,
                messages_delivered_and_read, queue_concurrent_appends, queue_after_empty_range,
                queue_after_byte_bound, queue_ack_with_receipts, history_byte_bound,
                queue_trim_overflow, queue_trim_expired,
                purge_messages_keeps_queued_and_forgets_client_ids,
                push_set_replace_list, push_refused_for_foreign_or_revoked_session,
                push_delete_is_conditional, push_revocation_removes_registrations,
                push_listing_excludes_other_users,
                avatars_put_replace_get, avatars_delete, avatars_need_a_user,
                chats_create, chats_of_order_paging_role, chat_members_paging_and_order,
                chat_membership_changes, chat_member_ids_after_removals, chat_staff_and_rename,
                chat_set_public_keeps_first_code, chat_slow_mode, chat_invites, chat_share,
                manage_edit, manage_delete, manage_pin, manage_reactions,
                manage_state_in_queue_replay, chat_history_paging, purge_removes_reactions,
                sealed_rows_page_in_key_order, sealed_replace_is_compare_and_set,
                admin_lock_revokes_and_notes, admin_revoke_noted_one_or_all,
                admin_all_sessions_newest_first, admin_counts, registration_invites_single_use,
                erase_removes_the_account_and_retires_the_uid, erase_sessions_queues_and_push,
                erase_contacts_both_ways, erase_chats_pass_ownership_or_go,
                erase_keeps_messages, read_markers_forward_only,
                read_markers_concurrent_advances, read_markers_per_user, read_markers_empty,
                read_markers_follow_membership, import_users_once_never_over_melo_users,
                import_chats_keep_their_ids, import_reserves_chat_ids,
                import_deleted_chat_stays_deleted, import_done_is_recorded_once_per_import,
                import_password_hash_compare_and_set,
                schedule_create_list_cancel, schedule_client_id_and_bound,
                schedule_claims_and_leases, schedule_concurrent_claims_take_each_row_once,
                erase_removes_schedules);
    };
}
pub(crate) use store_cases;

/// Expands to `mod $name { #[tokio::test] ... }` with one test per conformance case.
#[cfg(test)]
macro_rules! store_conformance {
    ($name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::store::conformance::store_cases!(tests($make));
        }
    };
}
#[cfg(test)]
pub(crate) use store_conformance;

/// One case of the suite: a run against a fresh store, panicking when the store misbehaves.
pub(crate) type Case = fn(Arc<dyn Store>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

store_cases!(table());

/// What the constructor of `store_conformance!` yields: a store, or `None` to skip the case (a
/// backend whose test server is not configured; the constructor says so on stderr).
#[cfg(test)]
pub(crate) trait MaybeStore {
    /// The store to test, if any.
    fn into_store(self) -> Option<Arc<dyn Store>>;
}

#[cfg(test)]
impl<S: Store> MaybeStore for Arc<S> {
    fn into_store(self) -> Option<Arc<dyn Store>> {
        Some(self)
    }
}

#[cfg(test)]
impl<S: Store> MaybeStore for Option<Arc<S>> {
    fn into_store(self) -> Option<Arc<dyn Store>> {
        self.map(|s| s as Arc<dyn Store>)
    }
}

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

pub(crate) async fn user_settings(s: Arc<dyn Store>) {
    use super::{RowKey, SealedTable};
    let a = user(11_111_111, b"idx-a");
    let b = user(22_222_222, b"idx-b");
    s.create_user(&a).await.expect("create");
    s.create_user(&b).await.expect("create");
    assert!(s.settings(&[a.id, b.id]).await.expect("read").is_empty());
    assert!(s.settings(&[]).await.expect("none asked").is_empty());
    s.put_settings(a.id, b"settings-1").await.expect("put");
    s.put_settings(a.id, b"settings-2").await.expect("replace");
    assert_eq!(
        s.settings(&[b.id, a.id, uid(99_999_999)])
            .await
            .expect("read"),
        vec![(a.id, b"settings-2".to_vec())]
    );
    assert!(matches!(
        s.put_settings(uid(99_999_999), b"x").await,
        Err(StoreError::NotFound)
    ));
    let rows = s
        .sealed_rows(SealedTable::UserSettings, None, 10)
        .await
        .expect("sealed rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].key, RowKey::Id(11_111_111));
    assert_eq!(rows[0].values, vec![Some(b"settings-2".to_vec())]);
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

mod admin;
mod avatars;
mod chats;
mod erase;
mod expiry;
mod history;
mod import;
mod manage;
mod messages;
mod push;
mod read_markers;
mod schedule;
mod sealed;
pub(crate) use admin::*;
pub(crate) use avatars::*;
pub(crate) use chats::*;
pub(crate) use erase::*;
pub(crate) use expiry::*;
pub(crate) use history::*;
pub(crate) use import::*;
pub(crate) use manage::*;
pub(crate) use messages::*;
pub(crate) use push::*;
pub(crate) use read_markers::*;
pub(crate) use schedule::*;
pub(crate) use sealed::*;
