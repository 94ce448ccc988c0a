//! [`AdminStore`] and [`RegistrationInviteStore`] of [`MysqlStore`]: a revocation and its note
//! are one transaction (run again on a deadlock, as every transaction of this backend).
//!
//! Note ids come from `AUTO_INCREMENT`: two transactions may commit their notes out of id order,
//! which the servers' poller allows for (it waits for a missing id a while before it skips it).

use async_trait::async_trait;
use sqlx::{MySql, Transaction};

use super::sessions::{revoke_all_but, revoke_one};
use super::{be, is_unique_violation, MysqlStore};
use crate::model::{Session, SessionId, Timestamp, UserId};
use crate::store::sql::admin::{counts, COUNTS_SQL};
use crate::store::sql::rows::{self, clamp, uid, Cells, SESSION_COLS};
use crate::store::{AdminStore, RegistrationInviteStore, StoreCounts, StoreError, StoreResult};

/// Notes a revocation of `user`'s sessions in the transaction that made it.
async fn note(
    tx: &mut Transaction<'_, MySql>,
    user: UserId,
    at: Timestamp,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO revocation_notes (uid, at) VALUES (?, ?)")
        .bind(uid(user))
        .bind(at.millis())
        .execute(&mut **tx)
        .await
        .map(drop)
}

#[async_trait]
impl AdminStore for MysqlStore {
    async fn user_locked(&self, user: UserId) -> StoreResult<Option<bool>> {
        let row = sqlx::query("SELECT locked FROM users WHERE uid = ?")
            .bind(uid(user))
            .fetch_optional(&self.pool)
            .await
            .map_err(be)?;
        row.as_ref().map(|r| r.flag("locked")).transpose()
    }

    async fn lock_user(&self, user: UserId, at: Timestamp) -> StoreResult<Option<Vec<SessionId>>> {
        self.retry(move || async move {
            let mut tx = self.pool.begin().await?;
            // Found rows (sqlx connects with CLIENT_FOUND_ROWS): 1 also when already locked.
            let found = sqlx::query("UPDATE users SET locked = 1 WHERE uid = ?")
                .bind(uid(user))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if found != 1 {
                tx.rollback().await?;
                return Ok(None);
            }
            let revoked = revoke_all_but(&mut tx, user, 0).await?;
            if !revoked.is_empty() {
                note(&mut tx, user, at).await?;
            }
            tx.commit().await?;
            Ok(Some(revoked))
        })
        .await
    }

    async fn unlock_user(&self, user: UserId) -> StoreResult<bool> {
        self.retry(move || async move {
            let found = sqlx::query("UPDATE users SET locked = 0 WHERE uid = ?")
                .bind(uid(user))
                .execute(&self.pool)
                .await?
                .rows_affected();
            Ok(found == 1)
        })
        .await
    }

    async fn revoke_noted(
        &self,
        user: UserId,
        only: Option<SessionId>,
        at: Timestamp,
    ) -> StoreResult<Vec<SessionId>> {
        self.retry(move || async move {
            let mut tx = self.pool.begin().await?;
            let revoked = match only {
                Some(id) => {
                    if revoke_one(&mut tx, user, id).await? {
                        vec![id]
                    } else {
                        Vec::new()
                    }
                }
                None => revoke_all_but(&mut tx, user, 0).await?,
            };
            if revoked.is_empty() {
                tx.rollback().await?;
                return Ok(revoked);
            }
            note(&mut tx, user, at).await?;
            tx.commit().await?;
            Ok(revoked)
        })
        .await
    }

    async fn all_sessions_of(&self, user: UserId, limit: u64) -> StoreResult<Vec<Session>> {
        let found = sqlx::query(&format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE uid = ? ORDER BY id DESC LIMIT ?"
        ))
        .bind(uid(user))
        .bind(clamp(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        found.iter().map(rows::session).collect()
    }

    async fn revocation_notes(&self, after: i64, limit: u64) -> StoreResult<Vec<(i64, UserId)>> {
        let found =
            sqlx::query("SELECT id, uid FROM revocation_notes WHERE id > ? ORDER BY id LIMIT ?")
                .bind(after)
                .bind(clamp(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(be)?;
        found
            .iter()
            .map(|r| Ok((r.int("id")?, r.uid("uid")?)))
            .collect()
    }

    async fn last_revocation_note(&self) -> StoreResult<i64> {
        let last: i64 =
            sqlx::query_scalar("SELECT CAST(COALESCE(MAX(id), 0) AS SIGNED) FROM revocation_notes")
                .fetch_one(&self.pool)
                .await
                .map_err(be)?;
        Ok(last)
    }

    async fn purge_revocation_notes(&self, before: Timestamp) -> StoreResult<u64> {
        self.retry(move || async move {
            let res = sqlx::query("DELETE FROM revocation_notes WHERE at < ?")
                .bind(before.millis())
                .execute(&self.pool)
                .await?;
            Ok(res.rows_affected())
        })
        .await
    }

    async fn counts(&self, now: Timestamp) -> StoreResult<StoreCounts> {
        let row = sqlx::query(COUNTS_SQL)
            .bind(now.millis())
            .fetch_one(&self.pool)
            .await
            .map_err(be)?;
        counts(&row)
    }
}

#[async_trait]
impl RegistrationInviteStore for MysqlStore {
    async fn create_registration_invite(
        &self,
        index: &[u8],
        expires_at: Timestamp,
    ) -> StoreResult<()> {
        let res = sqlx::query(
            "INSERT INTO registration_invites (code_index, expires_at, used) VALUES (?, ?, 0)",
        )
        .bind(index)
        .bind(expires_at.millis())
        .execute(&self.pool)
        .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict("invite")),
            Err(e) => Err(be(e)),
        }
    }

    async fn use_registration_invite(&self, index: &[u8], now: Timestamp) -> StoreResult<bool> {
        self.retry(move || async move {
            // One statement: the row lock makes exactly one concurrent caller see it unused.
            let res = sqlx::query(
                "UPDATE registration_invites SET used = 1 \
                 WHERE code_index = ? AND used = 0 AND expires_at > ?",
            )
            .bind(index)
            .bind(now.millis())
            .execute(&self.pool)
            .await?;
            Ok(res.rows_affected() == 1)
        })
        .await
    }

    async fn restore_registration_invite(&self, index: &[u8]) -> StoreResult<bool> {
        self.retry(move || async move {
            let res = sqlx::query(
                "UPDATE registration_invites SET used = 0 WHERE code_index = ? AND used = 1",
            )
            .bind(index)
            .execute(&self.pool)
            .await?;
            Ok(res.rows_affected() == 1)
        })
        .await
    }

    async fn purge_registration_invites(&self, now: Timestamp) -> StoreResult<u64> {
        self.retry(move || async move {
            let res = sqlx::query("DELETE FROM registration_invites WHERE expires_at <= ?")
                .bind(now.millis())
                .execute(&self.pool)
                .await?;
            Ok(res.rows_affected())
        })
        .await
    }
}
