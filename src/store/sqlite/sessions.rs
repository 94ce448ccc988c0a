//! Sessions and device tokens of [`SqliteStore`]: one write closure on the writer thread per
//! call, reads on the reader threads. Values arrive sealed: the store only moves bytes.

use async_trait::async_trait;
use rusqlite::{params, Transaction};

use super::rows::{all, exec, one};
use super::SqliteStore;
use crate::model::{DeviceId, Session, SessionId, SessionUpsert, Timestamp, UserId};
use crate::store::sql::rows::{self as dec, uid, Cells, SESSION_COLS};
use crate::store::{SessionStore, StoreError, StoreResult};

#[async_trait]
impl SessionStore for SqliteStore {
    async fn upsert_session(&self, s: &SessionUpsert) -> StoreResult<Session> {
        let s = s.clone();
        self.db
            .write(move |t| {
                let updated = one(
                    t,
                    &format!(
                        "UPDATE sessions SET device_type = ?1, device_name = ?2, ip = ?3, \
                         last_activity = ?4, device_token_hash = ?5, device_token_expires = ?6 \
                         WHERE uid = ?7 AND device_id = ?8 AND active = 1 RETURNING {SESSION_COLS}"
                    ),
                    params![
                        s.device_type.as_str(),
                        s.device_name,
                        s.ip,
                        s.last_activity,
                        s.device_token_hash,
                        s.device_token_expires.millis(),
                        uid(s.user),
                        s.device_id.as_str()
                    ],
                    |r| dec::session(r),
                )?;
                if let Some(session) = updated {
                    return Ok(session);
                }
                // The writer thread is the only writer: no concurrent login can slip in between.
                one(
                    t,
                    &format!(
                        "INSERT INTO sessions (uid, device_id, device_type, device_name, ip, \
                         created_at, last_activity, device_token_hash, device_token_expires, \
                         active) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1) \
                         RETURNING {SESSION_COLS}"
                    ),
                    params![
                        uid(s.user),
                        s.device_id.as_str(),
                        s.device_type.as_str(),
                        s.device_name,
                        s.ip,
                        s.now.millis(),
                        s.last_activity,
                        s.device_token_hash,
                        s.device_token_expires.millis()
                    ],
                    |r| dec::session(r),
                )?
                .ok_or(StoreError::Conflict("session"))
            })
            .await
    }

    async fn session(&self, id: SessionId) -> StoreResult<Option<Session>> {
        self.db
            .read(move |c| {
                one(
                    c,
                    &format!("SELECT {SESSION_COLS} FROM sessions WHERE id = ?1"),
                    [id.0],
                    |r| dec::session(r),
                )
            })
            .await
    }

    async fn active_session(
        &self,
        user: UserId,
        device: &DeviceId,
    ) -> StoreResult<Option<Session>> {
        let device = device.as_str().to_owned();
        self.db
            .read(move |c| {
                one(
                    c,
                    &format!(
                        "SELECT {SESSION_COLS} FROM sessions WHERE uid = ?1 AND device_id = ?2 \
                         AND active = 1"
                    ),
                    params![uid(user), device],
                    |r| dec::session(r),
                )
            })
            .await
    }

    async fn sessions_of(&self, user: UserId) -> StoreResult<Vec<Session>> {
        self.db
            .read(move |c| {
                all(
                    c,
                    &format!(
                        "SELECT {SESSION_COLS} FROM sessions WHERE uid = ?1 AND active = 1 \
                         ORDER BY id"
                    ),
                    [uid(user)],
                    |r| dec::session(r),
                )
            })
            .await
    }

    async fn set_device_token(
        &self,
        id: SessionId,
        token: Option<(&[u8], Timestamp)>,
    ) -> StoreResult<bool> {
        let (hash, expires) = (
            token.map(|(h, _)| h.to_vec()),
            token.map(|(_, e)| e.millis()),
        );
        self.db
            .write(move |t| {
                let n = exec(
                    t,
                    "UPDATE sessions SET device_token_hash = ?1, device_token_expires = ?2 \
                     WHERE id = ?3 AND active = 1",
                    params![hash, expires, id.0],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn touch_session(&self, id: SessionId, sealed_last_activity: &[u8]) -> StoreResult<()> {
        let sealed = sealed_last_activity.to_vec();
        self.db
            .write(move |t| {
                exec(
                    t,
                    "UPDATE sessions SET last_activity = ?1 WHERE id = ?2",
                    params![sealed, id.0],
                )
                .map(drop)
            })
            .await
    }

    async fn revoke_session(&self, user: UserId, id: SessionId) -> StoreResult<bool> {
        self.db.write(move |t| revoke_one(t, user, id)).await
    }

    async fn revoke_sessions_except(
        &self,
        user: UserId,
        keep: Option<SessionId>,
    ) -> StoreResult<Vec<SessionId>> {
        self.db.write(move |t| revoke_all_but(t, user, keep)).await
    }
}

/// Revokes the active session `id` of `user` (device token and push registration deleted);
/// false when it is not theirs or not active. Inside the caller's write transaction.
pub(super) fn revoke_one(t: &Transaction<'_>, user: UserId, id: SessionId) -> StoreResult<bool> {
    let n = exec(
        t,
        "UPDATE sessions SET active = 0, device_token_hash = NULL, \
         device_token_expires = NULL WHERE id = ?1 AND uid = ?2 AND active = 1",
        [id.0, uid(user)],
    )?;
    if n != 1 {
        return Ok(false);
    }
    exec(
        t,
        "DELETE FROM push_registrations WHERE session_id = ?1",
        [id.0],
    )?;
    Ok(true)
}

/// Revokes every active session of `user` but `keep` (device tokens and push registrations
/// deleted); the revoked ids, ascending. Inside the caller's write transaction.
pub(super) fn revoke_all_but(
    t: &Transaction<'_>,
    user: UserId,
    keep: Option<SessionId>,
) -> StoreResult<Vec<SessionId>> {
    let keep = keep.map_or(0, |k| k.0);
    let mut ids = all(
        t,
        "UPDATE sessions SET active = 0, device_token_hash = NULL, \
         device_token_expires = NULL WHERE uid = ?1 AND active = 1 AND id != ?2 \
         RETURNING id",
        [uid(user), keep],
        |r| Ok(SessionId(r.int("id")?)),
    )?;
    // Every other session of `user` is now inactive: none of their registrations may stay.
    exec(
        t,
        "DELETE FROM push_registrations WHERE uid = ?1 AND session_id != ?2",
        [uid(user), keep],
    )?;
    ids.sort();
    Ok(ids)
}
