//! `manifest.json`: what a backup holds, the hash of every file, and the key check.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::keycheck::KeyCheckReport;
use super::BackupError;

/// The manifest's file name in a backup directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The manifest format this release writes and reads.
pub const MANIFEST_FORMAT: u32 = 1;

/// A backup's SQLite copy.
pub(crate) const SQLITE_FILE: &str = "melo.db";
/// A backup's MySQL dump.
pub(crate) const DUMP_FILE: &str = "database.sql";
/// The key directory inside a backup.
pub(crate) const KEYS_DIR: &str = "keys";
/// The data keys, inside [`KEYS_DIR`].
pub(crate) const DATA_KEYS_FILE: &str = "data-keys.json";
/// The VAPID key pair, inside [`KEYS_DIR`].
pub(crate) const VAPID_FILE: &str = "vapid.json";
/// The JWT keys' directory, inside [`KEYS_DIR`].
pub(crate) const JWT_DIR: &str = "jwt";

/// `manifest.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// The melo version that wrote the backup.
    pub melo_version: String,
    /// When the backup was taken (RFC 3339, UTC).
    pub created_at: String,
    /// The database part.
    pub database: DatabaseEntry,
    /// The key part.
    pub keys: KeysEntry,
    /// The key check made when the backup was taken.
    pub key_check: KeyCheckReport,
    /// Every file of the backup but the manifest, by path relative to the backup directory
    /// (`/`-separated).
    pub files: BTreeMap<String, FileEntry>,
}

/// Which database a backup holds.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseKind {
    /// `melo.db`, a SQLite copy.
    Sqlite,
    /// `database.sql`, a MySQL / MariaDB dump.
    Mysql,
}

/// The database part of a [`Manifest`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DatabaseEntry {
    /// SQLite or MySQL.
    pub kind: DatabaseKind,
    /// The file in the backup (`melo.db` or `database.sql`); `None` for a MySQL backup whose
    /// dump the operator makes (see `dump_command`).
    pub file: Option<String>,
    /// The migration level of the database: the newest migration applied.
    pub schema_version: i64,
    /// The dump command (MySQL), password left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dump_command: Option<String>,
}

/// Where the data keys come from.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DataKeysSource {
    /// `keys/data-keys.json` in the backup.
    File,
    /// Derived from `ENCRYPTION_KEY_STR`, which the backup does not contain.
    Derived,
}

/// The key part of a [`Manifest`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeysEntry {
    /// Where the data keys come from.
    pub data_keys: DataKeysSource,
    /// Every data-key version the keys hold.
    pub versions: Vec<u8>,
    /// The version values are sealed with (ignoring a pending activation).
    pub current: u8,
    /// A pending version and its activation time (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<(u8, i64)>,
    /// Per version: fingerprints of its data key and blind-index key.
    pub fingerprints: BTreeMap<u8, Fingerprint>,
    /// How many JWT signing keys the backup holds.
    pub jwt_keys: usize,
    /// The VAPID public key (base64url), when the backup holds the pair.
    pub vapid_public_key: Option<String>,
}

/// HMAC-SHA256 of a fixed label under a key, first 16 bytes in hex: names a key without
/// revealing it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Fingerprint {
    /// Of the AES-256-GCM data key.
    pub data: String,
    /// Of the blind-index (HMAC) key.
    pub blind: String,
}

/// One file of a backup.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// Lowercase hex SHA-256 of the contents.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time in Unix seconds, kept for JWT keys (the key directory reads a key's
    /// publication time from it) and set again on restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<i64>,
}

/// True for the paths a backup may hold: a manifest naming anything else (`../`, absolute
/// paths, other files) is refused, so a restore never writes outside its destinations.
pub(crate) fn allowed_path(path: &str) -> bool {
    match path {
        SQLITE_FILE | DUMP_FILE => true,
        _ => match path.strip_prefix("keys/") {
            Some(DATA_KEYS_FILE | VAPID_FILE) => true,
            Some(rest) => rest.strip_prefix("jwt/").is_some_and(is_jwt_file_name),
            None => false,
        },
    }
}

/// `<slot>.pem`, the slot being decimal digits.
pub(crate) fn is_jwt_file_name(name: &str) -> bool {
    name.strip_suffix(".pem").is_some_and(|slot| {
        !slot.is_empty() && slot.len() <= 20 && slot.bytes().all(|b| b.is_ascii_digit())
    })
}

impl Manifest {
    /// Reads and checks `<dir>/manifest.json`.
    pub(crate) fn read(dir: &Path) -> Result<Self, BackupError> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BackupError::Invalid(format!(
                    "{} has no {MANIFEST_FILE} (an interrupted backup, or not a backup)",
                    dir.display()
                )))
            }
            Err(e) => return Err(BackupError::io(&path)(e)),
        };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| BackupError::Invalid(format!("{MANIFEST_FILE}: {e}")))?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(BackupError::Invalid(format!(
                "{MANIFEST_FILE} has format {}; this release reads format {MANIFEST_FORMAT}",
                manifest.format
            )));
        }
        if let Some(bad) = manifest.files.keys().find(|p| !allowed_path(p)) {
            return Err(BackupError::Invalid(format!(
                "{MANIFEST_FILE} lists {bad:?}, which no backup holds"
            )));
        }
        let db_file = match manifest.database.kind {
            DatabaseKind::Sqlite => Some(SQLITE_FILE),
            DatabaseKind::Mysql => manifest.database.file.as_ref().map(|_| DUMP_FILE),
        };
        if manifest.database.file.as_deref() != db_file {
            return Err(BackupError::Invalid(format!(
                "{MANIFEST_FILE}: the database file of a {:?} backup is {db_file:?}",
                manifest.database.kind
            )));
        }
        if let Some(f) = db_file {
            if !manifest.files.contains_key(f) {
                return Err(BackupError::Invalid(format!(
                    "{MANIFEST_FILE} does not list {f}"
                )));
            }
        }
        let data_keys = format!("{KEYS_DIR}/{DATA_KEYS_FILE}");
        let listed = manifest.files.contains_key(&data_keys);
        match (manifest.keys.data_keys, listed) {
            (DataKeysSource::File, false) => {
                return Err(BackupError::Invalid(format!(
                    "{MANIFEST_FILE} does not list {data_keys}"
                )))
            }
            (DataKeysSource::Derived, true) => {
                return Err(BackupError::Invalid(format!(
                    "{MANIFEST_FILE} lists {data_keys}, but its data keys are derived"
                )))
            }
            _ => {}
        }
        Ok(manifest)
    }

    /// Writes `<dir>/manifest.json` (0600, synced).
    pub(crate) fn write(&self, dir: &Path) -> Result<(), BackupError> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| BackupError::Invalid(format!("{MANIFEST_FILE}: {e}")))?;
        super::files::write_new(&dir.join(MANIFEST_FILE), &json)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_backup_paths_are_allowed() {
        for ok in [
            "melo.db",
            "database.sql",
            "keys/data-keys.json",
            "keys/vapid.json",
            "keys/jwt/1700000000.pem",
        ] {
            assert!(allowed_path(ok), "{ok}");
        }
        for bad in [
            "../melo.db",
            "/etc/passwd",
            "keys/../../x",
            "keys/jwt/../../x.pem",
            "keys/jwt/.pem",
            "keys/jwt/1.pem.tmp",
            "keys/jwt/-1.pem",
            "keys/other.json",
            "manifest.json",
            "melo.db-wal",
        ] {
            assert!(!allowed_path(bad), "{bad}");
        }
    }
}
