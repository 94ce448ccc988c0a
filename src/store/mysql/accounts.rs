//! [`UserStore`] of the MySQL backend: users and their secret-key backups.

use async_trait::async_trait;

use super::json::{self, INT_TABLE};
use super::{be, is_foreign_key_violation, is_unique_violation, MysqlStore};
use crate::model::{ProfileChange, Timestamp, UserId, UserRecord};
use crate::store::sql::rows::{self, uid, Cells, USER_COLS};
use crate::store::{StoreError, StoreResult, UserStore};

#[async_trait]
impl UserStore for MysqlStore {
    async fn create_user(&self, u: &UserRecord) -> StoreResult<()> {
        self.retry(move || async move {
            // A retired uid (an erased account's) is taken for good. Under REPEATABLE READ the
            // `INSERT … SELECT` share-locks what it reads of `retired_uids` (a gap lock when the
            // uid is absent), so an erase retiring this uid at the same time waits or is seen.
            let res = sqlx::query(
                "INSERT INTO users (uid, phone_index, phone, name, nickname, username, bio, \
                 public_key, password_hash, created_at) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? \
                 FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM retired_uids WHERE uid = ?)",
            )
            .bind(uid(u.id))
            .bind(&u.phone_index)
            .bind(&u.phone)
            .bind(&u.name)
            .bind(&u.nickname)
            .bind(&u.username)
            .bind(&u.bio)
            .bind(&u.public_key)
            .bind(&u.password_hash)
            .bind(u.created_at.millis())
            .bind(uid(u.id))
            .execute(&self.pool)
            .await;
            match res {
                Ok(r) if r.rows_affected() == 0 => Err(StoreError::Conflict("uid").into()),
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => {
                    // "Duplicate entry '…' for key 'users_phone_index'" (MySQL 8 qualifies the
                    // key with the table name); the primary key is the uid.
                    let which = if e.to_string().contains("phone_index") {
                        "phone"
                    } else {
                        "uid"
                    };
                    Err(StoreError::Conflict(which).into())
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn user(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE uid = ?"))
            .bind(uid(id))
            .fetch_optional(&self.pool)
            .await
            .map_err(be)?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn users(&self, ids: &[UserId]) -> StoreResult<Vec<UserRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = json::array(&ids.iter().map(|u| uid(*u)).collect::<Vec<_>>())?;
        // One statement whatever the number of ids (see `json.rs`); a repeated id once.
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM users WHERE uid IN (SELECT n FROM {INT_TABLE} j)"
        ))
        .bind(list)
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        rows.iter().map(rows::user).collect()
    }

    async fn user_by_phone_index(&self, index: &[u8]) -> StoreResult<Option<UserRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM users WHERE phone_index = ?"
        ))
        .bind(index)
        .fetch_optional(&self.pool)
        .await
        .map_err(be)?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn update_user(&self, id: UserId, c: &ProfileChange) -> StoreResult<bool> {
        // Each optional column: a flag saying "set it" and the value. sqlx asks for
        // CLIENT_FOUND_ROWS, so the count is of matched rows, changed or not.
        self.retry(move || async move {
            let res = sqlx::query(
                "UPDATE users SET \
                   name = CASE WHEN ? THEN ? ELSE name END, \
                   nickname = CASE WHEN ? THEN ? ELSE nickname END, \
                   username = CASE WHEN ? THEN ? ELSE username END, \
                   bio = CASE WHEN ? THEN ? ELSE bio END, \
                   public_key = CASE WHEN ? THEN ? ELSE public_key END, \
                   password_hash = CASE WHEN ? THEN ? ELSE password_hash END \
                 WHERE uid = ?",
            )
            .bind(c.name.is_some())
            .bind(&c.name)
            .bind(c.nickname.is_some())
            .bind(&c.nickname)
            .bind(c.username.is_some())
            .bind(c.username.clone().flatten())
            .bind(c.bio.is_some())
            .bind(c.bio.clone().flatten())
            .bind(c.public_key.is_some())
            .bind(&c.public_key)
            .bind(c.password_hash.is_some())
            .bind(&c.password_hash)
            .bind(uid(id))
            .execute(&self.pool)
            .await?;
            Ok(res.rows_affected() == 1)
        })
        .await
    }

    async fn put_secret_key(&self, id: UserId, sealed: &[u8], at: Timestamp) -> StoreResult<()> {
        self.retry(move || async move {
            let res = sqlx::query(
                "INSERT INTO secret_keys (uid, ciphertext, updated_at) VALUES (?, ?, ?) \
                 ON DUPLICATE KEY UPDATE ciphertext = VALUES(ciphertext), \
                   updated_at = VALUES(updated_at)",
            )
            .bind(uid(id))
            .bind(sealed)
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

    async fn secret_key(&self, id: UserId) -> StoreResult<Option<(Vec<u8>, Timestamp)>> {
        let row = sqlx::query("SELECT ciphertext, updated_at FROM secret_keys WHERE uid = ?")
            .bind(uid(id))
            .fetch_optional(&self.pool)
            .await
            .map_err(be)?;
        row.map(|r| Ok((r.bytes("ciphertext")?, r.time("updated_at")?)))
            .transpose()
    }

    async fn put_settings(&self, id: UserId, sealed: &[u8]) -> StoreResult<()> {
        self.retry(move || async move {
            let res = sqlx::query(
                "INSERT INTO user_settings (uid, settings) VALUES (?, ?) \
                 ON DUPLICATE KEY UPDATE settings = VALUES(settings)",
            )
            .bind(uid(id))
            .bind(sealed)
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

    async fn settings(&self, ids: &[UserId]) -> StoreResult<Vec<(UserId, Vec<u8>)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; ids.len()].join(", ");
        let sql = format!("SELECT uid, settings FROM user_settings WHERE uid IN ({marks})");
        let mut q = sqlx::query(&sql);
        for id in ids {
            q = q.bind(uid(*id));
        }
        let rows = q.fetch_all(&self.pool).await.map_err(be)?;
        rows.iter()
            .map(|r| Ok((r.uid("uid")?, r.bytes("settings")?)))
            .collect()
    }
}
