//! [`ChatStore`] of the MySQL backend: tables `chats`, `chat_members` and `invites`.
//!
//! `create_chat` and `set_public` are transactions; every other write is a single statement.

use async_trait::async_trait;

use super::{be, is_foreign_key_violation, is_unique_violation, MysqlStore};
use crate::model::{ChatKind, ChatMember, ChatRecord, ChatRole, InviteRecord, Timestamp, UserId};
use crate::store::sql::rows::{self, clamp, corrupt, uid, Cells, CHAT_COLS};
use crate::store::{ChatStore, StoreError, StoreResult};

#[async_trait]
impl ChatStore for MysqlStore {
    async fn create_chat(
        &self,
        kind: ChatKind,
        sealed_name: &[u8],
        owner: UserId,
        at: Timestamp,
    ) -> StoreResult<i64> {
        self.retry(move || async move {
            let mut tx = self.pool.begin().await?;
            let res = sqlx::query(
                "INSERT INTO chats (kind, name, owner, created_at) VALUES (?, ?, ?, ?)",
            )
            .bind(kind.as_str())
            .bind(sealed_name)
            .bind(uid(owner))
            .bind(at.millis())
            .execute(&mut *tx)
            .await?;
            let id = i64::try_from(res.last_insert_id()).map_err(|_| corrupt("chat id"))?;
            sqlx::query(
                "INSERT INTO chat_members (chat_id, uid, role, joined_at) VALUES (?, ?, ?, ?)",
            )
            .bind(id)
            .bind(uid(owner))
            .bind(ChatRole::Owner.as_str())
            .bind(at.millis())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(id)
        })
        .await
    }

    async fn chat(&self, id: i64) -> StoreResult<Option<ChatRecord>> {
        let row = sqlx::query(&format!("SELECT {CHAT_COLS} FROM chats c WHERE c.id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(be)?;
        row.as_ref().map(rows::chat).transpose()
    }

    async fn chats_of(
        &self,
        user: UserId,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(Vec<(ChatRecord, ChatRole)>, u64)> {
        // Both statements seek `chat_members_uid`; the page then reads each chat by its key.
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chat_members WHERE uid = ?")
            .bind(uid(user))
            .fetch_one(&self.pool)
            .await
            .map_err(be)?;
        let rows = sqlx::query(&format!(
            "SELECT {CHAT_COLS}, m.role AS member_role FROM chat_members m \
             JOIN chats c ON c.id = m.chat_id WHERE m.uid = ? \
             ORDER BY c.created_at DESC, c.id DESC LIMIT ? OFFSET ?"
        ))
        .bind(uid(user))
        .bind(clamp(limit))
        .bind(clamp(offset))
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        let page = rows
            .iter()
            .map(|r| Ok((rows::chat(r)?, rows::role(r, "member_role")?)))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((page, total.max(0) as u64))
    }

    async fn member(&self, chat: i64, user: UserId) -> StoreResult<Option<ChatMember>> {
        let row = sqlx::query(
            "SELECT uid, role, joined_at FROM chat_members WHERE chat_id = ? AND uid = ?",
        )
        .bind(chat)
        .bind(uid(user))
        .fetch_optional(&self.pool)
        .await
        .map_err(be)?;
        row.as_ref().map(rows::member).transpose()
    }

    async fn members(
        &self,
        chat: i64,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(Vec<ChatMember>, u64)> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chat_members WHERE chat_id = ?")
            .bind(chat)
            .fetch_one(&self.pool)
            .await
            .map_err(be)?;
        let rows = sqlx::query(
            "SELECT uid, role, joined_at FROM chat_members WHERE chat_id = ? \
             ORDER BY joined_at, uid LIMIT ? OFFSET ?",
        )
        .bind(chat)
        .bind(clamp(limit))
        .bind(clamp(offset))
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        let page = rows
            .iter()
            .map(rows::member)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((page, total.max(0) as u64))
    }

    async fn member_ids(&self, chat: i64) -> StoreResult<Vec<UserId>> {
        // A range of the primary key (chat_id, uid).
        let rows = sqlx::query("SELECT uid FROM chat_members WHERE chat_id = ?")
            .bind(chat)
            .fetch_all(&self.pool)
            .await
            .map_err(be)?;
        rows.iter().map(|r| r.uid("uid")).collect()
    }

    async fn chat_staff(&self, chat: i64) -> StoreResult<Vec<UserId>> {
        let rows =
            sqlx::query("SELECT uid FROM chat_members WHERE chat_id = ? AND role <> 'member'")
                .bind(chat)
                .fetch_all(&self.pool)
                .await
                .map_err(be)?;
        rows.iter().map(|r| r.uid("uid")).collect()
    }

    async fn add_member(
        &self,
        chat: i64,
        user: UserId,
        role: ChatRole,
        at: Timestamp,
    ) -> StoreResult<bool> {
        // Not INSERT IGNORE: it would also swallow the foreign key error of an unknown chat.
        self.retry(move || async move {
            let res = sqlx::query(
                "INSERT INTO chat_members (chat_id, uid, role, joined_at) VALUES (?, ?, ?, ?)",
            )
            .bind(chat)
            .bind(uid(user))
            .bind(role.as_str())
            .bind(at.millis())
            .execute(&self.pool)
            .await;
            match res {
                Ok(_) => Ok(true),
                Err(e) if is_unique_violation(&e) => Ok(false),
                Err(e) if is_foreign_key_violation(&e) => Err(StoreError::NotFound.into()),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn remove_member(&self, chat: i64, user: UserId) -> StoreResult<bool> {
        // One statement: the read marker goes with the membership (and only with it).
        self.retry(move || async move {
            let res = sqlx::query(
                "DELETE m, r FROM chat_members m LEFT JOIN read_markers r \
                 ON r.uid = m.uid AND r.chat_id = m.chat_id WHERE m.chat_id = ? AND m.uid = ?",
            )
            .bind(chat)
            .bind(uid(user))
            .execute(&self.pool)
            .await?;
            Ok(res.rows_affected() >= 1)
        })
        .await
    }

    async fn set_role(&self, chat: i64, user: UserId, role: ChatRole) -> StoreResult<bool> {
        // Matched rows (CLIENT_FOUND_ROWS): setting the same role again is still true.
        self.retry(move || async move {
            let res = sqlx::query("UPDATE chat_members SET role = ? WHERE chat_id = ? AND uid = ?")
                .bind(role.as_str())
                .bind(chat)
                .bind(uid(user))
                .execute(&self.pool)
                .await?;
            Ok(res.rows_affected() == 1)
        })
        .await
    }

    async fn set_public(
        &self,
        chat: i64,
        public: bool,
        new_code: Option<(&[u8], &[u8])>,
    ) -> StoreResult<Option<Vec<u8>>> {
        self.retry(move || async move {
            let mut tx = self.pool.begin().await?;
            let row = sqlx::query("SELECT invite_code FROM chats WHERE id = ? FOR UPDATE")
                .bind(chat)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                tx.rollback().await?;
                return Err(StoreError::NotFound.into());
            };
            let existing = row.opt_bytes("invite_code")?;
            // An existing code is kept forever; a new one only when there is none.
            let code = match (existing, new_code) {
                (Some(code), _) => Some(code),
                (None, Some((sealed, index))) => {
                    let res = sqlx::query(
                        "UPDATE chats SET invite_code = ?, code_index = ? WHERE id = ?",
                    )
                    .bind(sealed)
                    .bind(index)
                    .bind(chat)
                    .execute(&mut *tx)
                    .await;
                    match res {
                        Ok(_) => Some(sealed.to_vec()),
                        Err(e) if is_unique_violation(&e) => {
                            tx.rollback().await?;
                            return Err(StoreError::Conflict("invite").into());
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                (None, None) => None,
            };
            sqlx::query("UPDATE chats SET is_public = ? WHERE id = ?")
                .bind(public)
                .bind(chat)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(code)
        })
        .await
    }

    async fn chat_by_code_index(&self, index: &[u8]) -> StoreResult<Option<ChatRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {CHAT_COLS} FROM chats c WHERE c.code_index = ?"
        ))
        .bind(index)
        .fetch_optional(&self.pool)
        .await
        .map_err(be)?;
        row.as_ref().map(rows::chat).transpose()
    }

    async fn set_slow_mode(&self, chat: i64, secs: u32) -> StoreResult<bool> {
        self.retry(move || async move {
            let res = sqlx::query("UPDATE chats SET slow_mode_secs = ? WHERE id = ?")
                .bind(i64::from(secs))
                .bind(chat)
                .execute(&self.pool)
                .await?;
            Ok(res.rows_affected() == 1)
        })
        .await
    }

    async fn set_chat_name(&self, chat: i64, sealed_name: &[u8]) -> StoreResult<bool> {
        self.retry(move || async move {
            // MySQL counts only changed rows as affected; an existing chat always answers 1
            // here because a fresh seal never equals the old one.
            let res = sqlx::query("UPDATE chats SET name = ? WHERE id = ?")
                .bind(sealed_name)
                .bind(chat)
                .execute(&self.pool)
                .await?;
            Ok(res.rows_affected() == 1)
        })
        .await
    }

    async fn create_invite(&self, index: &[u8], invite: &InviteRecord) -> StoreResult<()> {
        self.retry(move || async move {
            let res = sqlx::query(
                "INSERT INTO invites (code_index, chat_id, code, created_by, expires_at) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(index)
            .bind(invite.chat_id)
            .bind(&invite.code)
            .bind(uid(invite.created_by))
            .bind(invite.expires_at.millis())
            .execute(&self.pool)
            .await;
            match res {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict("invite").into()),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn invite(&self, index: &[u8]) -> StoreResult<Option<InviteRecord>> {
        let row = sqlx::query(
            "SELECT chat_id, code, created_by, expires_at FROM invites WHERE code_index = ?",
        )
        .bind(index)
        .fetch_optional(&self.pool)
        .await
        .map_err(be)?;
        row.as_ref().map(rows::invite).transpose()
    }

    async fn purge_invites(&self, now: Timestamp) -> StoreResult<u64> {
        self.retry(move || async move {
            let res = sqlx::query("DELETE FROM invites WHERE expires_at <= ?")
                .bind(now.millis())
                .execute(&self.pool)
                .await?;
            Ok(res.rows_affected())
        })
        .await
    }

    async fn share_chat(&self, a: UserId, b: UserId) -> StoreResult<bool> {
        // Walks a's chats on `chat_members_uid` and probes b's membership by primary key.
        let shared: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM chat_members x \
             JOIN chat_members y ON y.chat_id = x.chat_id AND y.uid = ? WHERE x.uid = ? LIMIT 1",
        )
        .bind(uid(b))
        .bind(uid(a))
        .fetch_optional(&self.pool)
        .await
        .map_err(be)?;
        Ok(shared.is_some())
    }
}
