//! [`EraseStore`] of [`SqliteStore`]: the erase is one write transaction on the writer thread.
//!
//! Deleted bytes must not linger in the file: the transaction runs with `secure_delete = ON`
//! (freed cells and pages are overwritten with zeros, not merely marked free; the writer
//! otherwise runs with `FAST`, which zeroes what it frees inside pages it writes anyway), and
//! afterwards a `TRUNCATE` checkpoint copies the zeroed pages into the database file and empties
//! the WAL, which still held earlier images of those pages.

use async_trait::async_trait;
use rusqlite::{params, Transaction};

use super::rows::{all, exec, one};
use super::SqliteStore;
use crate::model::{ChatKind, ChatRole, Session, SessionId, UserId};
use crate::store::sql::rows::{self as dec, corrupt, uid, Cells, CONTACT_COLS, SESSION_COLS};
use crate::store::{
    Contact, ContactState, EraseStore, ErasedAccount, ErasedMembership, StoreError, StoreResult,
};

/// A user's relationships, accepted first, each group by the other user's uid (each half seeks
/// its own key: the primary key, `contacts_hi`).
const RELATIONSHIPS: &str = "SELECT user_lo, user_hi, requester, accepted, secret, requested_at \
     FROM (SELECT *, user_hi AS other FROM contacts WHERE user_lo = ?1 \
           UNION ALL SELECT *, user_lo AS other FROM contacts WHERE user_hi = ?1) \
     ORDER BY accepted DESC, other LIMIT ?2";
const RELATIONSHIP_COUNT: &str = "SELECT (SELECT COUNT(*) FROM contacts WHERE user_lo = ?1) \
     + (SELECT COUNT(*) FROM contacts WHERE user_hi = ?1) AS n";

/// The owner's heir among the remaining members: the oldest admin, else the oldest member.
const HEIR: &str = "SELECT uid FROM chat_members WHERE chat_id = ?1 \
     ORDER BY role = 'admin' DESC, joined_at, uid LIMIT 1";

fn erase(t: &Transaction<'_>, user: UserId) -> StoreResult<Option<ErasedAccount>> {
    let me = uid(user);
    if one(t, "SELECT 1 AS x FROM users WHERE uid = ?1", [me], |r| {
        r.int("x")
    })?
    .is_none()
    {
        return Ok(None);
    }
    exec(
        t,
        "INSERT OR IGNORE INTO retired_uids (uid) VALUES (?1)",
        [me],
    )?;
    for sql in [
        "DELETE FROM secret_keys WHERE uid = ?1",
        "DELETE FROM imported_users WHERE uid = ?1",
        "DELETE FROM user_settings WHERE uid = ?1",
        "DELETE FROM avatars WHERE uid = ?1",
        "DELETE FROM push_registrations WHERE uid = ?1",
        "DELETE FROM read_markers WHERE uid = ?1",
        "DELETE FROM scheduled_messages WHERE owner_uid = ?1",
    ] {
        exec(t, sql, [me])?;
    }

    let rows = all(
        t,
        "SELECT id, active FROM sessions WHERE uid = ?1 ORDER BY id",
        [me],
        |r| Ok((SessionId(r.int("id")?), r.flag("active")?)),
    )?;
    for (id, _) in &rows {
        exec(t, "DELETE FROM queue WHERE session_id = ?1", [id.0])?;
        exec(t, "DELETE FROM queue_seq WHERE session_id = ?1", [id.0])?;
    }
    exec(t, "DELETE FROM sessions WHERE uid = ?1", [me])?;

    let mut contacts = all(
        t,
        &format!("SELECT {CONTACT_COLS} FROM contacts WHERE user_lo = ?1 OR user_hi = ?1"),
        [me],
        |r| dec::contact(r),
    )?;
    contacts.sort_by_key(|c| {
        let other = if c.requester == user {
            c.target
        } else {
            c.requester
        };
        (c.state != ContactState::Accepted, other)
    });
    exec(t, "DELETE FROM contacts WHERE user_lo = ?1", [me])?;
    exec(t, "DELETE FROM contacts WHERE user_hi = ?1", [me])?;

    let memberships = all(
        t,
        "SELECT m.chat_id AS chat_id, m.role AS role, c.kind AS kind FROM chat_members m \
         JOIN chats c ON c.id = m.chat_id WHERE m.uid = ?1 ORDER BY m.chat_id",
        [me],
        |r| {
            let kind = r
                .text("kind")?
                .parse::<ChatKind>()
                .map_err(|()| corrupt("chat kind"))?;
            Ok((r.int("chat_id")?, dec::role(r, "role")?, kind))
        },
    )?;
    exec(t, "DELETE FROM chat_members WHERE uid = ?1", [me])?;
    let mut chats = Vec::with_capacity(memberships.len());
    for (chat, role, kind) in memberships {
        let heir = one(t, HEIR, [chat], |r| r.uid("uid"))?;
        let mut done = ErasedMembership {
            chat_id: chat,
            kind,
            role,
            new_owner: None,
            deleted: false,
        };
        match heir {
            None => {
                exec(t, "DELETE FROM invites WHERE chat_id = ?1", [chat])?;
                exec(t, "DELETE FROM chats WHERE id = ?1", [chat])?;
                done.deleted = true;
            }
            Some(heir) if role == ChatRole::Owner => {
                exec(
                    t,
                    "UPDATE chat_members SET role = 'owner' WHERE chat_id = ?1 AND uid = ?2",
                    params![chat, uid(heir)],
                )?;
                exec(
                    t,
                    "UPDATE chats SET owner = ?2 WHERE id = ?1",
                    params![chat, uid(heir)],
                )?;
                done.new_owner = Some(heir);
            }
            Some(_) => {}
        }
        chats.push(done);
    }
    exec(t, "DELETE FROM invites WHERE created_by = ?1", [me])?;
    exec(t, "DELETE FROM users WHERE uid = ?1", [me])?;
    Ok(Some(ErasedAccount {
        active_sessions: rows.iter().filter(|(_, a)| *a).map(|(id, _)| *id).collect(),
        sessions: rows.iter().map(|(id, _)| *id).collect(),
        contacts,
        chats,
    }))
}

#[async_trait]
impl EraseStore for SqliteStore {
    async fn erase_user(&self, user: UserId) -> StoreResult<Option<ErasedAccount>> {
        let erased = self
            .db
            .write(move |t| {
                let on = |mode: &str| {
                    t.execute_batch(&format!("PRAGMA secure_delete = {mode}"))
                        .map_err(super::db::be)
                };
                on("ON")?;
                let out = erase(t, user);
                // The writer's own mode again, whatever happened (a failure rolls back).
                let restored = on("FAST");
                let out = out?;
                restored?;
                Ok(out)
            })
            .await?;
        if erased.is_some() {
            self.truncate_wal().await;
        }
        Ok(erased)
    }

    async fn relationships_of(&self, user: UserId, limit: u64) -> StoreResult<(Vec<Contact>, u64)> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .read(move |c| {
                let me = uid(user);
                let total = one(c, RELATIONSHIP_COUNT, [me], |r| r.int("n"))?.unwrap_or(0);
                let page = all(c, RELATIONSHIPS, params![me, limit], |r| dec::contact(r))?;
                Ok((page, u64::try_from(total).unwrap_or(0)))
            })
            .await
    }

    async fn sessions_ever(&self, user: UserId, limit: u64) -> StoreResult<(Vec<Session>, u64)> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .read(move |c| {
                let total = one(
                    c,
                    "SELECT COUNT(*) AS n FROM sessions WHERE uid = ?1",
                    [uid(user)],
                    |r| r.int("n"),
                )?
                .unwrap_or(0);
                let page = all(
                    c,
                    &format!(
                        "SELECT {SESSION_COLS} FROM sessions WHERE uid = ?1 \
                         ORDER BY id DESC LIMIT ?2"
                    ),
                    params![uid(user), limit],
                    |r| dec::session(r),
                )?;
                Ok((page, u64::try_from(total).unwrap_or(0)))
            })
            .await
    }

    async fn queued_entries(&self, sessions: &[SessionId]) -> StoreResult<u64> {
        let distinct: std::collections::BTreeSet<i64> = sessions.iter().map(|s| s.0).collect();
        self.db
            .read(move |c| {
                let mut n = 0i64;
                for id in distinct {
                    n += one(
                        c,
                        "SELECT COUNT(*) AS n FROM queue WHERE session_id = ?1",
                        [id],
                        |r| r.int("n"),
                    )?
                    .unwrap_or(0);
                }
                u64::try_from(n).map_err(|_| StoreError::Backend("negative count".into()))
            })
            .await
    }
}

impl SqliteStore {
    /// Copies every WAL frame into the database file and truncates the WAL to zero bytes (after
    /// an erase: the WAL still holds earlier images of the pages it zeroed). Waits for readers
    /// like any checkpoint; a checkpoint that cannot finish is logged, and the frames are then
    /// overwritten as the WAL is reused.
    async fn truncate_wal(&self) {
        let done = self
            .db
            .read(|c| {
                c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(super::db::be)
            })
            .await;
        match done {
            Ok(0) => {}
            Ok(_) => tracing::warn!("WAL not truncated after an account erase: readers were busy"),
            Err(e) => tracing::warn!(error = %e, "WAL not truncated after an account erase"),
        }
    }
}
