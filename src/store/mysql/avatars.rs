//! [`AvatarStore`] of the MySQL backend: one row per user in `avatars`.

use super::{be, is_foreign_key_violation, MysqlStore};
use crate::model::{Timestamp, UserId};
use crate::store::sql::rows::{self, uid};
use crate::store::{AvatarStore, StoreError, StoreResult, StoredAvatar};
use async_trait::async_trait;

#[async_trait]
impl AvatarStore for MysqlStore {
    async fn put_avatar(
        &self,
        user: UserId,
        mime: &str,
        sealed: &[u8],
        etag: &str,
        at: Timestamp,
    ) -> StoreResult<()> {
        self.retry(move || async move {
            let res = sqlx::query(
                "INSERT INTO avatars (uid, mime, sealed, etag, updated_at) \
                 VALUES (?, ?, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE mime = VALUES(mime), sealed = VALUES(sealed), \
                   etag = VALUES(etag), updated_at = VALUES(updated_at)",
            )
            .bind(uid(user))
            .bind(mime)
            .bind(sealed)
            .bind(etag)
            .bind(at.millis())
            .execute(&self.pool)
            .await;
            match res {
                Ok(_) => Ok(()),
                Err(e) if is_foreign_key_violation(&e) => Err(StoreError::NotFound.into()),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn avatar(&self, user: UserId) -> StoreResult<Option<StoredAvatar>> {
        let row = sqlx::query("SELECT mime, sealed, etag, updated_at FROM avatars WHERE uid = ?")
            .bind(uid(user))
            .fetch_optional(&self.pool)
            .await
            .map_err(be)?;
        row.as_ref().map(rows::avatar).transpose()
    }

    async fn delete_avatar(&self, user: UserId) -> StoreResult<bool> {
        self.retry(move || async move {
            let res = sqlx::query("DELETE FROM avatars WHERE uid = ?")
                .bind(uid(user))
                .execute(&self.pool)
                .await?;
            Ok(res.rows_affected() == 1)
        })
        .await
    }
}
