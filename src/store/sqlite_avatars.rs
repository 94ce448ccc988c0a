//! [`AvatarStore`] of the SQLite backend: one row per user in `avatars`.
//!
//! Writes are single statements on the writer connection.

use async_trait::async_trait;
use sqlx::Row;

use super::{be, SqliteStore};
use crate::model::{Timestamp, UserId};
use crate::store::{AvatarStore, StoreError, StoreResult, StoredAvatar};

#[async_trait]
impl AvatarStore for SqliteStore {
    async fn put_avatar(
        &self,
        user: UserId,
        mime: &str,
        sealed: &[u8],
        etag: &str,
        at: Timestamp,
    ) -> StoreResult<()> {
        let res = sqlx::query(
            "INSERT INTO avatars (uid, mime, sealed, etag, updated_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT(uid) DO UPDATE SET mime = excluded.mime, sealed = excluded.sealed, \
               etag = excluded.etag, updated_at = excluded.updated_at",
        )
        .bind(i64::from(user.get()))
        .bind(mime)
        .bind(sealed)
        .bind(etag)
        .bind(at.millis())
        .execute(&self.writer)
        .await;
        match res {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(d)) if d.is_foreign_key_violation() => {
                Err(StoreError::NotFound)
            }
            Err(e) => Err(be(e)),
        }
    }

    async fn avatar(&self, user: UserId) -> StoreResult<Option<StoredAvatar>> {
        let row = sqlx::query("SELECT mime, sealed, etag, updated_at FROM avatars WHERE uid = ?")
            .bind(i64::from(user.get()))
            .fetch_optional(&self.pool)
            .await
            .map_err(be)?;
        row.map(|r| {
            Ok(StoredAvatar {
                mime: r.try_get("mime").map_err(be)?,
                sealed: r.try_get("sealed").map_err(be)?,
                etag: r.try_get("etag").map_err(be)?,
                updated_at: Timestamp::from_millis(r.try_get("updated_at").map_err(be)?),
            })
        })
        .transpose()
    }

    async fn delete_avatar(&self, user: UserId) -> StoreResult<bool> {
        let res = sqlx::query("DELETE FROM avatars WHERE uid = ?")
            .bind(i64::from(user.get()))
            .execute(&self.writer)
            .await
            .map_err(be)?;
        Ok(res.rows_affected() == 1)
    }
}
