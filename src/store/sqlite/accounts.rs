//! Users, contacts, push registrations and avatars of [`SqliteStore`] (sessions:
//! `sessions.rs`).
//!
//! Each write is one closure on the writer thread, in its own transaction; reads run on the
//! reader threads. Values arrive sealed: the store only moves bytes.

use async_trait::async_trait;
use rusqlite::params;

use super::db::{be, fk_violation, unique_violation};
use super::rows::{all, exec, one};
use super::SqliteStore;
use crate::model::{ProfileChange, SessionId, Timestamp, UserId, UserRecord};
use crate::store::sql::rows::{self as dec, pair, uid, Cells, CONTACT_COLS, USER_COLS};
use crate::store::{
    AvatarStore, Contact, ContactStore, PushStore, StoreError, StoreResult, StoredAvatar, UserStore,
};

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, u: &UserRecord) -> StoreResult<()> {
        let u = u.clone();
        self.db
            .write(move |t| {
                // A retired uid (an erased account's) is taken for good.
                let res = t.execute(
                    &format!(
                        "INSERT INTO users ({USER_COLS}) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
                         ?9, ?10 WHERE NOT EXISTS (SELECT 1 FROM retired_uids WHERE uid = ?1)"
                    ),
                    params![
                        uid(u.id),
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
                );
                match res {
                    Ok(0) => Err(StoreError::Conflict("uid")),
                    Ok(_) => Ok(()),
                    Err(e) => match unique_violation(&e) {
                        Some(what) if what.contains("phone_index") => {
                            Err(StoreError::Conflict("phone"))
                        }
                        Some(_) => Err(StoreError::Conflict("uid")),
                        None => Err(be(e)),
                    },
                }
            })
            .await
    }

    async fn user(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        self.db
            .read(move |c| {
                one(
                    c,
                    &format!("SELECT {USER_COLS} FROM users WHERE uid = ?1"),
                    [uid(id)],
                    |r| dec::user(r),
                )
            })
            .await
    }

    async fn users(&self, ids: &[UserId]) -> StoreResult<Vec<UserRecord>> {
        let ids: Vec<i64> = ids.iter().map(|u| uid(*u)).collect();
        self.db
            .read(move |c| {
                let sql = format!("SELECT {USER_COLS} FROM users WHERE uid = ?1");
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    out.extend(one(c, &sql, [id], |r| dec::user(r))?);
                }
                Ok(out)
            })
            .await
    }

    async fn user_by_phone_index(&self, index: &[u8]) -> StoreResult<Option<UserRecord>> {
        let index = index.to_vec();
        self.db
            .read(move |c| {
                one(
                    c,
                    &format!("SELECT {USER_COLS} FROM users WHERE phone_index = ?1"),
                    [index],
                    |r| dec::user(r),
                )
            })
            .await
    }

    async fn update_user(&self, id: UserId, c: &ProfileChange) -> StoreResult<bool> {
        let c = c.clone();
        self.db
            .write(move |t| {
                // Each optional column: a flag saying "set it" and the value.
                let n = exec(
                    t,
                    "UPDATE users SET \
                       name = CASE WHEN ?1 THEN ?2 ELSE name END, \
                       nickname = CASE WHEN ?3 THEN ?4 ELSE nickname END, \
                       username = CASE WHEN ?5 THEN ?6 ELSE username END, \
                       bio = CASE WHEN ?7 THEN ?8 ELSE bio END, \
                       public_key = CASE WHEN ?9 THEN ?10 ELSE public_key END, \
                       password_hash = CASE WHEN ?11 THEN ?12 ELSE password_hash END \
                     WHERE uid = ?13",
                    params![
                        c.name.is_some(),
                        c.name,
                        c.nickname.is_some(),
                        c.nickname,
                        c.username.is_some(),
                        c.username.clone().flatten(),
                        c.bio.is_some(),
                        c.bio.clone().flatten(),
                        c.public_key.is_some(),
                        c.public_key,
                        c.password_hash.is_some(),
                        c.password_hash,
                        uid(id)
                    ],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn put_secret_key(&self, id: UserId, sealed: &[u8], at: Timestamp) -> StoreResult<()> {
        let sealed = sealed.to_vec();
        self.db
            .write(move |t| {
                let res = t.execute(
                    "INSERT INTO secret_keys (uid, ciphertext, updated_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT(uid) DO UPDATE SET ciphertext = excluded.ciphertext, \
                       updated_at = excluded.updated_at",
                    params![uid(id), sealed, at.millis()],
                );
                match res {
                    Ok(_) => Ok(()),
                    Err(e) if fk_violation(&e) => Err(StoreError::NotFound),
                    Err(e) => Err(be(e)),
                }
            })
            .await
    }

    async fn secret_key(&self, id: UserId) -> StoreResult<Option<(Vec<u8>, Timestamp)>> {
        self.db
            .read(move |c| {
                one(
                    c,
                    "SELECT ciphertext, updated_at FROM secret_keys WHERE uid = ?1",
                    [uid(id)],
                    |r| Ok((r.bytes("ciphertext")?, r.time("updated_at")?)),
                )
            })
            .await
    }

    async fn put_settings(&self, id: UserId, sealed: &[u8]) -> StoreResult<()> {
        let sealed = sealed.to_vec();
        self.db
            .write(move |t| {
                let res = t.execute(
                    "INSERT INTO user_settings (uid, settings) VALUES (?1, ?2) \
                     ON CONFLICT(uid) DO UPDATE SET settings = excluded.settings",
                    params![uid(id), sealed],
                );
                match res {
                    Ok(_) => Ok(()),
                    Err(e) if fk_violation(&e) => Err(StoreError::NotFound),
                    Err(e) => Err(be(e)),
                }
            })
            .await
    }

    async fn settings(&self, ids: &[UserId]) -> StoreResult<Vec<(UserId, Vec<u8>)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = ids.iter().map(|u| uid(*u)).collect();
        self.db
            .read(move |c| {
                let sql = "SELECT uid, settings FROM user_settings WHERE uid = ?1";
                let mut out = Vec::new();
                for id in ids {
                    out.extend(one(c, sql, [id], |r| {
                        Ok((r.uid("uid")?, r.bytes("settings")?))
                    })?);
                }
                Ok(out)
            })
            .await
    }
}

#[async_trait]
impl ContactStore for SqliteStore {
    async fn relationship(&self, a: UserId, b: UserId) -> StoreResult<Option<Contact>> {
        let (lo, hi) = pair(a, b);
        self.db
            .read(move |c| {
                one(
                    c,
                    &format!(
                        "SELECT {CONTACT_COLS} FROM contacts WHERE user_lo = ?1 AND user_hi = ?2"
                    ),
                    [lo, hi],
                    |r| dec::contact(r),
                )
            })
            .await
    }

    async fn request_contact(
        &self,
        from: UserId,
        to: UserId,
        secret: bool,
        at: Timestamp,
    ) -> StoreResult<()> {
        let (lo, hi) = pair(from, to);
        self.db
            .write(move |t| {
                let res = t.execute(
                    "INSERT INTO contacts (user_lo, user_hi, requester, accepted, secret, \
                     requested_at) VALUES (?1, ?2, ?3, 0, ?4, ?5)",
                    params![lo, hi, uid(from), secret, at.millis()],
                );
                match res {
                    Ok(_) => Ok(()),
                    Err(e) if unique_violation(&e).is_some() => {
                        Err(StoreError::Conflict("contact"))
                    }
                    Err(e) => Err(be(e)),
                }
            })
            .await
    }

    async fn accept_contact(&self, requester: UserId, target: UserId) -> StoreResult<bool> {
        let (lo, hi) = pair(requester, target);
        self.db
            .write(move |t| {
                let n = exec(
                    t,
                    "UPDATE contacts SET accepted = 1 WHERE user_lo = ?1 AND user_hi = ?2 \
                     AND requester = ?3 AND accepted = 0",
                    [lo, hi, uid(requester)],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn remove_contact(&self, a: UserId, b: UserId) -> StoreResult<Option<Contact>> {
        let (lo, hi) = pair(a, b);
        self.db
            .write(move |t| {
                one(
                    t,
                    &format!(
                        "DELETE FROM contacts WHERE user_lo = ?1 AND user_hi = ?2 \
                         RETURNING {CONTACT_COLS}"
                    ),
                    [lo, hi],
                    |r| dec::contact(r),
                )
            })
            .await
    }

    async fn contacts_of(
        &self,
        user: UserId,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(Vec<UserId>, u64)> {
        let me = uid(user);
        let (offset, limit) = (dec::clamp(offset), dec::clamp(limit));
        self.db
            .read(move |c| {
                let total = one(
                    c,
                    "SELECT (SELECT COUNT(*) FROM contacts WHERE user_lo = ?1 AND accepted = 1) + \
                            (SELECT COUNT(*) FROM contacts WHERE user_hi = ?1 AND accepted = 1) \
                     AS n",
                    [me],
                    |r| r.int("n"),
                )?
                .unwrap_or(0);
                let ids = all(
                    c,
                    "SELECT other FROM (\
                       SELECT user_hi AS other FROM contacts WHERE user_lo = ?1 AND accepted = 1 \
                       UNION ALL \
                       SELECT user_lo AS other FROM contacts WHERE user_hi = ?1 AND accepted = 1) \
                     ORDER BY other LIMIT ?2 OFFSET ?3",
                    [me, limit, offset],
                    |r| r.uid("other"),
                )?;
                Ok((ids, total.max(0) as u64))
            })
            .await
    }

    async fn pending_of(&self, user: UserId) -> StoreResult<Vec<Contact>> {
        self.db
            .read(move |c| {
                all(
                    c,
                    &format!(
                        "SELECT {CONTACT_COLS} FROM contacts WHERE (user_lo = ?1 OR user_hi = ?1) \
                         AND accepted = 0 ORDER BY requested_at"
                    ),
                    [uid(user)],
                    |r| dec::contact(r),
                )
            })
            .await
    }
}

#[async_trait]
impl PushStore for SqliteStore {
    async fn set_push(&self, user: UserId, session: SessionId, sealed: &[u8]) -> StoreResult<bool> {
        let sealed = sealed.to_vec();
        self.db
            .write(move |t| {
                // The SELECT yields the row only for an active session of `user`. (Its WHERE
                // clause also keeps SQLite from reading `ON CONFLICT` as part of the SELECT.)
                let n = exec(
                    t,
                    "INSERT INTO push_registrations (session_id, uid, sealed, updated_at) \
                     SELECT id, uid, ?1, ?2 FROM sessions WHERE id = ?3 AND uid = ?4 AND active = 1 \
                     ON CONFLICT(session_id) DO UPDATE SET \
                       sealed = excluded.sealed, updated_at = excluded.updated_at",
                    params![sealed, Timestamp::now().millis(), session.0, uid(user)],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn push_registrations(&self, user: UserId) -> StoreResult<Vec<(SessionId, Vec<u8>)>> {
        self.db
            .read(move |c| {
                all(
                    c,
                    "SELECT p.session_id AS session_id, p.sealed AS sealed \
                     FROM push_registrations p JOIN sessions s ON s.id = p.session_id \
                     WHERE p.uid = ?1 AND s.uid = p.uid AND s.active = 1 ORDER BY p.session_id",
                    [uid(user)],
                    |r| Ok((SessionId(r.int("session_id")?), r.bytes("sealed")?)),
                )
            })
            .await
    }

    async fn delete_push(&self, session: SessionId, sealed: &[u8]) -> StoreResult<bool> {
        let sealed = sealed.to_vec();
        self.db
            .write(move |t| {
                let n = exec(
                    t,
                    "DELETE FROM push_registrations WHERE session_id = ?1 AND sealed = ?2",
                    params![session.0, sealed],
                )?;
                Ok(n == 1)
            })
            .await
    }
}

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
        let (mime, sealed, etag) = (mime.to_owned(), sealed.to_vec(), etag.to_owned());
        self.db
            .write(move |t| {
                let res = t.execute(
                    "INSERT INTO avatars (uid, mime, sealed, etag, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT(uid) DO UPDATE SET mime = excluded.mime, \
                       sealed = excluded.sealed, etag = excluded.etag, \
                       updated_at = excluded.updated_at",
                    params![uid(user), mime, sealed, etag, at.millis()],
                );
                match res {
                    Ok(_) => Ok(()),
                    Err(e) if fk_violation(&e) => Err(StoreError::NotFound),
                    Err(e) => Err(be(e)),
                }
            })
            .await
    }

    async fn avatar(&self, user: UserId) -> StoreResult<Option<StoredAvatar>> {
        self.db
            .read(move |c| {
                one(
                    c,
                    "SELECT mime, sealed, etag, updated_at FROM avatars WHERE uid = ?1",
                    [uid(user)],
                    |r| dec::avatar(r),
                )
            })
            .await
    }

    async fn delete_avatar(&self, user: UserId) -> StoreResult<bool> {
        self.db
            .write(move |t| Ok(exec(t, "DELETE FROM avatars WHERE uid = ?1", [uid(user)])? == 1))
            .await
    }
}
