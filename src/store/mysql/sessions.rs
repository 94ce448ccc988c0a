//! [`SessionStore`] of [`MysqlStore`]: one row per session; at most one active per (user,
//! device) through the unique key on the generated `active_device` column.

use async_trait::async_trait;
use sqlx::{MySql, Transaction};

use super::{be, is_unique_violation, MysqlStore, TxResult};
use crate::model::{DeviceId, Session, SessionId, SessionUpsert, Timestamp, UserId};
use crate::store::sql::rows::{self, corrupt, uid, SESSION_COLS};
use crate::store::{SessionStore, StoreError, StoreResult};

impl MysqlStore {
    /// One run of [`SessionStore::upsert_session`].
    /// `None` when a concurrent login of the same device inserted first.
    async fn upsert_session_tx(&self, s: &SessionUpsert) -> TxResult<Option<Session>> {
        let mut tx = self.pool.begin().await?;
        let existing: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM sessions WHERE uid = ? AND active_device = ? FOR UPDATE",
        )
        .bind(uid(s.user))
        .bind(s.device_id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let id = match existing {
            Some(id) => {
                sqlx::query(
                    "UPDATE sessions SET device_type = ?, device_name = ?, ip = ?, \
                     last_activity = ?, device_token_hash = ?, device_token_expires = ? \
                     WHERE id = ?",
                )
                .bind(s.device_type.as_str())
                .bind(&s.device_name)
                .bind(&s.ip)
                .bind(&s.last_activity)
                .bind(&s.device_token_hash)
                .bind(s.device_token_expires.millis())
                .bind(id)
                .execute(&mut *tx)
                .await?;
                id
            }
            None => {
                // A concurrent login of the same device that inserted first makes this a
                // duplicate (or a deadlock on the gap lock): the next run takes the update path.
                let inserted = sqlx::query(
                    "INSERT INTO sessions (uid, device_id, device_type, device_name, ip, \
                     created_at, last_activity, device_token_hash, device_token_expires, active) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                )
                .bind(uid(s.user))
                .bind(s.device_id.as_str())
                .bind(s.device_type.as_str())
                .bind(&s.device_name)
                .bind(&s.ip)
                .bind(s.now.millis())
                .bind(&s.last_activity)
                .bind(&s.device_token_hash)
                .bind(s.device_token_expires.millis())
                .execute(&mut *tx)
                .await;
                match inserted {
                    Ok(res) => {
                        i64::try_from(res.last_insert_id()).map_err(|_| corrupt("session id"))?
                    }
                    Err(e) if is_unique_violation(&e) => {
                        tx.rollback().await?;
                        return Ok(None);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let row = sqlx::query(&format!("SELECT {SESSION_COLS} FROM sessions WHERE id = ?"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(rows::session(&row)?))
    }

    /// One run of [`SessionStore::revoke_sessions_except`].
    async fn revoke_except_tx(&self, user: UserId, keep: i64) -> TxResult<Vec<SessionId>> {
        let mut tx = self.pool.begin().await?;
        let ids = revoke_all_but(&mut tx, user, keep).await?;
        tx.commit().await?;
        Ok(ids)
    }
}

/// Revokes every active session of `user` but the one with id `keep` (0: none) in `tx`, with
/// their device tokens and push registrations; the revoked ids, ascending.
pub(super) async fn revoke_all_but(
    tx: &mut Transaction<'_, MySql>,
    user: UserId,
    keep: i64,
) -> Result<Vec<SessionId>, sqlx::Error> {
    let mut ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM sessions WHERE uid = ? AND active = 1 AND id != ? FOR UPDATE",
    )
    .bind(uid(user))
    .bind(keep)
    .fetch_all(&mut **tx)
    .await?;
    ids.sort_unstable();
    // The rows just read and locked: one statement of fixed shape.
    sqlx::query(
        "UPDATE sessions SET active = 0, device_token_hash = NULL, \
         device_token_expires = NULL WHERE uid = ? AND active = 1 AND id != ?",
    )
    .bind(uid(user))
    .bind(keep)
    .execute(&mut **tx)
    .await?;
    // Every other session of `user` is now inactive: none of their registrations may stay.
    sqlx::query("DELETE FROM push_registrations WHERE uid = ? AND session_id != ?")
        .bind(uid(user))
        .bind(keep)
        .execute(&mut **tx)
        .await?;
    Ok(ids.into_iter().map(SessionId).collect())
}

/// Revokes the active session `id` of `user` in `tx`, with its device token and push
/// registration; false when it is not theirs or not active.
pub(super) async fn revoke_one(
    tx: &mut Transaction<'_, MySql>,
    user: UserId,
    id: SessionId,
) -> Result<bool, sqlx::Error> {
    let res = sqlx::query(
        "UPDATE sessions SET active = 0, device_token_hash = NULL, \
         device_token_expires = NULL WHERE id = ? AND uid = ? AND active = 1",
    )
    .bind(id.0)
    .bind(uid(user))
    .execute(&mut **tx)
    .await?;
    if res.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM push_registrations WHERE session_id = ?")
        .bind(id.0)
        .execute(&mut **tx)
        .await?;
    Ok(true)
}

#[async_trait]
impl SessionStore for MysqlStore {
    async fn upsert_session(&self, s: &SessionUpsert) -> StoreResult<Session> {
        // A lost insert race: run again (then it updates).
        for _ in 0..3 {
            if let Some(session) = self.retry(move || self.upsert_session_tx(s)).await? {
                return Ok(session);
            }
        }
        Err(StoreError::Conflict("session"))
    }

    async fn session(&self, id: SessionId) -> StoreResult<Option<Session>> {
        let row = sqlx::query(&format!("SELECT {SESSION_COLS} FROM sessions WHERE id = ?"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(be)?;
        row.as_ref().map(rows::session).transpose()
    }

    async fn active_session(
        &self,
        user: UserId,
        device: &DeviceId,
    ) -> StoreResult<Option<Session>> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE uid = ? AND active_device = ?"
        ))
        .bind(uid(user))
        .bind(device.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(be)?;
        row.as_ref().map(rows::session).transpose()
    }

    async fn sessions_of(&self, user: UserId) -> StoreResult<Vec<Session>> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE uid = ? AND active = 1 ORDER BY id"
        ))
        .bind(uid(user))
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        rows.iter().map(rows::session).collect()
    }

    async fn set_device_token(
        &self,
        id: SessionId,
        token: Option<(&[u8], Timestamp)>,
    ) -> StoreResult<bool> {
        self.retry(move || async move {
            let res = sqlx::query(
                "UPDATE sessions SET device_token_hash = ?, device_token_expires = ? \
                 WHERE id = ? AND active = 1",
            )
            .bind(token.map(|(h, _)| h))
            .bind(token.map(|(_, e)| e.millis()))
            .bind(id.0)
            .execute(&self.pool)
            .await?;
            Ok(res.rows_affected() == 1)
        })
        .await
    }

    async fn touch_session(&self, id: SessionId, sealed_last_activity: &[u8]) -> StoreResult<()> {
        self.retry(move || async move {
            sqlx::query("UPDATE sessions SET last_activity = ? WHERE id = ?")
                .bind(sealed_last_activity)
                .bind(id.0)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn revoke_session(&self, user: UserId, id: SessionId) -> StoreResult<bool> {
        self.retry(move || async move {
            let mut tx = self.pool.begin().await?;
            let revoked = revoke_one(&mut tx, user, id).await?;
            if revoked {
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            Ok(revoked)
        })
        .await
    }

    async fn revoke_sessions_except(
        &self,
        user: UserId,
        keep: Option<SessionId>,
    ) -> StoreResult<Vec<SessionId>> {
        let keep = keep.map_or(0, |k| k.0);
        self.retry(move || self.revoke_except_tx(user, keep)).await
    }
}
