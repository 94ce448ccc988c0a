//! [`verify`]: a backup directory is complete, unaltered, and its keys open its data.

use std::path::Path;

use super::files;
use super::keycheck::check_fingerprints;
use super::manifest::{DatabaseKind, Manifest, DUMP_FILE, JWT_DIR, KEYS_DIR, MANIFEST_FILE};
use super::{blocking, keys, BackupError, KeyCheckReport, Verified};
use crate::config::Secret;
use crate::crypto::KeyProvider;

/// Checks the backup in `dir`, reading but never changing it:
///
/// - `manifest.json` is there (a backup interrupted before it was written has none), of a
///   known format, and lists only the files a backup holds;
/// - every listed file is there with its size and SHA-256, and nothing else is (a key added to
///   a backup would be installed by a restore);
/// - the keys parse (data keys, every JWT key, the VAPID pair), match the manifest's
///   fingerprints, versions and VAPID public key; with derived data keys, `data_secret`
///   (`ENCRYPTION_KEY_STR`) is needed;
/// - SQLite: the copy's migration level is the manifest's and not newer than this release's,
///   and the key check opens values sampled from it. A MySQL dump is checked when it is loaded
///   ([`restore`](super::restore)).
pub async fn verify(dir: &Path, data_secret: Option<&Secret>) -> Result<Verified, BackupError> {
    let manifest = {
        let dir = dir.to_owned();
        blocking(move || {
            let manifest = Manifest::read(&dir)?;
            check_files(&dir, &manifest)?;
            Ok(manifest)
        })
        .await?
    };
    let keys = load_keys(dir, &manifest, data_secret).await?;
    let key_check = match manifest.database.kind {
        DatabaseKind::Sqlite => Some(check_sqlite(dir, &manifest, keys).await?),
        DatabaseKind::Mysql => None,
    };
    Ok(Verified {
        manifest,
        key_check,
    })
}

/// Loads the backup's keys and compares them with the manifest.
pub(crate) async fn load_keys(
    dir: &Path,
    manifest: &Manifest,
    data_secret: Option<&Secret>,
) -> Result<std::sync::Arc<dyn KeyProvider>, BackupError> {
    let loaded = keys::load(&dir.join(KEYS_DIR), manifest.keys.data_keys, data_secret).await?;
    check_fingerprints(&loaded.provider.data_keys(), &manifest.keys.fingerprints)?;
    let (got, want) = (&loaded.entry, &manifest.keys);
    if got.versions != want.versions || got.current != want.current || got.pending != want.pending {
        return Err(BackupError::Invalid(
            "the data-key versions differ from the manifest's".into(),
        ));
    }
    if got.jwt_keys != want.jwt_keys || got.vapid_public_key != want.vapid_public_key {
        return Err(BackupError::Invalid(
            "the JWT or VAPID keys differ from the manifest's".into(),
        ));
    }
    Ok(loaded.provider)
}

/// Every listed file has its size and hash; no other file is there.
fn check_files(dir: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    for (name, want) in &manifest.files {
        let path = dir.join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return Err(BackupError::Invalid(format!(
                    "{name} is not a regular file"
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BackupError::Invalid(format!(
                    "{name} is missing (listed in {MANIFEST_FILE})"
                )))
            }
            Err(e) => return Err(BackupError::io(&path)(e)),
        }
        let got = files::hash_file(&path)?;
        if got.sha256 != want.sha256 || got.size != want.size {
            return Err(BackupError::HashMismatch(name.clone()));
        }
    }
    // A MySQL backup the operator dumps gets its `database.sql` after the manifest.
    let external_dump =
        manifest.database.kind == DatabaseKind::Mysql && manifest.database.file.is_none();
    let dirs = [
        String::new(),
        KEYS_DIR.to_owned(),
        format!("{KEYS_DIR}/{JWT_DIR}"),
    ];
    for sub in &dirs {
        let at = dir.join(sub);
        if !at.is_dir() {
            return Err(BackupError::Invalid(format!("{sub}/ is missing")));
        }
        for entry in std::fs::read_dir(&at).map_err(BackupError::io(&at))? {
            let entry = entry.map_err(BackupError::io(&at))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if sub.is_empty() {
                name
            } else {
                format!("{sub}/{name}")
            };
            let known = manifest.files.contains_key(&rel)
                || rel == MANIFEST_FILE
                || dirs.contains(&rel)
                || (external_dump && rel == DUMP_FILE);
            if !known {
                return Err(BackupError::Invalid(format!(
                    "{rel} is not listed in {MANIFEST_FILE}"
                )));
            }
        }
    }
    Ok(())
}

/// The SQLite copy: its migration level, and the key check on it.
async fn check_sqlite(
    dir: &Path,
    manifest: &Manifest,
    keys: std::sync::Arc<dyn KeyProvider>,
) -> Result<KeyCheckReport, BackupError> {
    #[cfg(feature = "sqlite")]
    {
        use super::manifest::SQLITE_FILE;
        let path = dir.join(SQLITE_FILE);
        let recorded = manifest.database.schema_version;
        let samples = blocking(move || {
            let conn = super::sqlite::open_copy(&path)?;
            let level = super::sqlite::schema_version(&conn)?;
            if level != recorded {
                return Err(BackupError::Invalid(format!(
                    "{SQLITE_FILE} is at migration {level}, the manifest says {recorded}"
                )));
            }
            check_level(level, crate::store::sqlite_schema_latest())?;
            super::sqlite::sample(&conn)
        })
        .await?;
        super::keycheck::check(keys, &samples)
    }
    #[cfg(not(feature = "sqlite"))]
    {
        let _ = (dir, manifest, keys);
        Err(BackupError::Unsupported(
            "this build has no SQLite support (feature `sqlite`)".into(),
        ))
    }
}

/// Refuses a database of a newer release than this one.
pub(crate) fn check_level(level: i64, latest: i64) -> Result<(), BackupError> {
    if level > latest {
        return Err(BackupError::Unsupported(format!(
            "the backup's database is at migration {level}, newer than this release's {latest}: \
             restore it with the melo version that made it (or a newer one)"
        )));
    }
    Ok(())
}
