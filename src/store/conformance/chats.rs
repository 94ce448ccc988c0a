//! Conformance cases for chats, channels, memberships and invites.

use std::sync::Arc;

use super::{uid, Store, StoreError};
use crate::model::{ChatKind, ChatMember, ChatRole, InviteRecord, Timestamp, UserId};

fn at(n: i64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + n)
}

async fn new_chat(s: &Arc<dyn Store>, owner: UserId, n: i64) -> i64 {
    s.create_chat(ChatKind::Chat, b"sealed-name", owner, at(n))
        .await
        .expect("create chat")
}

async fn ids_sorted(s: &Arc<dyn Store>, chat: i64) -> Vec<UserId> {
    let mut v = s.member_ids(chat).await.expect("member ids");
    v.sort();
    v
}

pub(crate) async fn chats_create(s: Arc<dyn Store>) {
    let a = uid(11_111_111);
    assert_eq!(s.chat(1).await.expect("none yet"), None);
    let c1 = s
        .create_chat(ChatKind::Channel, b"sealed-news", a, at(5))
        .await
        .expect("create");
    let c2 = new_chat(&s, a, 6).await;
    assert_eq!(c1, 1, "ids start at 1");
    assert_eq!(c2, 2, "ids count up");
    let chat = s.chat(c1).await.expect("read").expect("exists");
    assert_eq!(chat.id, c1);
    assert_eq!(chat.kind, ChatKind::Channel);
    assert_eq!(chat.name, b"sealed-news");
    assert_eq!(chat.owner, a);
    assert_eq!(chat.created_at, at(5));
    assert!(!chat.is_public);
    assert_eq!(chat.invite_code, None);
    assert_eq!(chat.slow_mode_secs, 0);
    assert_eq!(
        s.member(c1, a).await.expect("member"),
        Some(ChatMember {
            user: a,
            role: ChatRole::Owner,
            joined_at: at(5),
        }),
        "the owner is a member with role owner"
    );
    assert_eq!(s.member_ids(c1).await.expect("ids"), vec![a]);
    assert_eq!(s.chat(c2 + 1).await.expect("unknown"), None);
}

pub(crate) async fn chats_of_order_paging_role(s: Arc<dyn Store>) {
    let (a, b) = (uid(11_111_111), uid(22_222_222));
    let old = new_chat(&s, a, 10).await;
    let newest = new_chat(&s, b, 30).await;
    // Same created_at as `mid_low`: the higher id comes first.
    let mid_low = new_chat(&s, b, 20).await;
    let mid_high = new_chat(&s, a, 20).await;
    let _not_mine = new_chat(&s, uid(33_333_333), 40).await;
    assert!(s
        .add_member(newest, a, ChatRole::Admin, at(31))
        .await
        .expect("add"));
    assert!(s
        .add_member(mid_low, a, ChatRole::Member, at(32))
        .await
        .expect("add"));

    let (all, total) = s.chats_of(a, 0, 100).await.expect("list");
    assert_eq!(total, 4);
    let got: Vec<(i64, ChatRole)> = all.iter().map(|(c, r)| (c.id, *r)).collect();
    assert_eq!(
        got,
        vec![
            (newest, ChatRole::Admin),
            (mid_high, ChatRole::Owner),
            (mid_low, ChatRole::Member),
            (old, ChatRole::Owner),
        ],
        "newest first, id breaks ties, with the caller's role"
    );
    assert_eq!(all[0].0.owner, b, "the full record");

    let (page, total) = s.chats_of(a, 1, 2).await.expect("page");
    assert_eq!(total, 4, "total ignores paging");
    let ids: Vec<i64> = page.iter().map(|(c, _)| c.id).collect();
    assert_eq!(ids, vec![mid_high, mid_low]);
    let (past, total) = s.chats_of(a, 10, 5).await.expect("past the end");
    assert!(past.is_empty());
    assert_eq!(total, 4);

    let (none, total) = s.chats_of(uid(44_444_444), 0, 10).await.expect("none");
    assert!(none.is_empty());
    assert_eq!(total, 0);
}

pub(crate) async fn chat_members_paging_and_order(s: Arc<dyn Store>) {
    let owner = uid(50_000_000);
    let chat = new_chat(&s, owner, 0).await;
    // Joined later than the owner; two share a join time: uid breaks the tie.
    for (u, t) in [(40_000_000, 2), (30_000_000, 1), (20_000_000, 2)] {
        assert!(s
            .add_member(chat, uid(u), ChatRole::Member, at(t))
            .await
            .expect("add"));
    }
    let (all, total) = s.members(chat, 0, 100).await.expect("members");
    assert_eq!(total, 4);
    let order: Vec<UserId> = all.iter().map(|m| m.user).collect();
    assert_eq!(
        order,
        vec![owner, uid(30_000_000), uid(20_000_000), uid(40_000_000)],
        "joined_at ascending, then uid"
    );
    assert_eq!(all[0].role, ChatRole::Owner);
    assert_eq!(all[1].joined_at, at(1));
    let (page, total) = s.members(chat, 2, 1).await.expect("page");
    assert_eq!(total, 4);
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].user, uid(20_000_000));
    let (empty, total) = s.members(chat + 1, 0, 10).await.expect("unknown chat");
    assert!(empty.is_empty());
    assert_eq!(total, 0);
}

pub(crate) async fn chat_membership_changes(s: Arc<dyn Store>) {
    let (a, b, c) = (uid(11_111_111), uid(22_222_222), uid(33_333_333));
    let chat = new_chat(&s, a, 0).await;
    assert!(s
        .add_member(chat, b, ChatRole::Member, at(1))
        .await
        .expect("add"));
    assert!(
        !s.add_member(chat, b, ChatRole::Admin, at(2))
            .await
            .expect("again"),
        "already a member"
    );
    let m = s.member(chat, b).await.expect("read").expect("member");
    assert_eq!(
        (m.role, m.joined_at),
        (ChatRole::Member, at(1)),
        "no change"
    );

    assert!(s.set_role(chat, b, ChatRole::Admin).await.expect("promote"));
    assert_eq!(
        s.member(chat, b).await.expect("read").map(|m| m.role),
        Some(ChatRole::Admin)
    );
    assert!(s
        .set_role(chat, b, ChatRole::Admin)
        .await
        .expect("same role"));
    assert!(
        !s.set_role(chat, c, ChatRole::Admin)
            .await
            .expect("non-member"),
        "not a member"
    );
    assert_eq!(s.member(chat, c).await.expect("read"), None);

    assert!(s.remove_member(chat, b).await.expect("remove"));
    assert!(!s.remove_member(chat, b).await.expect("again"));
    assert!(!s.remove_member(chat + 1, b).await.expect("unknown chat"));
    assert_eq!(s.member(chat, b).await.expect("read"), None);
    assert!(s.chats_of(b, 0, 10).await.expect("list").0.is_empty());
    // A removed member may join again.
    assert!(s
        .add_member(chat, b, ChatRole::Member, at(9))
        .await
        .expect("rejoin"));

    assert!(matches!(
        s.add_member(chat + 1, c, ChatRole::Member, at(3)).await,
        Err(StoreError::NotFound)
    ));
    assert!(s.chats_of(c, 0, 10).await.expect("list").0.is_empty());
}

pub(crate) async fn chat_member_ids_after_removals(s: Arc<dyn Store>) {
    let owner = uid(11_111_111);
    let chat = new_chat(&s, owner, 0).await;
    let other = new_chat(&s, owner, 1).await;
    let users: Vec<UserId> = (1..=5).map(|n| uid(20_000_000 + n)).collect();
    for u in &users {
        s.add_member(chat, *u, ChatRole::Member, at(2))
            .await
            .expect("add");
    }
    s.add_member(other, uid(90_000_000), ChatRole::Member, at(2))
        .await
        .expect("add elsewhere");
    s.remove_member(chat, users[1]).await.expect("remove");
    s.remove_member(chat, users[3]).await.expect("remove");
    assert_eq!(
        ids_sorted(&s, chat).await,
        vec![owner, users[0], users[2], users[4]]
    );
    assert_eq!(ids_sorted(&s, other).await, vec![owner, uid(90_000_000)]);
    assert!(s.member_ids(other + 1).await.expect("unknown").is_empty());
}

pub(crate) async fn chat_set_public_keeps_first_code(s: Arc<dyn Store>) {
    let a = uid(11_111_111);
    let chat = new_chat(&s, a, 0).await;
    assert_eq!(
        s.set_public(chat, false, None).await.expect("no code"),
        None
    );
    assert_eq!(
        s.set_public(chat, true, Some((b"sealed-code-1", b"index-1")))
            .await
            .expect("first"),
        Some(b"sealed-code-1".to_vec())
    );
    let c = s.chat(chat).await.expect("read").expect("exists");
    assert!(c.is_public);
    assert_eq!(c.invite_code.as_deref(), Some(&b"sealed-code-1"[..]));

    assert_eq!(
        s.set_public(chat, false, None).await.expect("private"),
        Some(b"sealed-code-1".to_vec()),
        "turning private keeps the code"
    );
    assert!(!s.chat(chat).await.expect("read").expect("exists").is_public);
    assert_eq!(
        s.set_public(chat, true, Some((b"sealed-code-2", b"index-2")))
            .await
            .expect("second"),
        Some(b"sealed-code-1".to_vec()),
        "a second code is ignored"
    );
    let c = s.chat(chat).await.expect("read").expect("exists");
    assert!(c.is_public);
    assert_eq!(c.invite_code.as_deref(), Some(&b"sealed-code-1"[..]));

    assert_eq!(
        s.chat_by_code_index(b"index-1")
            .await
            .expect("lookup")
            .map(|c| c.id),
        Some(chat)
    );
    assert_eq!(
        s.chat_by_code_index(b"index-2").await.expect("ignored"),
        None
    );
    // Found even while private: the service checks is_public.
    s.set_public(chat, false, None).await.expect("private");
    let found = s
        .chat_by_code_index(b"index-1")
        .await
        .expect("lookup")
        .expect("found");
    assert!(!found.is_public);

    assert!(matches!(
        s.set_public(chat + 1, true, Some((b"x", b"index-x"))).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.chat_by_code_index(b"index-x").await.expect("none"), None);

    // Another chat cannot take a blind index in use; the failed call changes nothing.
    let other = new_chat(&s, a, 1).await;
    assert!(matches!(
        s.set_public(other, true, Some((b"sealed-o", b"index-1")))
            .await,
        Err(StoreError::Conflict("invite"))
    ));
    let o = s.chat(other).await.expect("read").expect("exists");
    assert!(!o.is_public);
    assert_eq!(o.invite_code, None);
}

pub(crate) async fn chat_slow_mode(s: Arc<dyn Store>) {
    let chat = new_chat(&s, uid(11_111_111), 0).await;
    assert!(s.set_slow_mode(chat, 30).await.expect("set"));
    assert_eq!(
        s.chat(chat).await.expect("read").map(|c| c.slow_mode_secs),
        Some(30)
    );
    assert!(s.set_slow_mode(chat, 86_400).await.expect("max"));
    assert!(s.set_slow_mode(chat, 0).await.expect("off"));
    assert_eq!(
        s.chat(chat).await.expect("read").map(|c| c.slow_mode_secs),
        Some(0)
    );
    assert!(!s.set_slow_mode(chat + 1, 5).await.expect("unknown"));
}

pub(crate) async fn chat_invites(s: Arc<dyn Store>) {
    let a = uid(11_111_111);
    let chat = new_chat(&s, a, 0).await;
    let inv = |code: &[u8], exp: i64| InviteRecord {
        chat_id: chat,
        code: code.to_vec(),
        created_by: a,
        expires_at: at(exp),
    };
    s.create_invite(b"inv-1", &inv(b"sealed-1", 100))
        .await
        .expect("create");
    s.create_invite(b"inv-2", &inv(b"sealed-2", 200))
        .await
        .expect("create");
    s.create_invite(b"inv-3", &inv(b"sealed-3", 300))
        .await
        .expect("create");
    assert!(matches!(
        s.create_invite(b"inv-1", &inv(b"other", 999)).await,
        Err(StoreError::Conflict("invite"))
    ));
    assert_eq!(
        s.invite(b"inv-1").await.expect("read"),
        Some(inv(b"sealed-1", 100)),
        "a conflict leaves the first"
    );
    assert_eq!(s.invite(b"inv-9").await.expect("read"), None);

    assert_eq!(s.purge_invites(at(50)).await.expect("purge"), 0);
    assert_eq!(
        s.purge_invites(at(200)).await.expect("purge"),
        2,
        "expires_at <= now is expired"
    );
    assert_eq!(s.invite(b"inv-1").await.expect("read"), None);
    assert_eq!(s.invite(b"inv-2").await.expect("read"), None);
    assert_eq!(
        s.invite(b"inv-3").await.expect("read"),
        Some(inv(b"sealed-3", 300))
    );
    assert_eq!(s.purge_invites(at(200)).await.expect("again"), 0);
    // A purged index is free again.
    s.create_invite(b"inv-1", &inv(b"sealed-1b", 400))
        .await
        .expect("reuse");
}

pub(crate) async fn chat_share(s: Arc<dyn Store>) {
    let (a, b, c, d) = (
        uid(11_111_111),
        uid(22_222_222),
        uid(33_333_333),
        uid(44_444_444),
    );
    let ab = new_chat(&s, a, 0).await;
    let cd = new_chat(&s, c, 1).await;
    s.add_member(ab, b, ChatRole::Member, at(2))
        .await
        .expect("add");
    s.add_member(cd, d, ChatRole::Member, at(2))
        .await
        .expect("add");
    assert!(s.share_chat(a, b).await.expect("share"));
    assert!(s.share_chat(b, a).await.expect("symmetric"));
    assert!(!s.share_chat(a, c).await.expect("no"));
    assert!(!s.share_chat(b, d).await.expect("no"));
    assert!(!s.share_chat(a, uid(55_555_555)).await.expect("stranger"));
    s.remove_member(ab, b).await.expect("remove");
    assert!(!s.share_chat(a, b).await.expect("after removal"));
}

pub(crate) async fn chat_staff_and_rename(s: Arc<dyn Store>) {
    let owner = uid(11_111_111);
    let chat = new_chat(&s, owner, 0).await;
    let (member, admin) = (uid(20_000_001), uid(20_000_002));
    for u in [member, admin] {
        s.add_member(chat, u, ChatRole::Member, at(2))
            .await
            .expect("add");
    }
    assert!(s
        .set_role(chat, admin, ChatRole::Admin)
        .await
        .expect("role"));
    let mut staff = s.chat_staff(chat).await.expect("staff");
    staff.sort();
    assert_eq!(staff, vec![owner, admin]);
    assert!(s
        .set_role(chat, admin, ChatRole::Member)
        .await
        .expect("role"));
    assert_eq!(s.chat_staff(chat).await.expect("staff"), vec![owner]);
    assert!(s.chat_staff(chat + 1000).await.expect("unknown").is_empty());
    assert!(s.set_chat_name(chat, b"renamed").await.expect("rename"));
    let record = s.chat(chat).await.expect("read").expect("chat");
    assert_eq!(record.name, b"renamed");
    assert!(!s
        .set_chat_name(chat + 1000, b"x")
        .await
        .expect("unknown chat"));
}
