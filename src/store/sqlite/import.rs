//! [`ImportStore`] of [`SqliteStore`]: each import is one write transaction.

use async_trait::async_trait;
use rusqlite::{params, Transaction};

use super::db::unique_violation;
use super::rows::{all, exec, one};
use super::SqliteStore;
use crate::model::{ChatRole, UserId, UserRecord};
use crate::store::sql::rows::{uid, Cells};
use crate::store::{ImportDone, ImportOutcome, ImportStore, ImportedChat, StoreError, StoreResult};

/// Whether `sql` (with one parameter) finds a row.
fn exists(t: &Transaction<'_>, sql: &str, key: impl rusqlite::ToSql) -> StoreResult<bool> {
    Ok(one(t, sql, [key], |r| r.int("x"))?.is_some())
}

fn import_user(t: &Transaction<'_>, u: &UserRecord) -> StoreResult<ImportOutcome> {
    let me = uid(u.id);
    if exists(t, "SELECT 1 AS x FROM imported_users WHERE uid = ?1", me)? {
        return Ok(ImportOutcome::AlreadyImported);
    }
    if exists(t, "SELECT 1 AS x FROM users WHERE uid = ?1", me)? {
        return Ok(ImportOutcome::Conflict("uid"));
    }
    if exists(t, "SELECT 1 AS x FROM retired_uids WHERE uid = ?1", me)? {
        return Ok(ImportOutcome::Conflict("retired"));
    }
    if exists(
        t,
        "SELECT 1 AS x FROM users WHERE phone_index = ?1",
        &u.phone_index,
    )? {
        return Ok(ImportOutcome::Conflict("phone"));
    }
    exec(
        t,
        "INSERT INTO users (uid, phone_index, phone, name, nickname, username, bio, public_key, \
         password_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            me,
            u.phone_index,
            u.phone,
            u.name,
            u.nickname,
            u.username,
            u.bio,
            u.public_key,
            u.password_hash,
            u.created_at.millis()
        ],
    )?;
    exec(t, "INSERT INTO imported_users (uid) VALUES (?1)", [me])?;
    Ok(ImportOutcome::Created)
}

fn import_chat(t: &Transaction<'_>, c: &ImportedChat) -> StoreResult<ImportOutcome> {
    if exists(t, "SELECT 1 AS x FROM imported_chats WHERE id = ?1", c.id)? {
        return Ok(ImportOutcome::AlreadyImported);
    }
    if exists(t, "SELECT 1 AS x FROM chats WHERE id = ?1", c.id)? {
        return Ok(ImportOutcome::Conflict("chat"));
    }
    let (code, index) = match &c.code {
        Some((code, index)) => (Some(code), Some(index)),
        None => (None, None),
    };
    if let Some(index) = index {
        if exists(t, "SELECT 1 AS x FROM chats WHERE code_index = ?1", index)? {
            return Ok(ImportOutcome::Conflict("invite"));
        }
    }
    // An explicit id above the AUTOINCREMENT counter moves the counter: later chats get higher
    // ids.
    exec(
        t,
        "INSERT INTO chats (id, kind, name, owner, created_at, is_public, invite_code, \
         code_index, slow_mode_secs) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            c.id,
            c.kind.as_str(),
            c.sealed_name,
            uid(c.owner),
            c.created_at.millis(),
            c.is_public,
            code,
            index,
            c.slow_mode_secs
        ],
    )?;
    exec(
        t,
        "INSERT INTO chat_members (chat_id, uid, role, joined_at) VALUES (?1, ?2, ?3, ?4)",
        params![
            c.id,
            uid(c.owner),
            ChatRole::Owner.as_str(),
            c.created_at.millis()
        ],
    )?;
    exec(t, "INSERT INTO imported_chats (id) VALUES (?1)", [c.id])?;
    Ok(ImportOutcome::Created)
}

/// A unique violation the checks above did not foresee (a concurrent writer): a conflict.
fn conflict_on_race(
    r: StoreResult<ImportOutcome>,
    what: &'static str,
) -> StoreResult<ImportOutcome> {
    match r {
        Err(StoreError::Backend(e)) => match e.downcast_ref::<rusqlite::Error>() {
            Some(sql) if unique_violation(sql).is_some() => Ok(ImportOutcome::Conflict(what)),
            _ => Err(StoreError::Backend(e)),
        },
        other => other,
    }
}

#[async_trait]
impl ImportStore for SqliteStore {
    async fn import_user(&self, user: &UserRecord) -> StoreResult<ImportOutcome> {
        let user = user.clone();
        let r = self.db.write(move |t| import_user(t, &user)).await;
        conflict_on_race(r, "uid")
    }

    async fn import_chat(&self, chat: &ImportedChat) -> StoreResult<ImportOutcome> {
        let chat = chat.clone();
        let r = self.db.write(move |t| import_chat(t, &chat)).await;
        conflict_on_race(r, "chat")
    }

    async fn reserve_chat_ids(&self, through: i64) -> StoreResult<()> {
        // AUTOINCREMENT keeps the highest id ever inserted: a row with id `through` inserted
        // and deleted in one transaction moves it (never down), and nobody sees the row.
        self.db
            .write(move |t| {
                if through < 1 || exists(t, "SELECT 1 AS x FROM chats WHERE id = ?1", through)? {
                    return Ok(());
                }
                exec(
                    t,
                    "INSERT INTO chats (id, kind, name, owner, created_at) \
                     VALUES (?1, 'chat', x'', 0, 0)",
                    [through],
                )?;
                exec(t, "DELETE FROM chats WHERE id = ?1", [through])?;
                Ok(())
            })
            .await
    }

    async fn is_imported_user(&self, user: UserId) -> StoreResult<bool> {
        let me = uid(user);
        self.db
            .read(move |c| {
                Ok(one(
                    c,
                    "SELECT 1 AS x FROM imported_users WHERE uid = ?1",
                    [me],
                    |r| r.int("x"),
                )?
                .is_some())
            })
            .await
    }

    async fn replace_password_hash(&self, user: UserId, old: &str, new: &str) -> StoreResult<bool> {
        let (me, old, new) = (uid(user), old.to_owned(), new.to_owned());
        self.db
            .write(move |t| {
                Ok(exec(
                    t,
                    "UPDATE users SET password_hash = ?1 WHERE uid = ?2 AND password_hash = ?3",
                    params![new, me, old],
                )? == 1)
            })
            .await
    }

    async fn import_done(&self) -> StoreResult<ImportDone> {
        self.db
            .read(|c| {
                let users = all(
                    c,
                    "SELECT uid, graph_done, tokens_done FROM imported_users \
                     WHERE graph_done = 1 OR tokens_done = 1",
                    [],
                    |r| Ok((r.uid("uid")?, r.int("graph_done")?, r.int("tokens_done")?)),
                )?;
                let chats = all(
                    c,
                    "SELECT id FROM imported_chats WHERE members_done = 1",
                    [],
                    |r| r.int("id"),
                )?;
                Ok(ImportDone {
                    graph_users: users.iter().filter(|u| u.1 == 1).map(|u| u.0).collect(),
                    token_users: users.iter().filter(|u| u.2 == 1).map(|u| u.0).collect(),
                    member_chats: chats.into_iter().collect(),
                })
            })
            .await
    }

    async fn mark_import_done(
        &self,
        users: &[UserId],
        tokens: bool,
        chats: &[i64],
    ) -> StoreResult<()> {
        let users: Vec<i64> = users.iter().map(|u| uid(*u)).collect();
        let chats = chats.to_vec();
        let tokens = i64::from(tokens);
        self.db
            .write(move |t| {
                for u in &users {
                    exec(
                        t,
                        "UPDATE imported_users SET graph_done = 1, \
                         tokens_done = MAX(tokens_done, ?2) WHERE uid = ?1",
                        params![u, tokens],
                    )?;
                }
                for c in &chats {
                    exec(
                        t,
                        "UPDATE imported_chats SET members_done = 1 WHERE id = ?1",
                        [c],
                    )?;
                }
                Ok(())
            })
            .await
    }
}
