//! [`AdminStore`] and [`RegistrationInviteStore`] of [`SqliteStore`].
//!
//! The operator tools open the database file from a process of their own while a server runs:
//! their writes are short transactions that wait for the server's (busy handler), and a
//! revocation is noted in the same transaction that makes it.

use async_trait::async_trait;
use rusqlite::{params, Transaction};

use super::db::{be, unique_violation};
use super::rows::{all, exec, one};
use super::sessions::{revoke_all_but, revoke_one};
use super::SqliteStore;
use crate::model::{Session, SessionId, Timestamp, UserId};
use crate::store::sql::admin::{counts, COUNTS_SQL};
use crate::store::sql::rows::{self as dec, clamp, uid, Cells, SESSION_COLS};
use crate::store::{AdminStore, RegistrationInviteStore, StoreCounts, StoreError, StoreResult};

/// Notes a revocation of `user`'s sessions, inside the transaction that made it.
fn note(t: &Transaction<'_>, user: UserId, at: Timestamp) -> StoreResult<()> {
    exec(
        t,
        "INSERT INTO revocation_notes (uid, at) VALUES (?1, ?2)",
        [uid(user), at.millis()],
    )
    .map(drop)
}

#[async_trait]
impl AdminStore for SqliteStore {
    async fn user_locked(&self, user: UserId) -> StoreResult<Option<bool>> {
        self.db
            .read(move |c| {
                one(
                    c,
                    "SELECT locked FROM users WHERE uid = ?1",
                    [uid(user)],
                    |r| r.flag("locked"),
                )
            })
            .await
    }

    async fn lock_user(&self, user: UserId, at: Timestamp) -> StoreResult<Option<Vec<SessionId>>> {
        self.db
            .write(move |t| {
                if exec(t, "UPDATE users SET locked = 1 WHERE uid = ?1", [uid(user)])? != 1 {
                    return Ok(None);
                }
                let revoked = revoke_all_but(t, user, None)?;
                if !revoked.is_empty() {
                    note(t, user, at)?;
                }
                Ok(Some(revoked))
            })
            .await
    }

    async fn unlock_user(&self, user: UserId) -> StoreResult<bool> {
        self.db
            .write(move |t| {
                Ok(exec(t, "UPDATE users SET locked = 0 WHERE uid = ?1", [uid(user)])? == 1)
            })
            .await
    }

    async fn revoke_noted(
        &self,
        user: UserId,
        only: Option<SessionId>,
        at: Timestamp,
    ) -> StoreResult<Vec<SessionId>> {
        self.db
            .write(move |t| {
                let revoked = match only {
                    Some(id) => {
                        if revoke_one(t, user, id)? {
                            vec![id]
                        } else {
                            Vec::new()
                        }
                    }
                    None => revoke_all_but(t, user, None)?,
                };
                if !revoked.is_empty() {
                    note(t, user, at)?;
                }
                Ok(revoked)
            })
            .await
    }

    async fn all_sessions_of(&self, user: UserId, limit: u64) -> StoreResult<Vec<Session>> {
        self.db
            .read(move |c| {
                all(
                    c,
                    &format!(
                        "SELECT {SESSION_COLS} FROM sessions WHERE uid = ?1 ORDER BY id DESC \
                         LIMIT ?2"
                    ),
                    [uid(user), clamp(limit)],
                    |r| dec::session(r),
                )
            })
            .await
    }

    async fn revocation_notes(&self, after: i64, limit: u64) -> StoreResult<Vec<(i64, UserId)>> {
        self.db
            .read(move |c| {
                all(
                    c,
                    "SELECT id, uid FROM revocation_notes WHERE id > ?1 ORDER BY id LIMIT ?2",
                    [after, clamp(limit)],
                    |r| Ok((r.int("id")?, r.uid("uid")?)),
                )
            })
            .await
    }

    async fn last_revocation_note(&self) -> StoreResult<i64> {
        self.db
            .read(|c| {
                let last = one(
                    c,
                    "SELECT COALESCE(MAX(id), 0) AS id FROM revocation_notes",
                    [],
                    |r| r.int("id"),
                )?;
                Ok(last.unwrap_or(0))
            })
            .await
    }

    async fn purge_revocation_notes(&self, before: Timestamp) -> StoreResult<u64> {
        self.db
            .write(move |t| {
                exec(
                    t,
                    "DELETE FROM revocation_notes WHERE at < ?1",
                    [before.millis()],
                )
                .map(|n| n as u64)
            })
            .await
    }

    async fn counts(&self, now: Timestamp) -> StoreResult<StoreCounts> {
        self.db
            .read(move |c| {
                one(c, COUNTS_SQL, [now.millis()], |r| counts(r))?
                    .ok_or_else(|| StoreError::Backend("no row of counts".into()))
            })
            .await
    }
}

#[async_trait]
impl RegistrationInviteStore for SqliteStore {
    async fn create_registration_invite(
        &self,
        index: &[u8],
        expires_at: Timestamp,
    ) -> StoreResult<()> {
        let index = index.to_vec();
        self.db
            .write(move |t| {
                match t.execute(
                    "INSERT INTO registration_invites (code_index, expires_at, used) \
                     VALUES (?1, ?2, 0)",
                    params![index, expires_at.millis()],
                ) {
                    Ok(_) => Ok(()),
                    Err(e) if unique_violation(&e).is_some() => Err(StoreError::Conflict("invite")),
                    Err(e) => Err(be(e)),
                }
            })
            .await
    }

    async fn use_registration_invite(&self, index: &[u8], now: Timestamp) -> StoreResult<bool> {
        let index = index.to_vec();
        self.db
            .write(move |t| {
                let n = exec(
                    t,
                    "UPDATE registration_invites SET used = 1 \
                     WHERE code_index = ?1 AND used = 0 AND expires_at > ?2",
                    params![index, now.millis()],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn restore_registration_invite(&self, index: &[u8]) -> StoreResult<bool> {
        let index = index.to_vec();
        self.db
            .write(move |t| {
                let n = exec(
                    t,
                    "UPDATE registration_invites SET used = 0 WHERE code_index = ?1 AND used = 1",
                    [index],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn purge_registration_invites(&self, now: Timestamp) -> StoreResult<u64> {
        self.db
            .write(move |t| {
                exec(
                    t,
                    "DELETE FROM registration_invites WHERE expires_at <= ?1",
                    [now.millis()],
                )
                .map(|n| n as u64)
            })
            .await
    }
}
