//! [`ChatStore`] of the SQLite backend: tables `chats`, `chat_members` and `invites`
//! (migration `0005_chats.sql`).
//!
//! Writes run on the writer connection; `create_chat` is one transaction, every other write is a
//! single statement (atomic on its own).

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{be, is_unique_violation, uid_of, SqliteStore};
use crate::model::{ChatKind, ChatMember, ChatRecord, ChatRole, InviteRecord, Timestamp, UserId};
use crate::store::{ChatStore, StoreError, StoreResult};

/// Columns of a chat row, qualified by the alias `c` and named as the row reader expects.
const CHAT_COLS: &str = "c.id AS id, c.kind AS kind, c.name AS name, c.owner AS owner, \
     c.created_at AS created_at, c.is_public AS is_public, c.invite_code AS invite_code, \
     c.slow_mode_secs AS slow_mode_secs";

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("corrupt {what}").into())
}

fn role_of(row: &SqliteRow, col: &str) -> StoreResult<ChatRole> {
    let s: String = row.try_get(col).map_err(be)?;
    s.parse().map_err(|()| corrupt("chat role"))
}

fn chat_from_row(row: &SqliteRow) -> StoreResult<ChatRecord> {
    let kind: String = row.try_get("kind").map_err(be)?;
    let is_public: i64 = row.try_get("is_public").map_err(be)?;
    let slow: i64 = row.try_get("slow_mode_secs").map_err(be)?;
    Ok(ChatRecord {
        id: row.try_get("id").map_err(be)?,
        kind: kind
            .parse::<ChatKind>()
            .map_err(|()| corrupt("chat kind"))?,
        name: row.try_get("name").map_err(be)?,
        owner: uid_of(row, "owner")?,
        created_at: Timestamp::from_millis(row.try_get("created_at").map_err(be)?),
        is_public: is_public != 0,
        invite_code: row.try_get("invite_code").map_err(be)?,
        slow_mode_secs: u32::try_from(slow).map_err(|_| corrupt("slow_mode_secs"))?,
    })
}

fn member_from_row(row: &SqliteRow) -> StoreResult<ChatMember> {
    Ok(ChatMember {
        user: uid_of(row, "uid")?,
        role: role_of(row, "role")?,
        joined_at: Timestamp::from_millis(row.try_get("joined_at").map_err(be)?),
    })
}

fn invite_from_row(row: &SqliteRow) -> StoreResult<InviteRecord> {
    Ok(InviteRecord {
        chat_id: row.try_get("chat_id").map_err(be)?,
        code: row.try_get("code").map_err(be)?,
        created_by: uid_of(row, "created_by")?,
        expires_at: Timestamp::from_millis(row.try_get("expires_at").map_err(be)?),
    })
}

fn uid(u: UserId) -> i64 {
    i64::from(u.get())
}

fn sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl ChatStore for SqliteStore {
    async fn create_chat(
        &self,
        kind: ChatKind,
        sealed_name: &[u8],
        owner: UserId,
        at: Timestamp,
    ) -> StoreResult<i64> {
        let mut tx = self.writer.begin().await.map_err(be)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO chats (kind, name, owner, created_at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(kind.as_str())
        .bind(sealed_name)
        .bind(uid(owner))
        .bind(at.millis())
        .fetch_one(&mut *tx)
        .await
        .map_err(be)?;
        sqlx::query("INSERT INTO chat_members (chat_id, uid, role, joined_at) VALUES (?, ?, ?, ?)")
            .bind(id)
            .bind(uid(owner))
            .bind(ChatRole::Owner.as_str())
            .bind(at.millis())
            .execute(&mut *tx)
            .await
            .map_err(be)?;
        tx.commit().await.map_err(be)?;
        Ok(id)
    }

    async fn chat(&self, id: i64) -> StoreResult<Option<ChatRecord>> {
        let row = sqlx::query(&format!("SELECT {CHAT_COLS} FROM chats c WHERE c.id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(be)?;
        row.as_ref().map(chat_from_row).transpose()
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
        .bind(sql_int(limit))
        .bind(sql_int(offset))
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        let page = rows
            .iter()
            .map(|r| Ok((chat_from_row(r)?, role_of(r, "member_role")?)))
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
        row.as_ref().map(member_from_row).transpose()
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
        .bind(sql_int(limit))
        .bind(sql_int(offset))
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        let page = rows
            .iter()
            .map(member_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((page, total.max(0) as u64))
    }

    async fn member_ids(&self, chat: i64) -> StoreResult<Vec<UserId>> {
        // A range of the primary key (chat_id, uid): no table lookup, no sort.
        let rows = sqlx::query("SELECT uid FROM chat_members WHERE chat_id = ?")
            .bind(chat)
            .fetch_all(&self.pool)
            .await
            .map_err(be)?;
        rows.iter().map(|r| uid_of(r, "uid")).collect()
    }

    async fn add_member(
        &self,
        chat: i64,
        user: UserId,
        role: ChatRole,
        at: Timestamp,
    ) -> StoreResult<bool> {
        // The foreign key on chat_id rejects an unknown chat.
        let res = sqlx::query(
            "INSERT INTO chat_members (chat_id, uid, role, joined_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT(chat_id, uid) DO NOTHING",
        )
        .bind(chat)
        .bind(uid(user))
        .bind(role.as_str())
        .bind(at.millis())
        .execute(&self.writer)
        .await;
        match res {
            Ok(r) => Ok(r.rows_affected() == 1),
            Err(sqlx::Error::Database(d)) if d.is_foreign_key_violation() => {
                Err(StoreError::NotFound)
            }
            Err(e) => Err(be(e)),
        }
    }

    async fn remove_member(&self, chat: i64, user: UserId) -> StoreResult<bool> {
        let res = sqlx::query("DELETE FROM chat_members WHERE chat_id = ? AND uid = ?")
            .bind(chat)
            .bind(uid(user))
            .execute(&self.writer)
            .await
            .map_err(be)?;
        Ok(res.rows_affected() == 1)
    }

    async fn set_role(&self, chat: i64, user: UserId, role: ChatRole) -> StoreResult<bool> {
        let res = sqlx::query("UPDATE chat_members SET role = ? WHERE chat_id = ? AND uid = ?")
            .bind(role.as_str())
            .bind(chat)
            .bind(uid(user))
            .execute(&self.writer)
            .await
            .map_err(be)?;
        Ok(res.rows_affected() == 1)
    }

    async fn set_public(
        &self,
        chat: i64,
        public: bool,
        new_code: Option<(&[u8], &[u8])>,
    ) -> StoreResult<Option<Vec<u8>>> {
        // One statement: every CASE reads the row as it was, so a code is only ever set when
        // there was none, and both columns change together.
        let row = sqlx::query(
            "UPDATE chats SET is_public = ?1, \
               invite_code = CASE WHEN invite_code IS NULL THEN ?2 ELSE invite_code END, \
               code_index = CASE WHEN invite_code IS NULL THEN ?3 ELSE code_index END \
             WHERE id = ?4 RETURNING invite_code",
        )
        .bind(public)
        .bind(new_code.map(|(sealed, _)| sealed))
        .bind(new_code.map(|(_, index)| index))
        .bind(chat)
        .fetch_optional(&self.writer)
        .await;
        match row {
            Ok(Some(r)) => r.try_get("invite_code").map_err(be),
            Ok(None) => Err(StoreError::NotFound),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict("invite")),
            Err(e) => Err(be(e)),
        }
    }

    async fn chat_by_code_index(&self, index: &[u8]) -> StoreResult<Option<ChatRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {CHAT_COLS} FROM chats c WHERE c.code_index = ?"
        ))
        .bind(index)
        .fetch_optional(&self.pool)
        .await
        .map_err(be)?;
        row.as_ref().map(chat_from_row).transpose()
    }

    async fn set_slow_mode(&self, chat: i64, secs: u32) -> StoreResult<bool> {
        let res = sqlx::query("UPDATE chats SET slow_mode_secs = ? WHERE id = ?")
            .bind(i64::from(secs))
            .bind(chat)
            .execute(&self.writer)
            .await
            .map_err(be)?;
        Ok(res.rows_affected() == 1)
    }

    async fn create_invite(&self, index: &[u8], invite: &InviteRecord) -> StoreResult<()> {
        let res = sqlx::query(
            "INSERT INTO invites (code_index, chat_id, code, created_by, expires_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(index)
        .bind(invite.chat_id)
        .bind(&invite.code)
        .bind(uid(invite.created_by))
        .bind(invite.expires_at.millis())
        .execute(&self.writer)
        .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict("invite")),
            Err(e) => Err(be(e)),
        }
    }

    async fn invite(&self, index: &[u8]) -> StoreResult<Option<InviteRecord>> {
        let row = sqlx::query(
            "SELECT chat_id, code, created_by, expires_at FROM invites WHERE code_index = ?",
        )
        .bind(index)
        .fetch_optional(&self.pool)
        .await
        .map_err(be)?;
        row.as_ref().map(invite_from_row).transpose()
    }

    async fn purge_invites(&self, now: Timestamp) -> StoreResult<u64> {
        let res = sqlx::query("DELETE FROM invites WHERE expires_at <= ?")
            .bind(now.millis())
            .execute(&self.writer)
            .await
            .map_err(be)?;
        Ok(res.rows_affected())
    }

    async fn share_chat(&self, a: UserId, b: UserId) -> StoreResult<bool> {
        // Walks a's chats on `chat_members_uid` and probes b's membership by primary key.
        let shared: i64 = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM chat_members x \
               JOIN chat_members y ON y.chat_id = x.chat_id AND y.uid = ?2 WHERE x.uid = ?1)",
        )
        .bind(uid(a))
        .bind(uid(b))
        .fetch_one(&self.pool)
        .await
        .map_err(be)?;
        Ok(shared != 0)
    }
}

#[cfg(test)]
mod tests {
    use crate::SqliteStore;

    /// The query plan of `sql` with `params` integer parameters bound.
    async fn plan(s: &SqliteStore, sql: &str, params: i64) -> String {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut q = sqlx::query_as::<_, (i64, i64, i64, String)>(&explain);
        for n in 1..=params {
            q = q.bind(n);
        }
        let rows = q.fetch_all(s.pool()).await.expect("plan");
        rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
    }

    /// The per-user and per-chat lookups seek an index; none scans a whole table.
    #[tokio::test]
    async fn lookups_use_indexes() {
        let s = SqliteStore::connect("sqlite::memory:")
            .await
            .expect("sqlite");
        let chats_of = plan(
            &s,
            &format!(
                "SELECT {}, m.role AS member_role FROM chat_members m \
                 JOIN chats c ON c.id = m.chat_id WHERE m.uid = ? \
                 ORDER BY c.created_at DESC, c.id DESC LIMIT ? OFFSET ?",
                super::CHAT_COLS
            ),
            3,
        )
        .await;
        assert!(chats_of.contains("chat_members_uid"), "{chats_of}");
        assert!(!chats_of.contains("SCAN"), "{chats_of}");
        let count = plan(&s, "SELECT COUNT(*) FROM chat_members WHERE uid = ?", 1).await;
        assert!(count.contains("chat_members_uid"), "{count}");
        let ids = plan(&s, "SELECT uid FROM chat_members WHERE chat_id = ?", 1).await;
        assert!(ids.contains("PRIMARY KEY (chat_id=?)"), "{ids}");
        let share = plan(
            &s,
            "SELECT EXISTS (SELECT 1 FROM chat_members x \
               JOIN chat_members y ON y.chat_id = x.chat_id AND y.uid = ?2 WHERE x.uid = ?1)",
            2,
        )
        .await;
        assert!(
            share.contains("USING COVERING INDEX chat_members_uid"),
            "{share}"
        );
        assert!(
            share.contains("PRIMARY KEY (chat_id=? AND uid=?)"),
            "{share}"
        );
        assert!(
            !share.contains("SCAN x") && !share.contains("SCAN y"),
            "{share}"
        );
    }
}
