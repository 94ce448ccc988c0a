//! [`ChatStore`] of [`SqliteStore`]: tables `chats`, `chat_members` and `invites`.
//!
//! `create_chat` is one transaction; every other write is a single statement. Names and codes
//! arrive sealed, codes are found by their blind index.

use async_trait::async_trait;
use rusqlite::params;

use super::db::{be, fk_violation, unique_violation};
use super::rows::{all, exec, one};
use super::SqliteStore;
use crate::model::{ChatKind, ChatMember, ChatRecord, ChatRole, InviteRecord, Timestamp, UserId};
use crate::store::sql::rows::{self as dec, clamp, uid, Cells, CHAT_COLS};
use crate::store::{ChatStore, StoreError, StoreResult};

/// A user's chats, newest first: seeks `chat_members_uid`, then reads each chat by its key.
pub(super) fn chats_of_sql() -> String {
    format!(
        "SELECT {CHAT_COLS}, m.role AS member_role FROM chat_members m \
         JOIN chats c ON c.id = m.chat_id WHERE m.uid = ?1 \
         ORDER BY c.created_at DESC, c.id DESC LIMIT ?2 OFFSET ?3"
    )
}

/// A range of the primary key (chat_id, uid): no table lookup, no sort.
pub(super) const MEMBER_IDS: &str = "SELECT uid FROM chat_members WHERE chat_id = ?1";

/// Walks a's chats on `chat_members_uid` and probes b's membership by primary key.
pub(super) const SHARE_CHAT: &str = "SELECT EXISTS (SELECT 1 FROM chat_members x \
     JOIN chat_members y ON y.chat_id = x.chat_id AND y.uid = ?2 WHERE x.uid = ?1) AS shared";

const MEMBER_COLS: &str = "uid, role, joined_at";

#[async_trait]
impl ChatStore for SqliteStore {
    async fn create_chat(
        &self,
        kind: ChatKind,
        sealed_name: &[u8],
        owner: UserId,
        at: Timestamp,
    ) -> StoreResult<i64> {
        let name = sealed_name.to_vec();
        self.db
            .write(move |t| {
                let id = one(
                    t,
                    "INSERT INTO chats (kind, name, owner, created_at) VALUES (?1, ?2, ?3, ?4) \
                     RETURNING id",
                    params![kind.as_str(), name, uid(owner), at.millis()],
                    |r| r.int("id"),
                )?
                .ok_or_else(|| StoreError::Backend("INSERT … RETURNING gave no row".into()))?;
                exec(
                    t,
                    "INSERT INTO chat_members (chat_id, uid, role, joined_at) \
                     VALUES (?1, ?2, ?3, ?4)",
                    params![id, uid(owner), ChatRole::Owner.as_str(), at.millis()],
                )?;
                Ok(id)
            })
            .await
    }

    async fn chat(&self, id: i64) -> StoreResult<Option<ChatRecord>> {
        self.db
            .read(move |c| {
                one(
                    c,
                    &format!("SELECT {CHAT_COLS} FROM chats c WHERE c.id = ?1"),
                    [id],
                    |r| dec::chat(r),
                )
            })
            .await
    }

    async fn chats_of(
        &self,
        user: UserId,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(Vec<(ChatRecord, ChatRole)>, u64)> {
        let me = uid(user);
        self.db
            .read(move |c| {
                let total = one(
                    c,
                    "SELECT COUNT(*) AS n FROM chat_members WHERE uid = ?1",
                    [me],
                    |r| r.int("n"),
                )?
                .unwrap_or(0);
                let page = all(c, &chats_of_sql(), [me, clamp(limit), clamp(offset)], |r| {
                    Ok((dec::chat(r)?, dec::role(r, "member_role")?))
                })?;
                Ok((page, total.max(0) as u64))
            })
            .await
    }

    async fn member(&self, chat: i64, user: UserId) -> StoreResult<Option<ChatMember>> {
        self.db
            .read(move |c| {
                one(
                    c,
                    &format!(
                        "SELECT {MEMBER_COLS} FROM chat_members WHERE chat_id = ?1 AND uid = ?2"
                    ),
                    [chat, uid(user)],
                    |r| dec::member(r),
                )
            })
            .await
    }

    async fn members(
        &self,
        chat: i64,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(Vec<ChatMember>, u64)> {
        self.db
            .read(move |c| {
                let total = one(
                    c,
                    "SELECT COUNT(*) AS n FROM chat_members WHERE chat_id = ?1",
                    [chat],
                    |r| r.int("n"),
                )?
                .unwrap_or(0);
                let page = all(
                    c,
                    &format!(
                        "SELECT {MEMBER_COLS} FROM chat_members WHERE chat_id = ?1 \
                         ORDER BY joined_at, uid LIMIT ?2 OFFSET ?3"
                    ),
                    [chat, clamp(limit), clamp(offset)],
                    |r| dec::member(r),
                )?;
                Ok((page, total.max(0) as u64))
            })
            .await
    }

    async fn member_ids(&self, chat: i64) -> StoreResult<Vec<UserId>> {
        self.db
            .read(move |c| all(c, MEMBER_IDS, [chat], |r| r.uid("uid")))
            .await
    }

    async fn chat_staff(&self, chat: i64) -> StoreResult<Vec<UserId>> {
        self.db
            .read(move |c| {
                all(
                    c,
                    "SELECT uid FROM chat_members WHERE chat_id = ?1 AND role <> 'member'",
                    [chat],
                    |r| r.uid("uid"),
                )
            })
            .await
    }

    async fn add_member(
        &self,
        chat: i64,
        user: UserId,
        role: ChatRole,
        at: Timestamp,
    ) -> StoreResult<bool> {
        self.db
            .write(move |t| {
                // The foreign key on chat_id rejects an unknown chat.
                let res = t.execute(
                    "INSERT INTO chat_members (chat_id, uid, role, joined_at) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT(chat_id, uid) DO NOTHING",
                    params![chat, uid(user), role.as_str(), at.millis()],
                );
                match res {
                    Ok(n) => Ok(n == 1),
                    Err(e) if fk_violation(&e) => Err(StoreError::NotFound),
                    Err(e) => Err(be(e)),
                }
            })
            .await
    }

    async fn remove_member(&self, chat: i64, user: UserId) -> StoreResult<bool> {
        self.db
            .write(move |t| {
                let n = exec(
                    t,
                    "DELETE FROM chat_members WHERE chat_id = ?1 AND uid = ?2",
                    [chat, uid(user)],
                )?;
                // The marker goes with the membership (same transaction).
                exec(
                    t,
                    "DELETE FROM read_markers WHERE uid = ?1 AND chat_id = ?2",
                    [uid(user), chat],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn set_role(&self, chat: i64, user: UserId, role: ChatRole) -> StoreResult<bool> {
        self.db
            .write(move |t| {
                let n = exec(
                    t,
                    "UPDATE chat_members SET role = ?1 WHERE chat_id = ?2 AND uid = ?3",
                    params![role.as_str(), chat, uid(user)],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn set_public(
        &self,
        chat: i64,
        public: bool,
        new_code: Option<(&[u8], &[u8])>,
    ) -> StoreResult<Option<Vec<u8>>> {
        let code = new_code.map(|(sealed, index)| (sealed.to_vec(), index.to_vec()));
        self.db
            .write(move |t| {
                let (sealed, index) = code.unzip();
                // One statement: every CASE reads the row as it was, so a code is only ever set
                // when there was none, and both columns change together.
                let mut st = t
                    .prepare_cached(
                        "UPDATE chats SET is_public = ?1, \
                           invite_code = CASE WHEN invite_code IS NULL THEN ?2 ELSE invite_code END, \
                           code_index = CASE WHEN invite_code IS NULL THEN ?3 ELSE code_index END \
                         WHERE id = ?4 RETURNING invite_code",
                    )
                    .map_err(be)?;
                let mut rows = st.query(params![public, sealed, index, chat]).map_err(be)?;
                match rows.next() {
                    Ok(Some(r)) => r.opt_bytes("invite_code"),
                    Ok(None) => Err(StoreError::NotFound),
                    Err(e) if unique_violation(&e).is_some() => Err(StoreError::Conflict("invite")),
                    Err(e) => Err(be(e)),
                }
            })
            .await
    }

    async fn chat_by_code_index(&self, index: &[u8]) -> StoreResult<Option<ChatRecord>> {
        let index = index.to_vec();
        self.db
            .read(move |c| {
                one(
                    c,
                    &format!("SELECT {CHAT_COLS} FROM chats c WHERE c.code_index = ?1"),
                    [index],
                    |r| dec::chat(r),
                )
            })
            .await
    }

    async fn set_slow_mode(&self, chat: i64, secs: u32) -> StoreResult<bool> {
        self.db
            .write(move |t| {
                let n = exec(
                    t,
                    "UPDATE chats SET slow_mode_secs = ?1 WHERE id = ?2",
                    [i64::from(secs), chat],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn set_chat_name(&self, chat: i64, sealed_name: &[u8]) -> StoreResult<bool> {
        let name = sealed_name.to_vec();
        self.db
            .write(move |t| {
                let n = exec(
                    t,
                    "UPDATE chats SET name = ?1 WHERE id = ?2",
                    params![name, chat],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn create_invite(&self, index: &[u8], invite: &InviteRecord) -> StoreResult<()> {
        let (index, invite) = (index.to_vec(), invite.clone());
        self.db
            .write(move |t| {
                let res = t.execute(
                    "INSERT INTO invites (code_index, chat_id, code, created_by, expires_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        index,
                        invite.chat_id,
                        invite.code,
                        uid(invite.created_by),
                        invite.expires_at.millis()
                    ],
                );
                match res {
                    Ok(_) => Ok(()),
                    Err(e) if unique_violation(&e).is_some() => Err(StoreError::Conflict("invite")),
                    Err(e) => Err(be(e)),
                }
            })
            .await
    }

    async fn invite(&self, index: &[u8]) -> StoreResult<Option<InviteRecord>> {
        let index = index.to_vec();
        self.db
            .read(move |c| {
                one(
                    c,
                    "SELECT chat_id, code, created_by, expires_at FROM invites WHERE code_index = ?1",
                    [index],
                    |r| dec::invite(r),
                )
            })
            .await
    }

    async fn purge_invites(&self, now: Timestamp) -> StoreResult<u64> {
        self.db
            .write(move |t| {
                let n = exec(
                    t,
                    "DELETE FROM invites WHERE expires_at <= ?1",
                    [now.millis()],
                )?;
                Ok(n as u64)
            })
            .await
    }

    async fn share_chat(&self, a: UserId, b: UserId) -> StoreResult<bool> {
        self.db
            .read(move |c| {
                Ok(one(c, SHARE_CHAT, [uid(a), uid(b)], |r| r.flag("shared"))?.unwrap_or(false))
            })
            .await
    }
}
