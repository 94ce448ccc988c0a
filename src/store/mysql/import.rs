//! [`ImportStore`] of the MySQL backend: each import is one transaction.

use async_trait::async_trait;
use sqlx::{MySql, Transaction};

use super::{be, is_unique_violation, MysqlStore, TxResult};
use crate::model::{ChatRole, UserId, UserRecord};
use crate::store::sql::rows::uid;
use crate::store::{ImportDone, ImportOutcome, ImportStore, ImportedChat, StoreResult};

/// Whether `sql` (with one parameter) finds a row; the row is locked for the transaction.
async fn exists<'q, T>(tx: &mut Transaction<'_, MySql>, sql: &'q str, key: T) -> TxResult<bool>
where
    T: 'q + Send + sqlx::Encode<'q, MySql> + sqlx::Type<MySql>,
{
    Ok(sqlx::query(sql)
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?
        .is_some())
}

async fn import_user(tx: &mut Transaction<'_, MySql>, u: &UserRecord) -> TxResult<ImportOutcome> {
    let me = uid(u.id);
    if exists(
        tx,
        "SELECT 1 FROM imported_users WHERE uid = ? FOR UPDATE",
        me,
    )
    .await?
    {
        return Ok(ImportOutcome::AlreadyImported);
    }
    if exists(tx, "SELECT 1 FROM users WHERE uid = ? FOR UPDATE", me).await? {
        return Ok(ImportOutcome::Conflict("uid"));
    }
    if exists(
        tx,
        "SELECT 1 FROM retired_uids WHERE uid = ? FOR UPDATE",
        me,
    )
    .await?
    {
        return Ok(ImportOutcome::Conflict("retired"));
    }
    if exists(
        tx,
        "SELECT 1 FROM users WHERE phone_index = ? FOR UPDATE",
        u.phone_index.as_slice(),
    )
    .await?
    {
        return Ok(ImportOutcome::Conflict("phone"));
    }
    sqlx::query(
        "INSERT INTO users (uid, phone_index, phone, name, nickname, username, bio, public_key, \
         password_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(me)
    .bind(&u.phone_index)
    .bind(&u.phone)
    .bind(&u.name)
    .bind(&u.nickname)
    .bind(&u.username)
    .bind(&u.bio)
    .bind(&u.public_key)
    .bind(&u.password_hash)
    .bind(u.created_at.millis())
    .execute(&mut **tx)
    .await?;
    sqlx::query("INSERT INTO imported_users (uid) VALUES (?)")
        .bind(me)
        .execute(&mut **tx)
        .await?;
    Ok(ImportOutcome::Created)
}

async fn import_chat(tx: &mut Transaction<'_, MySql>, c: &ImportedChat) -> TxResult<ImportOutcome> {
    if exists(
        tx,
        "SELECT 1 FROM imported_chats WHERE id = ? FOR UPDATE",
        c.id,
    )
    .await?
    {
        return Ok(ImportOutcome::AlreadyImported);
    }
    if exists(tx, "SELECT 1 FROM chats WHERE id = ? FOR UPDATE", c.id).await? {
        return Ok(ImportOutcome::Conflict("chat"));
    }
    if let Some((_, index)) = &c.code {
        if exists(
            tx,
            "SELECT 1 FROM chats WHERE code_index = ? FOR UPDATE",
            index.as_slice(),
        )
        .await?
        {
            return Ok(ImportOutcome::Conflict("invite"));
        }
    }
    // InnoDB moves the AUTO_INCREMENT counter past an explicit id: later chats get higher ids.
    sqlx::query(
        "INSERT INTO chats (id, kind, name, owner, created_at, is_public, invite_code, \
         code_index, slow_mode_secs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(c.id)
    .bind(c.kind.as_str())
    .bind(&c.sealed_name)
    .bind(uid(c.owner))
    .bind(c.created_at.millis())
    .bind(c.is_public)
    .bind(c.code.as_ref().map(|(code, _)| code))
    .bind(c.code.as_ref().map(|(_, index)| index))
    .bind(i64::from(c.slow_mode_secs))
    .execute(&mut **tx)
    .await?;
    sqlx::query("INSERT INTO chat_members (chat_id, uid, role, joined_at) VALUES (?, ?, ?, ?)")
        .bind(c.id)
        .bind(uid(c.owner))
        .bind(ChatRole::Owner.as_str())
        .bind(c.created_at.millis())
        .execute(&mut **tx)
        .await?;
    sqlx::query("INSERT INTO imported_chats (id) VALUES (?)")
        .bind(c.id)
        .execute(&mut **tx)
        .await?;
    Ok(ImportOutcome::Created)
}

#[async_trait]
impl ImportStore for MysqlStore {
    async fn import_user(&self, user: &UserRecord) -> StoreResult<ImportOutcome> {
        self.retry(move || async move {
            let mut tx = self.pool.begin().await?;
            match import_user(&mut tx, user).await {
                Ok(ImportOutcome::Created) => {
                    tx.commit().await?;
                    Ok(ImportOutcome::Created)
                }
                Ok(other) => {
                    tx.rollback().await?;
                    Ok(other)
                }
                // A concurrent writer took the uid or the phone between the checks and the
                // insert.
                Err(super::TxError::Sql(e)) if is_unique_violation(&e) => {
                    tx.rollback().await?;
                    Ok(ImportOutcome::Conflict(
                        if e.to_string().contains("phone_index") {
                            "phone"
                        } else {
                            "uid"
                        },
                    ))
                }
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn import_chat(&self, chat: &ImportedChat) -> StoreResult<ImportOutcome> {
        self.retry(move || async move {
            let mut tx = self.pool.begin().await?;
            match import_chat(&mut tx, chat).await {
                Ok(ImportOutcome::Created) => {
                    tx.commit().await?;
                    Ok(ImportOutcome::Created)
                }
                Ok(other) => {
                    tx.rollback().await?;
                    Ok(other)
                }
                Err(super::TxError::Sql(e)) if is_unique_violation(&e) => {
                    tx.rollback().await?;
                    Ok(ImportOutcome::Conflict(
                        if e.to_string().contains("code_index") {
                            "invite"
                        } else {
                            "chat"
                        },
                    ))
                }
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn reserve_chat_ids(&self, through: i64) -> StoreResult<()> {
        // InnoDB's AUTO_INCREMENT counter moves past an explicit id and never back (it is
        // persistent in MySQL 8 and MariaDB 10.2+): a row with id `through` inserted and deleted
        // in one transaction moves it, and nobody sees the row.
        if through < 1 {
            return Ok(());
        }
        self.retry(move || async move {
            let mut tx = self.pool.begin().await?;
            if exists(&mut tx, "SELECT 1 FROM chats WHERE id = ? FOR UPDATE", through).await? {
                tx.rollback().await?;
                return Ok(());
            }
            sqlx::query(
                "INSERT INTO chats (id, kind, name, owner, created_at) VALUES (?, 'chat', '', 0, 0)",
            )
            .bind(through)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM chats WHERE id = ?")
                .bind(through)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn is_imported_user(&self, user: UserId) -> StoreResult<bool> {
        Ok(sqlx::query("SELECT 1 FROM imported_users WHERE uid = ?")
            .bind(uid(user))
            .fetch_optional(&self.pool)
            .await
            .map_err(be)?
            .is_some())
    }

    async fn replace_password_hash(&self, user: UserId, old: &str, new: &str) -> StoreResult<bool> {
        let r =
            sqlx::query("UPDATE users SET password_hash = ? WHERE uid = ? AND password_hash = ?")
                .bind(new)
                .bind(uid(user))
                .bind(old)
                .execute(&self.pool)
                .await
                .map_err(be)?;
        Ok(r.rows_affected() == 1)
    }

    async fn import_done(&self) -> StoreResult<ImportDone> {
        use sqlx::Row;
        let users = sqlx::query(
            "SELECT uid, graph_done, tokens_done FROM imported_users \
             WHERE graph_done = 1 OR tokens_done = 1",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        let mut done = ImportDone::default();
        for r in users {
            let n: i64 = r.try_get("uid").map_err(be)?;
            let graph: i8 = r.try_get("graph_done").map_err(be)?;
            let tokens: i8 = r.try_get("tokens_done").map_err(be)?;
            let Some(user) = u32::try_from(n).ok().and_then(UserId::new) else {
                continue;
            };
            if graph == 1 {
                done.graph_users.insert(user);
            }
            if tokens == 1 {
                done.token_users.insert(user);
            }
        }
        let chats = sqlx::query("SELECT id FROM imported_chats WHERE members_done = 1")
            .fetch_all(&self.pool)
            .await
            .map_err(be)?;
        for r in chats {
            done.member_chats
                .insert(r.try_get::<i64, _>("id").map_err(be)?);
        }
        Ok(done)
    }

    async fn mark_import_done(
        &self,
        users: &[UserId],
        tokens: bool,
        chats: &[i64],
    ) -> StoreResult<()> {
        let tokens = i8::from(tokens);
        for part in users.chunks(500) {
            self.retry(move || async move {
                let mut tx = self.pool.begin().await?;
                for u in part {
                    sqlx::query(
                        "UPDATE imported_users SET graph_done = 1, \
                         tokens_done = GREATEST(tokens_done, ?) WHERE uid = ?",
                    )
                    .bind(tokens)
                    .bind(uid(*u))
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            })
            .await?;
        }
        for part in chats.chunks(500) {
            self.retry(move || async move {
                let mut tx = self.pool.begin().await?;
                for c in part {
                    sqlx::query("UPDATE imported_chats SET members_done = 1 WHERE id = ?")
                        .bind(*c)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            })
            .await?;
        }
        Ok(())
    }
}
