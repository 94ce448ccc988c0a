//! [`PushStore`] of the SQLite backend: one row per session in `push_registrations`.
//!
//! Writes are single statements on the writer connection, so a registration and a concurrent
//! revocation (which deletes the row in its own transaction) cannot interleave.

use async_trait::async_trait;
use sqlx::Row;

use super::{be, SqliteStore};
use crate::model::{SessionId, Timestamp, UserId};
use crate::store::{PushStore, StoreResult};

#[async_trait]
impl PushStore for SqliteStore {
    async fn set_push(&self, user: UserId, session: SessionId, sealed: &[u8]) -> StoreResult<bool> {
        // The SELECT yields the row only for an active session of `user`. (Its WHERE clause also
        // keeps SQLite from reading `ON CONFLICT` as part of the SELECT.)
        let res = sqlx::query(
            "INSERT INTO push_registrations (session_id, uid, sealed, updated_at) \
             SELECT id, uid, ?, ? FROM sessions WHERE id = ? AND uid = ? AND active = 1 \
             ON CONFLICT(session_id) DO UPDATE SET \
               sealed = excluded.sealed, updated_at = excluded.updated_at",
        )
        .bind(sealed)
        .bind(Timestamp::now().millis())
        .bind(session.0)
        .bind(i64::from(user.get()))
        .execute(&self.writer)
        .await
        .map_err(be)?;
        Ok(res.rows_affected() == 1)
    }

    async fn push_registrations(&self, user: UserId) -> StoreResult<Vec<(SessionId, Vec<u8>)>> {
        let rows = sqlx::query(
            "SELECT p.session_id, p.sealed FROM push_registrations p \
             JOIN sessions s ON s.id = p.session_id \
             WHERE p.uid = ? AND s.uid = p.uid AND s.active = 1 ORDER BY p.session_id",
        )
        .bind(i64::from(user.get()))
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        rows.iter()
            .map(|r| {
                Ok((
                    SessionId(r.try_get("session_id").map_err(be)?),
                    r.try_get("sealed").map_err(be)?,
                ))
            })
            .collect()
    }

    async fn delete_push(&self, session: SessionId, sealed: &[u8]) -> StoreResult<bool> {
        let res = sqlx::query("DELETE FROM push_registrations WHERE session_id = ? AND sealed = ?")
            .bind(session.0)
            .bind(sealed)
            .execute(&self.writer)
            .await
            .map_err(be)?;
        Ok(res.rows_affected() == 1)
    }
}
