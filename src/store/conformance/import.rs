//! Conformance cases for [`ImportStore`](crate::store::ImportStore): users and chats created
//! under the original's identifiers once, conflicts with what Melo made itself.

use std::collections::HashSet;
use std::sync::Arc;

use super::{uid, user, Store};
use crate::model::{ChatKind, ChatRole, Timestamp};
use crate::store::{ImportDone, ImportOutcome, ImportedChat};

fn chat(id: i64, owner: u32, code: Option<&[u8]>) -> ImportedChat {
    ImportedChat {
        id,
        kind: ChatKind::Channel,
        sealed_name: format!("sealed-name-{id}").into_bytes(),
        owner: uid(owner),
        created_at: Timestamp::from_millis(1_600_000_000_000),
        is_public: code.is_some(),
        code: code.map(|c| (b"sealed-code".to_vec(), c.to_vec())),
        slow_mode_secs: 30,
    }
}

pub(crate) async fn import_users_once_never_over_melo_users(s: Arc<dyn Store>) {
    let a = user(11_111_111, b"idx-a");
    assert_eq!(
        s.import_user(&a).await.expect("import"),
        ImportOutcome::Created
    );
    assert_eq!(s.user(a.id).await.expect("read"), Some(a.clone()));
    assert!(s.is_imported_user(a.id).await.expect("read"));
    let mut changed = a.clone();
    changed.name = b"another-name".to_vec();
    assert_eq!(
        s.import_user(&changed).await.expect("again"),
        ImportOutcome::AlreadyImported
    );
    assert_eq!(
        s.user(a.id).await.expect("read"),
        Some(a.clone()),
        "a second import changes nothing"
    );

    let melo = user(22_222_222, b"idx-b");
    s.create_user(&melo).await.expect("create");
    assert!(!s.is_imported_user(melo.id).await.expect("read"));
    assert_eq!(
        s.import_user(&user(22_222_222, b"idx-other"))
            .await
            .expect("import"),
        ImportOutcome::Conflict("uid")
    );
    assert_eq!(
        s.import_user(&user(33_333_333, b"idx-b"))
            .await
            .expect("import"),
        ImportOutcome::Conflict("phone")
    );
    assert_eq!(s.user(uid(33_333_333)).await.expect("read"), None);
    assert_eq!(s.user(melo.id).await.expect("read"), Some(melo));
    assert!(!s.is_imported_user(uid(33_333_333)).await.expect("read"));

    // An erased imported user is gone for good: a later import cannot bring the uid back.
    s.erase_user(a.id).await.expect("erase").expect("existed");
    assert!(!s.is_imported_user(a.id).await.expect("read"));
    assert_eq!(
        s.import_user(&a).await.expect("import"),
        ImportOutcome::Conflict("retired")
    );
    assert_eq!(s.user(a.id).await.expect("read"), None);
}

pub(crate) async fn import_chats_keep_their_ids(s: Arc<dyn Store>) {
    s.import_user(&user(11_111_111, b"idx-a"))
        .await
        .expect("user");
    s.import_user(&user(22_222_222, b"idx-b"))
        .await
        .expect("user");
    let c = chat(42, 11_111_111, Some(b"code-index-42"));
    assert_eq!(
        s.import_chat(&c).await.expect("import"),
        ImportOutcome::Created
    );
    let stored = s.chat(42).await.expect("read").expect("chat 42");
    assert_eq!(stored.kind, ChatKind::Channel);
    assert_eq!(stored.name, c.sealed_name);
    assert_eq!(stored.owner, uid(11_111_111));
    assert_eq!(stored.created_at, c.created_at);
    assert!(stored.is_public);
    assert_eq!(stored.invite_code.as_deref(), Some(&b"sealed-code"[..]));
    assert_eq!(stored.slow_mode_secs, 30);
    let owner = s
        .member(42, uid(11_111_111))
        .await
        .expect("read")
        .expect("owner is a member");
    assert_eq!(owner.role, ChatRole::Owner);
    assert_eq!(owner.joined_at, c.created_at);
    assert_eq!(
        s.chat_by_code_index(b"code-index-42")
            .await
            .expect("read")
            .map(|c| c.id),
        Some(42)
    );
    assert_eq!(
        s.import_chat(&chat(42, 22_222_222, None))
            .await
            .expect("again"),
        ImportOutcome::AlreadyImported
    );
    assert_eq!(
        s.chat(42).await.expect("read").map(|c| c.owner),
        Some(uid(11_111_111))
    );

    // Chats made afterwards get higher ids; their ids are Melo's, not the importer's.
    let next = s
        .create_chat(
            ChatKind::Chat,
            b"sealed",
            uid(22_222_222),
            Timestamp::from_millis(1_700_000_000_000),
        )
        .await
        .expect("create");
    assert!(next > 42, "{next}");
    assert_eq!(
        s.import_chat(&chat(next, 11_111_111, None))
            .await
            .expect("import"),
        ImportOutcome::Conflict("chat")
    );
    assert_eq!(
        s.chat(next).await.expect("read").map(|c| c.owner),
        Some(uid(22_222_222))
    );
    assert_eq!(
        s.import_chat(&chat(7, 22_222_222, Some(b"code-index-42")))
            .await
            .expect("import"),
        ImportOutcome::Conflict("invite")
    );
    assert_eq!(
        s.chat(7).await.expect("read"),
        None,
        "nothing of a refused chat"
    );
    assert_eq!(s.member(7, uid(22_222_222)).await.expect("read"), None);
    let (list, total) = s.chats_of(uid(11_111_111), 0, 10).await.expect("list");
    assert_eq!(total, 1);
    assert_eq!(list[0].0.id, 42);
}

pub(crate) async fn import_reserves_chat_ids(s: Arc<dyn Store>) {
    s.import_user(&user(11_111_111, b"idx-a"))
        .await
        .expect("user");
    let at = Timestamp::from_millis(1_700_000_000_000);
    let first = s
        .create_chat(ChatKind::Chat, b"sealed", uid(11_111_111), at)
        .await
        .expect("create");
    s.import_chat(&chat(first + 3, 11_111_111, None))
        .await
        .expect("import");
    s.reserve_chat_ids(first + 40).await.expect("reserve");
    assert_eq!(
        s.chat(first + 40).await.expect("read"),
        None,
        "no row is left"
    );
    let next = s
        .create_chat(ChatKind::Chat, b"sealed", uid(11_111_111), at)
        .await
        .expect("create");
    assert!(next > first + 40, "{next}");
    s.reserve_chat_ids(first + 10)
        .await
        .expect("a lower reserve");
    let after = s
        .create_chat(ChatKind::Chat, b"sealed", uid(11_111_111), at)
        .await
        .expect("create");
    assert!(
        after > next,
        "never lowers the next id: {after} after {next}"
    );
    s.reserve_chat_ids(next).await.expect("an existing id");
    assert_eq!(
        s.chat(next).await.expect("read").map(|c| c.id),
        Some(next),
        "kept"
    );
}

pub(crate) async fn import_password_hash_compare_and_set(s: Arc<dyn Store>) {
    let a = user(11_111_112, b"idx-cas");
    s.import_user(&a).await.expect("import");
    let old = a.password_hash.as_str();
    assert!(!s
        .replace_password_hash(a.id, "$2b$04$other", "$2b$04$new1")
        .await
        .expect("cas"));
    assert_eq!(
        s.user(a.id)
            .await
            .expect("read")
            .expect("user")
            .password_hash,
        old
    );
    assert!(s
        .replace_password_hash(a.id, old, "$2b$04$new1")
        .await
        .expect("cas"));
    // A second replacement from the same old value (a login racing the first) changes nothing.
    assert!(!s
        .replace_password_hash(a.id, old, "$2b$04$new2")
        .await
        .expect("cas"));
    assert_eq!(
        s.user(a.id)
            .await
            .expect("read")
            .expect("user")
            .password_hash,
        "$2b$04$new1"
    );
    assert!(!s
        .replace_password_hash(uid(99_999_998), old, "$2b$04$x")
        .await
        .expect("cas on an unknown user"));
}

pub(crate) async fn import_deleted_chat_stays_deleted(s: Arc<dyn Store>) {
    let a = user(11_111_111, b"idx-a");
    s.import_user(&a).await.expect("user");
    assert_eq!(
        s.import_chat(&chat(5, 11_111_111, None))
            .await
            .expect("import"),
        ImportOutcome::Created
    );
    // The owner's erase deletes the chat (no member remains).
    s.erase_user(a.id).await.expect("erase").expect("existed");
    assert_eq!(s.chat(5).await.expect("read"), None);
    s.import_user(&user(22_222_222, b"idx-b"))
        .await
        .expect("user");
    assert_eq!(
        s.import_chat(&chat(5, 22_222_222, None))
            .await
            .expect("import"),
        ImportOutcome::AlreadyImported,
        "a later run does not bring a deleted chat back"
    );
    assert_eq!(s.chat(5).await.expect("read"), None);
}

pub(crate) async fn import_done_is_recorded_once_per_import(s: Arc<dyn Store>) {
    let a = user(11_111_111, b"idx-a");
    let b = user(22_222_222, b"idx-b");
    s.import_user(&a).await.expect("user");
    s.import_user(&b).await.expect("user");
    // A Melo user (not imported) and a Melo chat are never marked.
    let melo = user(33_333_333, b"idx-c");
    s.create_user(&melo).await.expect("melo user");
    s.import_chat(&chat(5, 11_111_111, None))
        .await
        .expect("chat");
    let melo_chat = s
        .create_chat(ChatKind::Chat, b"n", melo.id, Timestamp::from_millis(1))
        .await
        .expect("melo chat");
    assert_eq!(s.import_done().await.expect("read"), ImportDone::default());

    s.mark_import_done(&[a.id, melo.id], false, &[5, melo_chat])
        .await
        .expect("mark");
    let done = s.import_done().await.expect("read");
    assert_eq!(done.graph_users, HashSet::from([a.id]));
    assert!(done.token_users.is_empty(), "no Redis, no tokens: {done:?}");
    assert_eq!(done.member_chats, HashSet::from([5]));

    s.mark_import_done(&[a.id, b.id], true, &[])
        .await
        .expect("mark");
    let done = s.import_done().await.expect("read");
    assert_eq!(done.graph_users, HashSet::from([a.id, b.id]));
    assert_eq!(done.token_users, HashSet::from([a.id, b.id]));
    s.mark_import_done(&[a.id], false, &[]).await.expect("mark");
    assert!(
        s.import_done()
            .await
            .expect("read")
            .token_users
            .contains(&a.id),
        "a later run without Redis keeps the tokens done"
    );

    // Erasure takes the user's marks with it.
    s.erase_user(b.id).await.expect("erase").expect("existed");
    let done = s.import_done().await.expect("read");
    assert_eq!(done.graph_users, HashSet::from([a.id]));
    assert_eq!(done.token_users, HashSet::from([a.id]));
}
