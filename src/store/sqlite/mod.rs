//! The embedded SQLite store (feature `sqlite`), on rusqlite: one writer thread owning the only
//! write connection and group-committing the hot writes, reader threads for queries (see
//! `db.rs`); WAL journal, `synchronous = NORMAL`, embedded migrations.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::store::{Migrations, StoreHealth, StoreResult};

mod accounts;
mod admin;
mod chats;
mod db;
mod erase;
mod hot;
mod import;
mod messages;
mod migrate;
mod queue;
mod read_markers;
mod rows;
mod schedule;
mod sealed;
mod sessions;

#[cfg(test)]
mod tests;

/// The version of the newest embedded migration.
pub(super) fn latest_migration() -> i64 {
    migrate::latest()
}

/// The embedded SQLite store (feature `sqlite`): the zero-setup default of the binary.
///
/// A writer thread owns the only write connection: every write is a closure it runs, and the
/// hot ones (messages with their queue entries, receipts, acknowledgements) of all callers that
/// are waiting together are committed in one transaction (group commit), each caller answered
/// after the COMMIT. Reads run on two reader threads with a connection each (WAL: readers and
/// the writer never wait for each other). Every call is one hand-off to a thread, with
/// statements prepared once per connection.
///
/// Durability: WAL with `synchronous = NORMAL`. A committed write survives the process being
/// killed at any moment (`kill -9`); an operating-system crash or power loss can lose the last
/// commits before a checkpoint. One server process serves a database; an operator tool
/// (`melo::admin`, `melo::rekey`) may open it meanwhile from another process: its writes are
/// short transactions that wait for the server's (and the server's for them) through the busy
/// handler.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    db: db::Db,
    /// Messages created before this time (ms) have no `client_id` any more (see
    /// `purge_messages`); 0 until the first purge of this process.
    dedupe_horizon: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and applies migrations.
    pub async fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        Self::open_with(path, Migrations::Apply).await
    }

    /// Opens (creating if missing) the database file, applying or only verifying migrations.
    pub async fn open_with(path: impl AsRef<Path>, migrations: Migrations) -> StoreResult<Self> {
        Self::at(db::Location::File(path.as_ref().to_path_buf()), migrations).await
    }

    /// Opens a database URL: `sqlite://path/to/melo.db` (or `sqlite:path`), or `sqlite::memory:`
    /// for a private in-memory database. Query parameters are ignored.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, Migrations::Apply).await
    }

    /// [`SqliteStore::connect`], applying or only verifying migrations.
    pub async fn connect_with(url: &str, migrations: Migrations) -> StoreResult<Self> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let path = rest.split('?').next().unwrap_or(rest);
        let at = if path.is_empty() || path == ":memory:" {
            db::Location::Memory
        } else {
            db::Location::File(PathBuf::from(path))
        };
        Self::at(at, migrations).await
    }

    async fn at(at: db::Location, migrations: Migrations) -> StoreResult<Self> {
        // Opening, migrating and starting the threads block: off the async threads.
        let db = tokio::task::spawn_blocking(move || {
            db::Db::open(at, |conn| migrate::run(conn, migrations))
        })
        .await
        .map_err(|e| crate::store::StoreError::Unavailable(e.to_string()))??;
        Ok(Self {
            db,
            dedupe_horizon: Default::default(),
        })
    }
}

#[async_trait]
impl StoreHealth for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.db
            .read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(db::be))
            .await
    }
}
