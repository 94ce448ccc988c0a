use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError, MySqlPoolOptions, MySqlRow};
use sqlx::{MySqlPool, Row};

use super::{Contact, ContactState, StoreError, StoreHealth, StoreResult, UserStore};
use crate::model::{ProfileChange, Timestamp, UserId, UserRecord};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/mysql");

/// Connections of the pool made by [`MysqlStore::connect`].
const POOL_SIZE: u32 = 16;

/// Runs of an operation that meets a deadlock or a lock wait timeout, before it fails.
pub(super) const ATTEMPTS: u32 = 5;

/// The MySQL / MariaDB store (feature `mysql`): InnoDB tables, embedded migrations applied by
/// [`MysqlStore::connect`] and [`MysqlStore::connect_with`].
///
/// Every operation is one statement or one transaction at the server's default isolation level,
/// `REPEATABLE READ`, which is assumed (under it, `set_push`'s `INSERT … SELECT` share-locks the
/// session row it copies): rows a transaction decides on are read with `SELECT … FOR UPDATE`,
/// and a transaction that meets a deadlock
/// (error 1213) or a lock wait timeout (1205) is run again from the start, a few times, before
/// the error surfaces as [`StoreError::Unavailable`].
///
/// The hot writes (`store_message`, `ack`, `mark_delivered`, `enqueue_events`) are
/// group-committed: a writer task, spawned on the current tokio runtime when the store is
/// opened, runs every pending one in a single transaction of a few multi-row statements on a
/// connection of its own (one more than the pool's), and answers after the COMMIT.
///
/// Targets MariaDB 10.11 and MySQL 8: no `RETURNING`, no partial indexes.
#[derive(Debug, Clone)]
pub struct MysqlStore {
    pool: MySqlPool,
    /// Group commit of the hot writes (see `mysql_writer.rs`), on a connection of its own.
    hot: crate::store::hot_writer::Writer,
    /// Test databases are dropped with their last store.
    #[cfg(test)]
    _test_db: Option<std::sync::Arc<tests::TestDb>>,
}

impl MysqlStore {
    /// Connects to a URL such as `mysql://user:pass@host:3306/melo` (`mariadb://` is accepted
    /// too) with a pool of 16 connections and applies migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let url = match url.strip_prefix("mariadb:") {
            Some(rest) => format!("mysql:{rest}"),
            None => url.to_owned(),
        };
        let opts = MySqlConnectOptions::from_str(&url).map_err(StoreError::backend)?;
        let pool = MySqlPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(opts);
        Self::with_pool(pool).await
    }

    /// Connects with explicit options and a pool of 16 connections, and applies migrations.
    pub async fn connect_with(opts: MySqlConnectOptions) -> StoreResult<Self> {
        let pool = MySqlPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(opts);
        Self::with_pool(pool).await
    }

    /// Uses an existing pool (for embedders sharing it) and applies migrations.
    pub async fn with_pool(pool: MySqlPool) -> StoreResult<Self> {
        MIGRATOR.run(&pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => be(e),
            other => StoreError::backend(other),
        })?;
        let hot = writer::spawn(pool.clone());
        Ok(Self {
            pool,
            hot,
            #[cfg(test)]
            _test_db: None,
        })
    }

    /// The underlying pool (for embedders sharing the database).
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Runs `op` (one statement or one whole transaction) and runs it again, after a short
    /// pause, when the server rolled it back for a deadlock or a lock wait timeout.
    pub(super) async fn retry<T, F, Fut>(&self, op: F) -> StoreResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = TxResult<T>>,
    {
        retry(op).await
    }
}

/// See [`MysqlStore::retry`].
pub(super) async fn retry<T, F, Fut>(mut op: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = TxResult<T>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match op().await {
            Ok(v) => return Ok(v),
            Err(TxError::Store(e)) => return Err(e),
            Err(TxError::Sql(e)) if attempt < ATTEMPTS && is_transient(&e) => {
                backoff(attempt).await;
            }
            Err(TxError::Sql(e)) => return Err(be(e)),
        }
    }
}

/// The pause before run `attempt + 1` of a transaction that met contention.
pub(super) async fn backoff(attempt: u32) {
    let jitter = rand::random::<u64>() % 10;
    tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt) + jitter)).await;
}

/// The failure of one run of an operation: a database error (maybe transient, see
/// [`MysqlStore::retry`]) or a final answer.
pub(super) enum TxError {
    Sql(sqlx::Error),
    Store(StoreError),
}

impl From<sqlx::Error> for TxError {
    fn from(e: sqlx::Error) -> Self {
        Self::Sql(e)
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Result of one run of an operation.
pub(super) type TxResult<T> = Result<T, TxError>;

/// The MySQL error number of a database error.
fn error_number(e: &sqlx::Error) -> Option<u16> {
    match e {
        sqlx::Error::Database(d) => d
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number),
        _ => None,
    }
}

/// Deadlock (1213) or lock wait timeout (1205): the transaction may simply be run again.
pub(super) fn is_transient(e: &sqlx::Error) -> bool {
    matches!(error_number(e), Some(1205 | 1213))
}

pub(super) fn be(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        // Contention that outlasted the retries, too many connections, server shutting down,
        // connection killed (MariaDB): the backend is there but not serving.
        ref d if matches!(error_number(d), Some(1205 | 1213 | 1040 | 1053 | 1927)) => {
            StoreError::Unavailable(e.to_string())
        }
        other => StoreError::backend(other),
    }
}

pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

pub(super) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_foreign_key_violation())
}

pub(super) fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("corrupt {what}").into())
}

/// A text column, read as bytes: `_bin` collations flag string columns binary, which sqlx's
/// `String` decoding refuses.
pub(super) fn text_of(row: &MySqlRow, col: &str) -> StoreResult<String> {
    let b: Vec<u8> = row.try_get(col).map_err(be)?;
    String::from_utf8(b).map_err(|_| corrupt(col))
}

/// A nullable text column (see [`text_of`]).
pub(super) fn opt_text_of(row: &MySqlRow, col: &str) -> StoreResult<Option<String>> {
    let b: Option<Vec<u8>> = row.try_get(col).map_err(be)?;
    b.map(|b| String::from_utf8(b).map_err(|_| corrupt(col)))
        .transpose()
}

pub(super) fn uid_of(row: &MySqlRow, col: &str) -> StoreResult<UserId> {
    let n: i64 = row.try_get(col).map_err(be)?;
    u32::try_from(n)
        .ok()
        .and_then(UserId::new)
        .ok_or_else(|| StoreError::Backend(format!("corrupt uid in column {col}").into()))
}

pub(super) fn uid(u: UserId) -> i64 {
    i64::from(u.get())
}

pub(super) fn pair(a: UserId, b: UserId) -> (i64, i64) {
    let (a, b) = (uid(a), uid(b));
    (a.min(b), a.max(b))
}

/// A count or offset as a SQL integer.
pub(super) fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `?, ?, …` with `n` placeholders.
pub(super) fn marks(n: usize) -> String {
    vec!["?"; n].join(",")
}

fn user_from_row(row: &MySqlRow) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        id: uid_of(row, "uid")?,
        phone_index: row.try_get("phone_index").map_err(be)?,
        phone: row.try_get("phone").map_err(be)?,
        name: row.try_get("name").map_err(be)?,
        nickname: row.try_get("nickname").map_err(be)?,
        username: row.try_get("username").map_err(be)?,
        bio: row.try_get("bio").map_err(be)?,
        public_key: row.try_get("public_key").map_err(be)?,
        password_hash: text_of(row, "password_hash")?,
        created_at: Timestamp::from_millis(row.try_get("created_at").map_err(be)?),
    })
}

pub(super) fn contact_from_row(row: &MySqlRow) -> StoreResult<Contact> {
    let lo = uid_of(row, "user_lo")?;
    let hi = uid_of(row, "user_hi")?;
    let requester = uid_of(row, "requester")?;
    let accepted: bool = row.try_get("accepted").map_err(be)?;
    Ok(Contact {
        requester,
        target: if requester == lo { hi } else { lo },
        state: if accepted {
            ContactState::Accepted
        } else {
            ContactState::Pending
        },
        secret: row.try_get("secret").map_err(be)?,
        requested_at: Timestamp::from_millis(row.try_get("requested_at").map_err(be)?),
    })
}

const USER_COLS: &str =
    "uid, phone_index, phone, name, nickname, username, bio, public_key, password_hash, created_at";

#[async_trait]
impl UserStore for MysqlStore {
    async fn create_user(&self, u: &UserRecord) -> StoreResult<()> {
        self.retry(move || async move {
            let res = sqlx::query(
                "INSERT INTO users (uid, phone_index, phone, name, nickname, username, bio, \
                 public_key, password_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            .execute(&self.pool)
            .await;
            match res {
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
        row.as_ref().map(user_from_row).transpose()
    }

    async fn users(&self, ids: &[UserId]) -> StoreResult<Vec<UserRecord>> {
        let mut out = Vec::with_capacity(ids.len());
        // Bounded IN lists keep statements small and cacheable by shape.
        for chunk in ids.chunks(100) {
            let sql = format!(
                "SELECT {USER_COLS} FROM users WHERE uid IN ({})",
                marks(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(uid(*id));
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
impl StoreHealth for MysqlStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(be)?;
        Ok(())
    }
}

super::sealed::sql_sealed_store!(MysqlStore, pool, be);

#[path = "mysql_avatars.rs"]
mod avatars;
#[path = "mysql_chats.rs"]
mod chats;
#[path = "mysql_contacts.rs"]
mod contacts;
#[path = "mysql_hot.rs"]
mod hot;
#[path = "mysql_manage.rs"]
mod manage;
#[path = "mysql_messages.rs"]
mod messages;
#[path = "mysql_push.rs"]
mod push;
#[path = "mysql_sessions.rs"]
mod sessions;
#[cfg(test)]
#[path = "mysql_tests.rs"]
mod tests;
#[path = "mysql_writer.rs"]
mod writer;
