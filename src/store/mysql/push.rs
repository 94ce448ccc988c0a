//! [`PushStore`] of the MySQL backend: one row per session in `push_registrations`.
//!
//! `set_push` is one `INSERT … SELECT` that reads the session row with a shared lock, so a
//! registration and a concurrent revocation (which deletes the row in its own transaction)
//! cannot interleave.

use super::{be, MysqlStore};
use crate::model::{SessionId, Timestamp, UserId};
use crate::store::sql::rows::{uid, Cells};
use crate::store::{PushStore, StoreResult};
use async_trait::async_trait;

#[async_trait]
impl PushStore for MysqlStore {
    async fn set_push(&self, user: UserId, session: SessionId, sealed: &[u8]) -> StoreResult<bool> {
        self.retry(move || async move {
            // Affected rows: 0 when the SELECT yields nothing (not `user`'s or not active),
            // 1 for an insert, 2 (or 1 when unchanged) for a replacement.
            let res = sqlx::query(
                "INSERT INTO push_registrations (session_id, uid, sealed, updated_at) \
                 SELECT id, uid, ?, ? FROM sessions WHERE id = ? AND uid = ? AND active = 1 \
                 ON DUPLICATE KEY UPDATE sealed = VALUES(sealed), updated_at = VALUES(updated_at)",
            )
            .bind(sealed)
            .bind(Timestamp::now().millis())
            .bind(session.0)
            .bind(uid(user))
            .execute(&self.pool)
            .await?;
            Ok(res.rows_affected() >= 1)
        })
        .await
    }

    async fn push_registrations(&self, user: UserId) -> StoreResult<Vec<(SessionId, Vec<u8>)>> {
        let rows = sqlx::query(
            "SELECT p.session_id, p.sealed FROM push_registrations p \
             JOIN sessions s ON s.id = p.session_id \
             WHERE p.uid = ? AND s.uid = p.uid AND s.active = 1 ORDER BY p.session_id",
        )
        .bind(uid(user))
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        rows.iter()
            .map(|r| Ok((SessionId(r.int("session_id")?), r.bytes("sealed")?)))
            .collect()
    }

    async fn delete_push(&self, session: SessionId, sealed: &[u8]) -> StoreResult<bool> {
        self.retry(move || async move {
            let res =
                sqlx::query("DELETE FROM push_registrations WHERE session_id = ? AND sealed = ?")
                    .bind(session.0)
                    .bind(sealed)
                    .execute(&self.pool)
                    .await?;
            Ok(res.rows_affected() == 1)
        })
        .await
    }
}
