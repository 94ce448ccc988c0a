//! [`EraseStore`] of the MySQL backend: the erase is one transaction, its decisions read with
//! `SELECT … FOR UPDATE`, run again on a deadlock like every transaction of this store.
//!
//! InnoDB keeps deleted bytes in free space of its pages, its undo log and (when enabled) the
//! binary log until they are reused or expire: what the database serves after the erase has
//! none of them; its files are the operator's (see docs/accounts.md).

use async_trait::async_trait;
use sqlx::mysql::MySqlRow;
use sqlx::{MySql, Transaction};

use super::{be, MysqlStore, TxResult};
use crate::model::{ChatKind, ChatRole, Session, SessionId, UserId};
use crate::store::sql::rows::{self, corrupt, uid, Cells, CONTACT_COLS, SESSION_COLS};
use crate::store::{
    Contact, ContactState, EraseStore, ErasedAccount, ErasedMembership, StoreError, StoreResult,
};

/// The owner's heir among the remaining members: the oldest admin, else the oldest member.
const HEIR: &str = "SELECT uid FROM chat_members WHERE chat_id = ? \
     ORDER BY role = 'admin' DESC, joined_at, uid LIMIT 1 FOR UPDATE";

async fn exec(tx: &mut Transaction<'_, MySql>, sql: &str, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(sql).bind(id).execute(&mut **tx).await.map(drop)
}

fn membership(r: &MySqlRow) -> StoreResult<(i64, ChatRole, ChatKind)> {
    let kind = r
        .text("kind")?
        .parse::<ChatKind>()
        .map_err(|()| corrupt("chat kind"))?;
    Ok((r.int("chat_id")?, rows::role(r, "role")?, kind))
}

impl MysqlStore {
    /// One run of [`EraseStore::erase_user`].
    async fn erase_tx(&self, user: UserId) -> TxResult<Option<ErasedAccount>> {
        let me = uid(user);
        let mut tx = self.pool.begin().await?;
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT uid FROM users WHERE uid = ? FOR UPDATE")
                .bind(me)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
        exec(
            &mut tx,
            "INSERT IGNORE INTO retired_uids (uid) VALUES (?)",
            me,
        )
        .await?;
        for sql in [
            "DELETE FROM secret_keys WHERE uid = ?",
            "DELETE FROM imported_users WHERE uid = ?",
            "DELETE FROM user_settings WHERE uid = ?",
            "DELETE FROM avatars WHERE uid = ?",
            "DELETE FROM push_registrations WHERE uid = ?",
            "DELETE FROM read_markers WHERE uid = ?",
            "DELETE FROM scheduled_messages WHERE owner_uid = ?",
        ] {
            exec(&mut tx, sql, me).await?;
        }

        let sessions: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT id, CAST(active AS SIGNED) FROM sessions WHERE uid = ? ORDER BY id FOR UPDATE",
        )
        .bind(me)
        .fetch_all(&mut *tx)
        .await?;
        for (id, _) in &sessions {
            exec(&mut tx, "DELETE FROM queue WHERE session_id = ?", *id).await?;
            exec(&mut tx, "DELETE FROM queue_seq WHERE session_id = ?", *id).await?;
        }
        exec(&mut tx, "DELETE FROM sessions WHERE uid = ?", me).await?;

        let mut contacts = Vec::new();
        for side in ["user_lo", "user_hi"] {
            let found = sqlx::query(&format!(
                "SELECT {CONTACT_COLS} FROM contacts WHERE {side} = ? FOR UPDATE"
            ))
            .bind(me)
            .fetch_all(&mut *tx)
            .await?;
            for r in &found {
                contacts.push(rows::contact(r)?);
            }
            exec(
                &mut tx,
                &format!("DELETE FROM contacts WHERE {side} = ?"),
                me,
            )
            .await?;
        }
        contacts.sort_by_key(|c| {
            let other = if c.requester == user {
                c.target
            } else {
                c.requester
            };
            (c.state != ContactState::Accepted, other)
        });

        let found = sqlx::query(
            "SELECT m.chat_id AS chat_id, m.role AS role, c.kind AS kind FROM chat_members m \
             JOIN chats c ON c.id = m.chat_id WHERE m.uid = ? ORDER BY m.chat_id FOR UPDATE",
        )
        .bind(me)
        .fetch_all(&mut *tx)
        .await?;
        let memberships = found
            .iter()
            .map(membership)
            .collect::<StoreResult<Vec<_>>>()?;
        exec(&mut tx, "DELETE FROM chat_members WHERE uid = ?", me).await?;
        let mut chats = Vec::with_capacity(memberships.len());
        for (chat, role, kind) in memberships {
            let heir: Option<i64> = sqlx::query_scalar(HEIR)
                .bind(chat)
                .fetch_optional(&mut *tx)
                .await?;
            let mut done = ErasedMembership {
                chat_id: chat,
                kind,
                role,
                new_owner: None,
                deleted: false,
            };
            match heir {
                None => {
                    exec(&mut tx, "DELETE FROM invites WHERE chat_id = ?", chat).await?;
                    exec(&mut tx, "DELETE FROM chats WHERE id = ?", chat).await?;
                    done.deleted = true;
                }
                Some(heir) if role == ChatRole::Owner => {
                    sqlx::query(
                        "UPDATE chat_members SET role = 'owner' WHERE chat_id = ? AND uid = ?",
                    )
                    .bind(chat)
                    .bind(heir)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("UPDATE chats SET owner = ? WHERE id = ?")
                        .bind(heir)
                        .bind(chat)
                        .execute(&mut *tx)
                        .await?;
                    done.new_owner = Some(
                        u32::try_from(heir)
                            .ok()
                            .and_then(UserId::new)
                            .ok_or_else(|| corrupt("uid"))?,
                    );
                }
                Some(_) => {}
            }
            chats.push(done);
        }
        exec(&mut tx, "DELETE FROM invites WHERE created_by = ?", me).await?;
        exec(&mut tx, "DELETE FROM users WHERE uid = ?", me).await?;
        tx.commit().await?;
        Ok(Some(ErasedAccount {
            active_sessions: sessions
                .iter()
                .filter(|(_, a)| *a != 0)
                .map(|(id, _)| SessionId(*id))
                .collect(),
            sessions: sessions.iter().map(|(id, _)| SessionId(*id)).collect(),
            contacts,
            chats,
        }))
    }
}

#[async_trait]
impl EraseStore for MysqlStore {
    async fn erase_user(&self, user: UserId) -> StoreResult<Option<ErasedAccount>> {
        self.retry(move || self.erase_tx(user)).await
    }

    async fn relationships_of(&self, user: UserId, limit: u64) -> StoreResult<(Vec<Contact>, u64)> {
        let me = uid(user);
        let total: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM contacts WHERE user_lo = ?) \
             + (SELECT COUNT(*) FROM contacts WHERE user_hi = ?)",
        )
        .bind(me)
        .bind(me)
        .fetch_one(&self.pool)
        .await
        .map_err(be)?;
        let found = sqlx::query(&format!(
            "SELECT {CONTACT_COLS} FROM (\
             SELECT {CONTACT_COLS}, user_hi AS other FROM contacts WHERE user_lo = ? \
             UNION ALL SELECT {CONTACT_COLS}, user_lo AS other FROM contacts WHERE user_hi = ?\
             ) x ORDER BY accepted DESC, other LIMIT ?"
        ))
        .bind(me)
        .bind(me)
        .bind(rows::clamp(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        let page = found
            .iter()
            .map(rows::contact)
            .collect::<StoreResult<_>>()?;
        Ok((page, u64::try_from(total).unwrap_or(0)))
    }

    async fn sessions_ever(&self, user: UserId, limit: u64) -> StoreResult<(Vec<Session>, u64)> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE uid = ?")
            .bind(uid(user))
            .fetch_one(&self.pool)
            .await
            .map_err(be)?;
        let found = sqlx::query(&format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE uid = ? ORDER BY id DESC LIMIT ?"
        ))
        .bind(uid(user))
        .bind(rows::clamp(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        let page = found
            .iter()
            .map(rows::session)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((page, u64::try_from(total).unwrap_or(0)))
    }

    async fn queued_entries(&self, sessions: &[SessionId]) -> StoreResult<u64> {
        let distinct: std::collections::BTreeSet<i64> = sessions.iter().map(|s| s.0).collect();
        let mut n = 0i64;
        for id in distinct {
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM queue WHERE session_id = ?")
                .bind(id)
                .fetch_one(&self.pool)
                .await
                .map_err(be)?;
            n += count;
        }
        u64::try_from(n).map_err(|_| StoreError::Backend("negative count".into()))
    }
}
