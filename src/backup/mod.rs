//! Backup and restore of a server's durable state: its database and the keys that open it.
//!
//! A backup is a directory (0700, every file 0600: it holds keys) with
//!
//! - `melo.db`: a consistent copy of a SQLite database, taken with `VACUUM INTO` while the
//!   server keeps serving (one read transaction: the copy is the database as of one moment); or,
//!   for MySQL, `database.sql`: the output of `mariadb-dump --single-transaction` (run by
//!   [`backup`] when the program is on `PATH`, otherwise by the operator);
//! - `keys/`: a copy of the key directory: `data-keys.json` (the data keys: without them the
//!   sealed data is lost), `jwt/<slot>.pem` (the token-signing keys: tokens and sessions survive a
//!   restore) and `vapid.json` (the Web Push key pair: push subscriptions stay valid);
//! - `manifest.json`, written last: the format, the melo version, the time, the schema
//!   (migration) version, the SHA-256 of every file, the data-key versions, the key check.
//!
//! **The key check** proves that the keys belong to the data. At backup time, values sampled
//! from the copied database (the oldest and newest rows of every table with sealed columns) must
//! open with the copied data keys, and their blind indexes must match the copied blind-index
//! keys, or no backup is written; [`verify`] and [`restore`] sample the database being restored
//! again and refuse it when a value does not open. The manifest records, besides what was
//! checked, a fingerprint of each data-key version: HMAC-SHA256 under the key of a fixed label,
//! which names a key without revealing it, so a backup whose key file was swapped is refused
//! before any data is read. Nothing sealed is copied into the manifest (no PII outside the
//! database) and nothing is recorded by row: the MySQL dump is a snapshot of its own, so rows
//! sampled from the live database need not be in it; sampling the data actually restored checks
//! what matters.
//!
//! [`restore`] installs a backup into a data directory that has no database and no keys yet
//! (with [`RestoreOptions::force`], what is there is moved aside, never deleted): every file's
//! SHA-256 is checked, the key check runs, and only then are the files copied beside their
//! destination and renamed into place, so a refused or failed restore leaves nothing behind.
//!
//! The operator binary's `melo backup <dir>` and `melo restore <dir>` call [`backup`] and
//! [`restore`] with a [`Layout`] built by [`Layout::from_db_url`]; `docs/operations-backup.md`
//! is the operator's procedure.

use std::path::{Path, PathBuf};

use crate::config::Secret;
use crate::crypto::CryptoError;

mod create;
mod files;
mod keycheck;
mod keys;
mod manifest;
#[cfg(feature = "mysql")]
mod mysql;
mod restore;
#[cfg(feature = "sqlite")]
mod sqlite;
mod verify;

pub use create::backup;
pub use keycheck::KeyCheckReport;
pub use manifest::{
    DataKeysSource, DatabaseEntry, DatabaseKind, FileEntry, Fingerprint, KeysEntry, Manifest,
    MANIFEST_FILE, MANIFEST_FORMAT,
};
pub use restore::restore;
pub use verify::verify;

/// Where a server keeps its durable state: the database and the key directory.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The database.
    pub database: Database,
    /// The key directory (`<data dir>/keys`).
    pub keys_dir: PathBuf,
    /// `ENCRYPTION_KEY_STR`: the data keys are derived from it instead of read from
    /// `data-keys.json` (which a backup then does not contain: keep the secret elsewhere).
    pub data_secret: Option<Secret>,
}

/// The database of a [`Layout`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Database {
    /// A SQLite database file.
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    Sqlite(PathBuf),
    /// A MySQL / MariaDB database, by URL (`mysql://user:pass@host:3306/melo`; the `Debug` of a
    /// [`Secret`] hides the password).
    #[cfg(feature = "mysql")]
    #[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
    Mysql(Secret),
}

impl Layout {
    /// The default layout of a data directory: `<dir>/melo.db` and `<dir>/keys`.
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    pub fn sqlite_in(data_dir: &Path) -> Self {
        Self {
            database: Database::Sqlite(data_dir.join("melo.db")),
            keys_dir: data_dir.join("keys"),
            data_secret: None,
        }
    }

    /// The layout the server uses for `MELO_DATA_DIR`, `DB_URL` and `ENCRYPTION_KEY_STR`: keys in
    /// `<data dir>/keys`; the database in `<data dir>/melo.db` when `db_url` is `None`, else
    /// the file of a `sqlite:` URL or the database of a `mysql:` / `mariadb:` URL. `memory:`
    /// (nothing to back up) and unknown schemes are errors.
    pub fn from_db_url(
        data_dir: &Path,
        db_url: Option<&str>,
        data_secret: Option<Secret>,
    ) -> Result<Self, BackupError> {
        let database = match db_url {
            #[cfg(feature = "sqlite")]
            None => Database::Sqlite(data_dir.join("melo.db")),
            Some("memory:") => {
                return Err(BackupError::Unsupported(
                    "DB_URL=memory: keeps nothing to back up".into(),
                ))
            }
            #[cfg(feature = "mysql")]
            Some(url) if url.starts_with("mysql:") || url.starts_with("mariadb:") => {
                Database::Mysql(Secret::new(url))
            }
            #[cfg(feature = "sqlite")]
            Some(url) if url.starts_with("sqlite:") => {
                let rest = url
                    .strip_prefix("sqlite://")
                    .or_else(|| url.strip_prefix("sqlite:"))
                    .unwrap_or(url);
                let path = rest.split('?').next().unwrap_or(rest);
                if path.is_empty() || path == ":memory:" {
                    return Err(BackupError::Unsupported(
                        "an in-memory SQLite database keeps nothing to back up".into(),
                    ));
                }
                Database::Sqlite(PathBuf::from(path))
            }
            _ => {
                return Err(BackupError::Unsupported(
                    "DB_URL names a database this build cannot back up".into(),
                ))
            }
        };
        Ok(Self {
            database,
            keys_dir: data_dir.join("keys"),
            data_secret,
        })
    }
}

/// How [`backup`] runs.
#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    /// The MySQL dump (ignored for SQLite).
    pub mysql_dump: MysqlDump,
}

/// Who dumps a MySQL database.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum MysqlDump {
    /// [`backup`] runs `mariadb-dump` (or `mysqldump`) when one is on `PATH`; otherwise the
    /// report carries the command for the operator to run.
    #[default]
    Auto,
    /// [`backup`] runs this program (`mariadb-dump` or `mysqldump`).
    Program(PathBuf),
    /// The operator dumps the database (the report carries the command).
    Skip,
}

/// What [`backup`] wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BackupReport {
    /// The backup directory.
    pub dir: PathBuf,
    /// The manifest written (and verified).
    pub manifest: Manifest,
    /// For a MySQL backup that [`backup`] did not dump: the command the operator must run (it
    /// prompts for the password) to complete it.
    pub dump_command: Option<String>,
}

/// What [`verify`] checked.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Verified {
    /// The backup's manifest.
    pub manifest: Manifest,
    /// The key check on the backup's SQLite copy; `None` for a MySQL backup, whose data is
    /// checked against the database it is loaded into ([`restore`]).
    pub key_check: Option<KeyCheckReport>,
}

/// How [`restore`] runs.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Restore over an existing database and key directory: once every check has passed, they
    /// are renamed to `<name>.before-restore-<unix seconds>` (never deleted). Stop the server
    /// first.
    pub force: bool,
}

/// What [`restore`] did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RestoreReport {
    /// The restored backup's manifest.
    pub manifest: Manifest,
    /// The key check on the restored data.
    pub key_check: KeyCheckReport,
    /// The SQLite database installed (`None` for MySQL: the dump was loaded by the operator).
    pub database: Option<PathBuf>,
    /// The key directory installed.
    pub keys_dir: PathBuf,
    /// What [`RestoreOptions::force`] moved aside.
    pub moved_aside: Vec<PathBuf>,
}

/// Why a backup, a verification or a restore failed. Messages name files and tables, never
/// keys, values or row contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// [`backup`] writes into a new or empty directory only.
    #[error("{0} is not empty: a backup goes into a new or empty directory")]
    TargetNotEmpty(PathBuf),
    /// [`restore`] found a database or keys in place (and no `force`).
    #[error(
        "{0} already exists: restore goes into a data directory without a database and keys \
         (stop the server and use --force to move them aside)"
    )]
    Occupied(PathBuf),
    /// A file differs from the SHA-256 (or size) in the manifest.
    #[error("{0}: SHA-256 does not match the manifest (the backup was altered or damaged)")]
    HashMismatch(String),
    /// The keys do not open the data, or do not match the manifest's fingerprints.
    #[error("key check failed: {0}")]
    KeyCheck(String),
    /// The backup directory is not a complete, well-formed backup.
    #[error("not a valid backup: {0}")]
    Invalid(String),
    /// The database could not be read or copied.
    #[error("database: {0}")]
    Database(String),
    /// The MySQL dump failed.
    #[error("mariadb-dump: {0}")]
    Dump(String),
    /// A key file could not be read or parsed.
    #[error("keys: {0}")]
    Keys(#[from] CryptoError),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Something this build cannot back up or restore.
    #[error("{0}")]
    Unsupported(String),
}

impl BackupError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Runs blocking file and SQLite work off the async threads.
async fn blocking<T, F>(f: F) -> Result<T, BackupError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, BackupError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackupError::Unsupported(format!("a backup task failed: {e}")))?
}
