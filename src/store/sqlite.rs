use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};

use super::{Contact, ContactState, SessionStore, StoreError, StoreHealth, StoreResult, UserStore};
use crate::model::{
    DeviceId, DeviceType, ProfileChange, Session, SessionId, SessionUpsert, Timestamp, UserId,
    UserRecord,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The embedded SQLite store (feature `sqlite`): WAL journal, `synchronous = NORMAL`, embedded
/// migrations applied by [`SqliteStore::open`].
///
/// Reads use a pool of connections; every write goes through a single writer connection, so
/// writers wait in an async queue instead of spinning on SQLite's busy handler (SQLite admits one
/// writer at a time anyway).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
    /// Group commit of the hot writes (see `sqlite_writer.rs`); shares `writer`.
    hot: crate::store::hot_writer::Writer,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and applies migrations.
    pub async fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::new()
            .filename(path.as_ref())
            .create_if_missing(true);
        Self::with_options(opts, 8).await
    }

    /// Opens a database URL such as `sqlite://melo.db` or `sqlite::memory:`.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::backend)?
            .create_if_missing(true);
        // An in-memory database exists per connection: use exactly one.
        let max = if url.contains(":memory:") { 1 } else { 8 };
        Self::with_options(opts, max).await
    }

    async fn with_options(opts: SqliteConnectOptions, max: u32) -> StoreResult<Self> {
        let opts = opts
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // Statement journals (multi-row statements inside the writer's transactions) stay
            // in memory instead of temporary files.
            .pragma("temp_store", "memory")
            .busy_timeout(Duration::from_secs(5));
        let pool_of = |n: u32| {
            SqlitePoolOptions::new()
                .max_connections(n)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(Duration::from_secs(10))
                // A local file connection does not go stale; the default ping before every
                // acquire was one more hand-off to the connection's worker thread per query.
                .test_before_acquire(false)
        };
        let writer = pool_of(1)
            .connect_with(opts.clone())
            .await
            .map_err(StoreError::backend)?;
        MIGRATOR.run(&writer).await.map_err(StoreError::backend)?;
        // An in-memory database exists per connection: readers must share the writer's.
        let pool = if max <= 1 {
            writer.clone()
        } else {
            pool_of(max)
                .connect_with(opts)
                .await
                .map_err(StoreError::backend)?
        };
        let hot = writer::spawn(writer.clone());
        Ok(Self { pool, writer, hot })
    }

    /// The underlying pool (for embedders sharing the database).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

fn be(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            StoreError::Unavailable(e.to_string())
        }
        // SQLITE_BUSY (5) / SQLITE_LOCKED (6) and their extended codes: contention, not a bug.
        sqlx::Error::Database(ref d)
            if d.code()
                .and_then(|c| c.parse::<i32>().ok())
                .is_some_and(|c| matches!(c & 0xff, 5 | 6)) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        other => StoreError::backend(other),
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

fn uid_of(row: &SqliteRow, col: &str) -> StoreResult<UserId> {
    let n: i64 = row.try_get(col).map_err(be)?;
    u32::try_from(n)
        .ok()
        .and_then(UserId::new)
        .ok_or_else(|| StoreError::Backend(format!("corrupt uid in column {col}").into()))
}

fn user_from_row(row: &SqliteRow) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        id: uid_of(row, "uid")?,
        phone_index: row.try_get("phone_index").map_err(be)?,
        phone: row.try_get("phone").map_err(be)?,
        name: row.try_get("name").map_err(be)?,
        nickname: row.try_get("nickname").map_err(be)?,
        username: row.try_get("username").map_err(be)?,
        bio: row.try_get("bio").map_err(be)?,
        public_key: row.try_get("public_key").map_err(be)?,
        password_hash: row.try_get("password_hash").map_err(be)?,
        created_at: Timestamp::from_millis(row.try_get("created_at").map_err(be)?),
    })
}

fn session_from_row(row: &SqliteRow) -> StoreResult<Session> {
    let device: String = row.try_get("device_id").map_err(be)?;
    let device_type: String = row.try_get("device_type").map_err(be)?;
    let expires: Option<i64> = row.try_get("device_token_expires").map_err(be)?;
    let active: i64 = row.try_get("active").map_err(be)?;
    Ok(Session {
        id: SessionId(row.try_get("id").map_err(be)?),
        user: uid_of(row, "uid")?,
        device_id: DeviceId::parse(&device)
            .ok_or_else(|| StoreError::Backend("corrupt device_id".into()))?,
        device_type: DeviceType::parse(&device_type),
        device_name: row.try_get("device_name").map_err(be)?,
        ip: row.try_get("ip").map_err(be)?,
        created_at: Timestamp::from_millis(row.try_get("created_at").map_err(be)?),
        last_activity: row.try_get("last_activity").map_err(be)?,
        device_token_hash: row.try_get("device_token_hash").map_err(be)?,
        device_token_expires: expires.map(Timestamp::from_millis),
        active: active != 0,
    })
}

fn contact_from_row(row: &SqliteRow) -> StoreResult<Contact> {
    let lo = uid_of(row, "user_lo")?;
    let hi = uid_of(row, "user_hi")?;
    let requester = uid_of(row, "requester")?;
    let accepted: i64 = row.try_get("accepted").map_err(be)?;
    let secret: i64 = row.try_get("secret").map_err(be)?;
    Ok(Contact {
        requester,
        target: if requester == lo { hi } else { lo },
        state: if accepted != 0 {
            ContactState::Accepted
        } else {
            ContactState::Pending
        },
        secret: secret != 0,
        requested_at: Timestamp::from_millis(row.try_get("requested_at").map_err(be)?),
    })
}

fn pair(a: UserId, b: UserId) -> (i64, i64) {
    let (a, b) = (i64::from(a.get()), i64::from(b.get()));
    (a.min(b), a.max(b))
}

const USER_COLS: &str =
    "uid, phone_index, phone, name, nickname, username, bio, public_key, password_hash, created_at";
const SESSION_COLS: &str = "id, uid, device_id, device_type, device_name, ip, created_at, \
     last_activity, device_token_hash, device_token_expires, active";

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, u: &UserRecord) -> StoreResult<()> {
        let res = sqlx::query(
            "INSERT INTO users (uid, phone_index, phone, name, nickname, username, bio, public_key, \
             password_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(i64::from(u.id.get()))
        .bind(&u.phone_index)
        .bind(&u.phone)
        .bind(&u.name)
        .bind(&u.nickname)
        .bind(&u.username)
        .bind(&u.bio)
        .bind(&u.public_key)
        .bind(&u.password_hash)
        .bind(u.created_at.millis())
        .execute(&self.writer)
        .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => {
                let msg = e.to_string();
                Err(StoreError::Conflict(if msg.contains("phone_index") {
                    "phone"
                } else {
                    "uid"
                }))
            }
            Err(e) => Err(be(e)),
        }
    }

    async fn user(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE uid = ?"))
            .bind(i64::from(id.get()))
            .fetch_optional(&self.pool)
            .await
            .map_err(be)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn users(&self, ids: &[UserId]) -> StoreResult<Vec<UserRecord>> {
        let mut out = Vec::with_capacity(ids.len());
        // Bounded IN lists keep statements small and cacheable by shape.
        for chunk in ids.chunks(100) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!("SELECT {USER_COLS} FROM users WHERE uid IN ({marks})");
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(i64::from(id.get()));
            }
            for row in q.fetch_all(&self.pool).await.map_err(be)? {
                out.push(user_from_row(&row)?);
            }
        }
        Ok(out)
    }

    async fn user_by_phone_index(&self, index: &[u8]) -> StoreResult<Option<UserRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM users WHERE phone_index = ?"
        ))
        .bind(index)
        .fetch_optional(&self.pool)
        .await
        .map_err(be)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn update_user(&self, id: UserId, c: &ProfileChange) -> StoreResult<bool> {
        // Each optional column: a flag saying "set it" and the value.
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
        .bind(i64::from(id.get()))
        .execute(&self.writer)
        .await
        .map_err(be)?;
        Ok(res.rows_affected() == 1)
    }

    async fn put_secret_key(&self, id: UserId, sealed: &[u8], at: Timestamp) -> StoreResult<()> {
        let res = sqlx::query(
            "INSERT INTO secret_keys (uid, ciphertext, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT(uid) DO UPDATE SET ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
        )
        .bind(i64::from(id.get()))
        .bind(sealed)
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

    async fn secret_key(&self, id: UserId) -> StoreResult<Option<(Vec<u8>, Timestamp)>> {
        let row = sqlx::query("SELECT ciphertext, updated_at FROM secret_keys WHERE uid = ?")
            .bind(i64::from(id.get()))
            .fetch_optional(&self.pool)
            .await
            .map_err(be)?;
        row.map(|r| {
            Ok((
                r.try_get("ciphertext").map_err(be)?,
                Timestamp::from_millis(r.try_get("updated_at").map_err(be)?),
            ))
        })
        .transpose()
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn upsert_session(&self, s: &SessionUpsert) -> StoreResult<Session> {
        // Two attempts: a concurrent login of the same device may win the insert race, and the
        // retry then takes the update path.
        for _ in 0..2 {
            let mut tx = self.writer.begin().await.map_err(be)?;
            let updated = sqlx::query(&format!(
                "UPDATE sessions SET device_type = ?, device_name = ?, ip = ?, last_activity = ?, \
                 device_token_hash = ?, device_token_expires = ? \
                 WHERE uid = ? AND device_id = ? AND active = 1 RETURNING {SESSION_COLS}"
            ))
            .bind(s.device_type.as_str())
            .bind(&s.device_name)
            .bind(&s.ip)
            .bind(&s.last_activity)
            .bind(&s.device_token_hash)
            .bind(s.device_token_expires.millis())
            .bind(i64::from(s.user.get()))
            .bind(s.device_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(be)?;
            if let Some(row) = updated {
                tx.commit().await.map_err(be)?;
                return session_from_row(&row);
            }
            let inserted = sqlx::query(&format!(
                "INSERT INTO sessions (uid, device_id, device_type, device_name, ip, created_at, \
                 last_activity, device_token_hash, device_token_expires, active) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1) RETURNING {SESSION_COLS}"
            ))
            .bind(i64::from(s.user.get()))
            .bind(s.device_id.as_str())
            .bind(s.device_type.as_str())
            .bind(&s.device_name)
            .bind(&s.ip)
            .bind(s.now.millis())
            .bind(&s.last_activity)
            .bind(&s.device_token_hash)
            .bind(s.device_token_expires.millis())
            .fetch_one(&mut *tx)
            .await;
            match inserted {
                Ok(row) => {
                    tx.commit().await.map_err(be)?;
                    return session_from_row(&row);
                }
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(be(e)),
            }
        }
        Err(StoreError::Conflict("session"))
    }

    async fn session(&self, id: SessionId) -> StoreResult<Option<Session>> {
        let row = sqlx::query(&format!("SELECT {SESSION_COLS} FROM sessions WHERE id = ?"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(be)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn active_session(
        &self,
        user: UserId,
        device: &DeviceId,
    ) -> StoreResult<Option<Session>> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE uid = ? AND device_id = ? AND active = 1"
        ))
        .bind(i64::from(user.get()))
        .bind(device.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(be)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn sessions_of(&self, user: UserId) -> StoreResult<Vec<Session>> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE uid = ? AND active = 1 ORDER BY id"
        ))
        .bind(i64::from(user.get()))
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        rows.iter().map(session_from_row).collect()
    }

    async fn set_device_token(
        &self,
        id: SessionId,
        token: Option<(&[u8], Timestamp)>,
    ) -> StoreResult<bool> {
        let res = sqlx::query(
            "UPDATE sessions SET device_token_hash = ?, device_token_expires = ? WHERE id = ? AND active = 1",
        )
        .bind(token.map(|(h, _)| h))
        .bind(token.map(|(_, e)| e.millis()))
        .bind(id.0)
        .execute(&self.writer)
        .await
        .map_err(be)?;
        Ok(res.rows_affected() == 1)
    }

    async fn touch_session(&self, id: SessionId, sealed_last_activity: &[u8]) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET last_activity = ? WHERE id = ?")
            .bind(sealed_last_activity)
            .bind(id.0)
            .execute(&self.writer)
            .await
            .map_err(be)?;
        Ok(())
    }

    async fn revoke_session(&self, user: UserId, id: SessionId) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await.map_err(be)?;
        let res = sqlx::query(
            "UPDATE sessions SET active = 0, device_token_hash = NULL, device_token_expires = NULL \
             WHERE id = ? AND uid = ? AND active = 1",
        )
        .bind(id.0)
        .bind(i64::from(user.get()))
        .execute(&mut *tx)
        .await
        .map_err(be)?;
        if res.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM push_registrations WHERE session_id = ?")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(be)?;
        tx.commit().await.map_err(be)?;
        Ok(true)
    }

    async fn revoke_sessions_except(
        &self,
        user: UserId,
        keep: Option<SessionId>,
    ) -> StoreResult<Vec<SessionId>> {
        let mut tx = self.writer.begin().await.map_err(be)?;
        let rows = sqlx::query(
            "UPDATE sessions SET active = 0, device_token_hash = NULL, device_token_expires = NULL \
             WHERE uid = ? AND active = 1 AND id != ? RETURNING id",
        )
        .bind(i64::from(user.get()))
        .bind(keep.map_or(0, |k| k.0))
        .fetch_all(&mut *tx)
        .await
        .map_err(be)?;
        // Every other session of `user` is now inactive: none of their registrations may stay.
        sqlx::query("DELETE FROM push_registrations WHERE uid = ? AND session_id != ?")
            .bind(i64::from(user.get()))
            .bind(keep.map_or(0, |k| k.0))
            .execute(&mut *tx)
            .await
            .map_err(be)?;
        tx.commit().await.map_err(be)?;
        let mut ids = rows
            .iter()
            .map(|r| r.try_get::<i64, _>("id").map(SessionId).map_err(be))
            .collect::<StoreResult<Vec<_>>>()?;
        ids.sort();
        Ok(ids)
    }
}

#[async_trait]
impl StoreHealth for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(be)?;
        Ok(())
    }
}

super::sealed::sql_sealed_store!(SqliteStore, writer, be);

#[path = "sqlite_avatars.rs"]
mod avatars;
#[path = "sqlite_chats.rs"]
mod chats;
#[path = "sqlite_contacts.rs"]
mod contacts;
#[path = "sqlite_manage.rs"]
mod manage;
#[path = "sqlite_messages.rs"]
mod messages;
#[path = "sqlite_push.rs"]
mod push;
#[path = "sqlite_writer.rs"]
mod writer;

#[cfg(test)]
mod tests {
    crate::store::conformance::store_conformance!(sqlite_memory, async {
        std::sync::Arc::new(
            crate::SqliteStore::connect("sqlite::memory:")
                .await
                .expect("sqlite"),
        )
    });

    crate::store::conformance::store_conformance!(sqlite_file, async {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::SqliteStore::open(dir.path().join("melo.db"))
            .await
            .expect("sqlite");
        // Keep the directory for the life of the test process; the OS cleans /tmp.
        std::mem::forget(dir);
        std::sync::Arc::new(store)
    });
}
