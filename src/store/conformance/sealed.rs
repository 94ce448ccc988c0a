//! Conformance cases for [`SealedStore`](crate::store::SealedStore): paging in key order and
//! compare-and-set replacement, the two things data-key rotation relies on.

use std::sync::Arc;

use super::messages::{event, queued};
use super::{uid, upsert, user, Store};
use crate::model::{ChatKind, InviteRecord, QueueItem, Timestamp};
use crate::store::{RowKey, SealedRow, SealedTable, SealedUpdate};

async fn all_rows(s: &Arc<dyn Store>, table: SealedTable, limit: u32) -> Vec<SealedRow> {
    let mut out: Vec<SealedRow> = Vec::new();
    loop {
        let after = out.last().map(|r| r.key.clone());
        let page = s
            .sealed_rows(table, after.as_ref(), limit)
            .await
            .expect("page");
        assert!(page.len() <= limit as usize);
        let full = page.len() == limit as usize;
        out.extend(page);
        if !full {
            return out;
        }
    }
}

fn update(key: RowKey, column: &'static str, old: &[u8], new: &[u8]) -> SealedUpdate {
    SealedUpdate {
        key,
        column,
        old: old.to_vec(),
        new: new.to_vec(),
    }
}

pub(crate) async fn sealed_rows_page_in_key_order(s: Arc<dyn Store>) {
    for (n, idx) in [
        (30_000_003, b"i3"),
        (10_000_001, b"i1"),
        (20_000_002, b"i2"),
    ] {
        s.create_user(&user(n, idx)).await.expect("user");
    }
    let rows = all_rows(&s, SealedTable::Users, 2).await;
    let keys: Vec<RowKey> = rows.iter().map(|r| r.key.clone()).collect();
    assert_eq!(
        keys,
        vec![
            RowKey::Id(10_000_001),
            RowKey::Id(20_000_002),
            RowKey::Id(30_000_003)
        ]
    );
    assert_eq!(
        rows[0].values,
        vec![
            Some(b"i1".to_vec()),
            Some(b"sealed-phone".to_vec()),
            Some(b"sealed-name".to_vec()),
            Some(b"sealed-nick".to_vec()),
            None,
            None,
            Some(b"sealed-key".to_vec()),
        ],
        "values in SealedTable::columns order, NULL as None"
    );

    let a = uid(10_000_001);
    let session = s
        .upsert_session(&upsert(a, "a1b2c3d4e5f60718", b"sealed-ip"))
        .await
        .expect("session");
    let rows = all_rows(&s, SealedTable::Sessions, 10).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].key, RowKey::Id(session.id.0));
    assert_eq!(
        rows[0].values,
        vec![
            Some(b"sealed-ua".to_vec()),
            Some(b"sealed-ip".to_vec()),
            Some(b"sealed-time".to_vec())
        ]
    );
    assert_eq!(
        rows[0].context,
        vec!["10000001".to_owned(), "a1b2c3d4e5f60718".to_owned()],
        "a session's seal is bound to uid:device"
    );

    let chat = s
        .create_chat(ChatKind::Chat, b"sealed-name", a, Timestamp::from_millis(1))
        .await
        .expect("chat");
    s.set_public(chat, true, Some((b"sealed-code", b"code-idx")))
        .await
        .expect("public");
    let rows = all_rows(&s, SealedTable::Chats, 10).await;
    assert_eq!(
        rows[0].values,
        vec![
            Some(b"sealed-name".to_vec()),
            Some(b"sealed-code".to_vec()),
            Some(b"code-idx".to_vec())
        ]
    );
    for idx in [b"inv-b", b"inv-a"] {
        let invite = InviteRecord {
            chat_id: chat,
            code: b"sealed-invite".to_vec(),
            created_by: a,
            expires_at: Timestamp::from_millis(i64::MAX / 2),
        };
        s.create_invite(idx, &invite).await.expect("invite");
    }
    let rows = all_rows(&s, SealedTable::Invites, 1).await;
    let keys: Vec<RowKey> = rows.iter().map(|r| r.key.clone()).collect();
    assert_eq!(
        keys,
        vec![
            RowKey::Bytes(b"inv-a".to_vec()),
            RowKey::Bytes(b"inv-b".to_vec())
        ]
    );

    s.enqueue(&[
        (session.id, event("sealed-event-1")),
        (session.id, event("sealed-event-2")),
    ])
    .await
    .expect("events");
    let rows = all_rows(&s, SealedTable::QueueEvents, 1).await;
    let got: Vec<(RowKey, Vec<Option<Vec<u8>>>)> =
        rows.into_iter().map(|r| (r.key, r.values)).collect();
    assert_eq!(
        got,
        vec![
            (
                RowKey::Pair(session.id.0, 1),
                vec![Some(b"sealed-event-1".to_vec())]
            ),
            (
                RowKey::Pair(session.id.0, 2),
                vec![Some(b"sealed-event-2".to_vec())]
            ),
        ]
    );
    assert!(all_rows(&s, SealedTable::Avatars, 5).await.is_empty());
}

pub(crate) async fn sealed_replace_is_compare_and_set(s: Arc<dyn Store>) {
    let a = uid(10_000_001);
    s.create_user(&user(10_000_001, b"old-idx"))
        .await
        .expect("user");
    let key = RowKey::Id(10_000_001);
    let applied = s
        .replace_sealed(
            SealedTable::Users,
            &[
                update(key.clone(), "name", b"sealed-name", b"resealed-name"),
                // Stale: the value is no longer what the caller read.
                update(key.clone(), "nickname", b"something-else", b"lost"),
                update(key.clone(), "phone_index", b"old-idx", b"new-idx"),
            ],
        )
        .await
        .expect("replace");
    assert_eq!(applied, 2);
    let u = s.user(a).await.expect("read").expect("user");
    assert_eq!(u.name, b"resealed-name");
    assert_eq!(u.nickname, b"sealed-nick", "a stale update changes nothing");
    assert_eq!(
        s.user_by_phone_index(b"new-idx").await.expect("read"),
        Some(u.clone())
    );
    assert_eq!(s.user_by_phone_index(b"old-idx").await.expect("read"), None);

    let session = s
        .upsert_session(&upsert(a, "a1b2c3d4e5f60718", b"sealed-ip"))
        .await
        .expect("session");
    let skey = RowKey::Id(session.id.0);
    let n = s
        .replace_sealed(
            SealedTable::Sessions,
            &[update(skey, "ip", b"sealed-ip", b"resealed-ip")],
        )
        .await
        .expect("session");
    assert_eq!(n, 1);
    let got = s.session(session.id).await.expect("read").expect("session");
    assert_eq!(got.ip, b"resealed-ip");

    let chat = s
        .create_chat(ChatKind::Chat, b"sealed-name", a, Timestamp::from_millis(1))
        .await
        .expect("chat");
    s.set_public(chat, true, Some((b"sealed-code", b"code-idx")))
        .await
        .expect("public");
    let n = s
        .replace_sealed(
            SealedTable::Chats,
            &[
                update(RowKey::Id(chat), "invite_code", b"sealed-code", b"new-code"),
                update(RowKey::Id(chat), "code_index", b"code-idx", b"new-code-idx"),
            ],
        )
        .await
        .expect("chat");
    assert_eq!(n, 2);
    let c = s
        .chat_by_code_index(b"new-code-idx")
        .await
        .expect("read")
        .expect("found by the new index");
    assert_eq!(c.invite_code.as_deref(), Some(&b"new-code"[..]));
    assert_eq!(s.chat_by_code_index(b"code-idx").await.expect("read"), None);

    let invite = InviteRecord {
        chat_id: chat,
        code: b"sealed-invite".to_vec(),
        created_by: a,
        expires_at: Timestamp::from_millis(i64::MAX / 2),
    };
    s.create_invite(b"inv-old", &invite).await.expect("invite");
    let ikey = RowKey::Bytes(b"inv-old".to_vec());
    let n = s
        .replace_sealed(
            SealedTable::Invites,
            &[
                update(ikey.clone(), "code", b"sealed-invite", b"resealed-invite"),
                update(ikey, "code_index", b"inv-old", b"inv-new"),
            ],
        )
        .await
        .expect("invite");
    assert_eq!(n, 2);
    assert_eq!(s.invite(b"inv-old").await.expect("read"), None);
    let moved = s.invite(b"inv-new").await.expect("read").expect("moved");
    assert_eq!(moved.code, b"resealed-invite");

    let seqs = s
        .enqueue(&[(session.id, event("sealed-event"))])
        .await
        .expect("event");
    let n = s
        .replace_sealed(
            SealedTable::QueueEvents,
            &[update(
                RowKey::Pair(session.id.0, seqs[0]),
                "event",
                b"sealed-event",
                b"resealed-event",
            )],
        )
        .await
        .expect("event");
    assert_eq!(n, 1);
    let queued = queued(&s, session.id, 0, None, 10).await;
    assert!(
        matches!(&queued[0].item, QueueItem::Event(b) if b.as_ref() == b"resealed-event"),
        "{queued:?}"
    );

    s.put_secret_key(a, b"sealed-backup", Timestamp::from_millis(1))
        .await
        .expect("backup");
    let n = s
        .replace_sealed(
            SealedTable::SecretKeys,
            &[update(
                RowKey::Id(10_000_001),
                "ciphertext",
                b"sealed-backup",
                b"resealed-backup",
            )],
        )
        .await
        .expect("backup");
    assert_eq!(n, 1);
    assert_eq!(
        s.secret_key(a).await.expect("read").map(|(b, _)| b),
        Some(b"resealed-backup".to_vec())
    );
}
