//! The MySQL / MariaDB store (feature `mysql`), one file per concern: accounts (users and
//! sessions), contacts, chats, push registrations, avatars, messages (reads, history,
//! management), the device queues (`queue.rs`), and the group-commit writer of the hot writes
//! (`writer.rs`, with the statements of a batch in `hot.rs`). Rows are decoded by the decoders
//! shared with the SQLite store (`store::sql::rows`) through [`Cells`](crate::store::sql::rows::Cells)
//! (`rows.rs`).

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError, MySqlPoolOptions};
use sqlx::MySqlPool;

use super::{Migrations, StoreError, StoreHealth, StoreResult};

mod accounts;
mod admin;
mod avatars;
mod chats;
mod contacts;
mod erase;
mod hot;
mod import;
mod json;
mod messages;
mod push;
mod queue;
mod read_markers;
mod retention;
mod rows;
mod schedule;
mod sessions;
mod writer;

#[cfg(test)]
mod bench_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod writer_tests;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/mysql");

/// The version of the newest embedded migration.
pub(super) fn latest_migration() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

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
/// The hot writes (`store_message`, `enqueue`, `ack`) are group-committed: a writer task,
/// spawned on the current tokio runtime when the store is opened, runs every pending one in a
/// single transaction of a few statements of fixed shape on a connection of its own (one more
/// than the pool's), and answers after the COMMIT.
///
/// Targets MariaDB 10.11 and MySQL 8: no `RETURNING`, no partial indexes.
#[derive(Debug, Clone)]
pub struct MysqlStore {
    pool: MySqlPool,
    /// Group commit of the hot writes (see `writer.rs`), on a connection of its own.
    hot: writer::Writer,
    /// Test databases are dropped with their last store.
    #[cfg(test)]
    _test_db: Option<std::sync::Arc<tests::TestDb>>,
}

impl MysqlStore {
    /// Connects to a URL such as `mysql://user:pass@host:3306/melo` (`mariadb://` is accepted
    /// too) with a pool of 16 connections and applies migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_migrations(url, Migrations::Apply).await
    }

    /// [`MysqlStore::connect`], applying or only verifying migrations.
    pub async fn connect_migrations(url: &str, migrations: Migrations) -> StoreResult<Self> {
        let url = match url.strip_prefix("mariadb:") {
            Some(rest) => format!("mysql:{rest}"),
            None => url.to_owned(),
        };
        let opts = MySqlConnectOptions::from_str(&url).map_err(StoreError::backend)?;
        let pool = MySqlPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(opts);
        Self::with_pool_migrations(pool, migrations).await
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
        Self::with_pool_migrations(pool, Migrations::Apply).await
    }

    /// [`MysqlStore::with_pool`], applying or only verifying migrations.
    pub async fn with_pool_migrations(
        pool: MySqlPool,
        migrations: Migrations,
    ) -> StoreResult<Self> {
        match migrations {
            Migrations::Apply => MIGRATOR.run(&pool).await.map_err(|e| match e {
                sqlx::migrate::MigrateError::Execute(e) => be(e),
                other => StoreError::backend(other),
            })?,
            Migrations::Verify => verify_schema(&pool).await?,
        }
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

/// [`Migrations::Verify`]: every migration of this release is applied, successfully and with the
/// same checksum.
async fn verify_schema(pool: &MySqlPool) -> StoreResult<()> {
    let applied: Vec<(i64, Vec<u8>, bool)> =
        match sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations")
            .fetch_all(pool)
            .await
        {
            Ok(rows) => rows,
            // No bookkeeping table: nothing was ever migrated.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42S02") => Vec::new(),
            Err(e) => return Err(be(e)),
        };
    if let Some((v, _, _)) = applied
        .iter()
        .find(|(v, _, _)| MIGRATOR.iter().all(|m| m.version != *v))
    {
        return Err(StoreError::Backend(
            format!(
                "the database has migration {v}, which this release does not know: it was \
                 migrated by a newer release"
            )
            .into(),
        ));
    }
    for m in MIGRATOR.iter() {
        match applied.iter().find(|(v, _, _)| *v == m.version) {
            Some((_, sum, true)) if sum.as_slice() == m.checksum.as_ref() => {}
            Some((_, _, true)) => {
                return Err(StoreError::Backend(
                    format!("migration {} differs from the one applied", m.version).into(),
                ))
            }
            Some((_, _, false)) => {
                return Err(StoreError::Backend(
                    format!(
                        "migration {} failed earlier: the database needs repair",
                        m.version
                    )
                    .into(),
                ))
            }
            None => {
                return Err(StoreError::Backend(
                    format!(
                        "the database lacks migration {} ({}) of this release: run `melo migrate` \
                         first (or start without --no-migrate)",
                        m.version, m.description
                    )
                    .into(),
                ))
            }
        }
    }
    Ok(())
}
