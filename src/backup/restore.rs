//! [`restore`]: verify, stage beside the destinations, key check, then rename into place.

use std::path::{Path, PathBuf};

use super::files::{self, copy_new, create_private_dir, create_private_dirs, exists, temp_beside};
use super::manifest::{DataKeysSource, DatabaseKind, Manifest, JWT_DIR, KEYS_DIR, SQLITE_FILE};
use super::{
    blocking, verify, BackupError, Database, KeyCheckReport, Layout, RestoreOptions, RestoreReport,
};

/// Restores the backup in `backup_dir` into `target`.
///
/// The target must hold no database and no keys: no database file (nor its `-wal`), and no key
/// directory or an empty one; otherwise [`BackupError::Occupied`], unless
/// [`RestoreOptions::force`], which moves them aside (renamed `<name>.before-restore-<unix
/// seconds>`, never deleted) once every check has passed. Stop the server first.
///
/// 1. [`verify`](super::verify): every file's SHA-256, the keys against the manifest's
///    fingerprints, and (SQLite) the key check on the backup's copy.
/// 2. MySQL: the dump must already be loaded into the database `target` names (see
///    `docs/operations-backup.md`): its migration level must be the backup's, and the key check
///    runs on it with the backup's keys.
/// 3. The files are copied beside their destinations under temporary names (0600, in 0700
///    directories), each copy hashed again against the manifest.
/// 4. They are renamed into place: the database, then the key directory (JWT keys keep their
///    modification times, which the key directory reads their publication time from).
///
/// Any failure removes the temporary copies and puts back what was moved aside: the target is
/// as it was.
pub async fn restore(
    backup_dir: &Path,
    target: &Layout,
    options: &RestoreOptions,
) -> Result<RestoreReport, BackupError> {
    let db_path = destination(target)?;
    {
        let (db, keys, force) = (db_path.clone(), target.keys_dir.clone(), options.force);
        blocking(move || occupied(db.as_deref(), &keys, force).map(drop)).await?;
    }
    let verified = verify(backup_dir, target.data_secret.as_ref()).await?;
    let manifest = verified.manifest;
    if target.data_secret.is_some() && manifest.keys.data_keys == DataKeysSource::File {
        return Err(BackupError::KeyCheck(
            "ENCRYPTION_KEY_STR is set, but this backup's data keys are in data-keys.json: a \
             server with it set would not read the data (unset it)"
                .into(),
        ));
    }
    let key_check = match (manifest.database.kind, verified.key_check) {
        (DatabaseKind::Sqlite, Some(report)) => {
            if db_path.is_none() {
                return Err(BackupError::Unsupported(
                    "this is a SQLite backup: DB_URL must name a SQLite database (or be unset)"
                        .into(),
                ));
            }
            report
        }
        (DatabaseKind::Mysql, _) => check_loaded_mysql(backup_dir, target, &manifest).await?,
        (DatabaseKind::Sqlite, None) => {
            return Err(BackupError::Invalid(
                "the SQLite copy was not checked".into(),
            ))
        }
    };
    let staged = {
        let (dir, manifest, db, keys) = (
            backup_dir.to_owned(),
            manifest.clone(),
            db_path.clone(),
            target.keys_dir.clone(),
        );
        blocking(move || Staged::create(&dir, &manifest, db.as_deref(), &keys)).await?
    };
    let moved_aside = {
        let (db, keys, force) = (db_path.clone(), target.keys_dir.clone(), options.force);
        blocking(move || staged.install(db.as_deref(), &keys, force)).await?
    };
    tracing::info!(
        target: "melo::audit",
        event = "backup_restored",
        database = ?manifest.database.kind,
        schema_version = manifest.database.schema_version,
        values_checked = key_check.opened(),
        moved_aside = moved_aside.len(),
        "backup restored"
    );
    Ok(RestoreReport {
        manifest,
        key_check,
        database: db_path,
        keys_dir: target.keys_dir.clone(),
        moved_aside,
    })
}

/// The SQLite file to install, `None` for MySQL.
fn destination(target: &Layout) -> Result<Option<PathBuf>, BackupError> {
    match &target.database {
        #[cfg(feature = "sqlite")]
        Database::Sqlite(p) => Ok(Some(p.clone())),
        #[cfg(feature = "mysql")]
        Database::Mysql(_) => Ok(None),
    }
}

/// What is in the way: the database file and its companions, and a non-empty key directory.
/// With `force` that is what will be moved aside; without, any of it is an error.
fn occupied(db: Option<&Path>, keys: &Path, force: bool) -> Result<Vec<PathBuf>, BackupError> {
    let mut found = Vec::new();
    if let Some(db) = db {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let p = PathBuf::from(format!("{}{suffix}", db.display()));
            if exists(&p) {
                found.push(p);
            }
        }
    }
    if exists(keys) && !(keys.is_dir() && files::is_empty_dir(keys)?) {
        found.push(keys.to_owned());
    }
    match found.first() {
        Some(first) if !force => Err(BackupError::Occupied(first.clone())),
        _ => Ok(found),
    }
}

/// A MySQL backup: the database `target` names must hold the loaded dump.
async fn check_loaded_mysql(
    backup_dir: &Path,
    target: &Layout,
    manifest: &Manifest,
) -> Result<KeyCheckReport, BackupError> {
    #[cfg(feature = "mysql")]
    #[allow(irrefutable_let_patterns)] // A build without SQLite has no other database.
    if let Database::Mysql(url) = &target.database {
        use super::mysql;
        let keys =
            super::verify::load_keys(backup_dir, manifest, target.data_secret.as_ref()).await?;
        let pool = mysql::connect(url).await?;
        let result = async {
            let want = manifest.database.schema_version;
            match mysql::schema_version(&pool).await? {
                None => Err(BackupError::Database(
                    "the database holds no melo schema: load the backup's database.sql into it \
                     first"
                        .into(),
                )),
                Some(level) if level != want => Err(BackupError::Database(format!(
                    "the database is at migration {level}, the backup at {want}: load the \
                     backup's database.sql into an empty database"
                ))),
                Some(_) => {
                    super::verify::check_level(want, crate::store::mysql_schema_latest())?;
                    let samples = mysql::sample(&pool).await?;
                    let report = super::keycheck::check(keys, &samples)?;
                    let before = manifest.key_check.opened();
                    if before > 0 && report.opened() == 0 {
                        return Err(BackupError::KeyCheck(format!(
                            "the database holds no sealed value, the backed-up one had {before} \
                             checked: load the backup's database.sql first"
                        )));
                    }
                    Ok(report)
                }
            }
        }
        .await;
        pool.close().await;
        return result;
    }
    let _ = (backup_dir, manifest, target);
    Err(BackupError::Unsupported(
        "this is a MySQL backup: DB_URL must name the MySQL database its dump was loaded into"
            .into(),
    ))
}

/// The backup's files copied beside their destinations, not yet in place.
struct Staged {
    db: Option<PathBuf>,
    keys: PathBuf,
}

impl Staged {
    /// Copies the database (SQLite) and the keys beside `db` and `keys`, checking each copy's
    /// hash. On failure nothing is left.
    fn create(
        dir: &Path,
        manifest: &Manifest,
        db: Option<&Path>,
        keys: &Path,
    ) -> Result<Self, BackupError> {
        let mut staged = Staged {
            db: None,
            keys: temp_beside(keys, "restore"),
        };
        let result = (|| {
            if let (Some(dest), DatabaseKind::Sqlite) = (db, manifest.database.kind) {
                if let Some(parent) = dest.parent() {
                    create_private_dirs(parent)?;
                }
                let tmp = temp_beside(dest, "restore");
                staged.db = Some(tmp.clone());
                copy_checked(dir, manifest, SQLITE_FILE, &tmp)?;
            }
            if let Some(parent) = keys.parent() {
                create_private_dirs(parent)?;
            }
            create_private_dir(&staged.keys)?;
            create_private_dir(&staged.keys.join(JWT_DIR))?;
            for (name, entry) in &manifest.files {
                let Some(rel) = name.strip_prefix(&format!("{KEYS_DIR}/")) else {
                    continue;
                };
                let to = staged.keys.join(rel);
                copy_checked(dir, manifest, name, &to)?;
                if let Some(t) = entry.modified {
                    files::set_modified(&to, t)?;
                }
            }
            files::sync_dir(&staged.keys.join(JWT_DIR));
            files::sync_dir(&staged.keys);
            Ok(())
        })();
        match result {
            Ok(()) => Ok(staged),
            Err(e) => {
                staged.discard();
                Err(e)
            }
        }
    }

    fn discard(&self) {
        if let Some(db) = &self.db {
            files::remove_all(db);
        }
        files::remove_all(&self.keys);
    }

    /// Renames the staged files into place (after moving what is there aside, with `force`).
    /// Returns what was moved aside. On failure everything is put back.
    fn install(
        self,
        db: Option<&Path>,
        keys: &Path,
        force: bool,
    ) -> Result<Vec<PathBuf>, BackupError> {
        let mut undo: Vec<(PathBuf, PathBuf)> = Vec::new();
        let result = self.install_steps(db, keys, force, &mut undo);
        if result.is_err() {
            for (from, to) in undo.iter().rev() {
                if let Err(e) = std::fs::rename(from, to) {
                    tracing::error!(from = %from.display(), to = %to.display(), error = %e,
                        "restore: could not undo a rename");
                }
            }
            self.discard();
        }
        result
    }

    fn install_steps(
        &self,
        db: Option<&Path>,
        keys: &Path,
        force: bool,
        undo: &mut Vec<(PathBuf, PathBuf)>,
    ) -> Result<Vec<PathBuf>, BackupError> {
        // Checked again: something may have appeared since the first look.
        let in_the_way = occupied(db, keys, force)?;
        let stamp = files::now_secs();
        let mut moved = Vec::new();
        for p in in_the_way {
            let aside = aside_name(&p, stamp);
            std::fs::rename(&p, &aside).map_err(BackupError::io(&p))?;
            undo.push((aside.clone(), p));
            moved.push(aside);
        }
        if exists(keys) {
            // An empty key directory (checked above).
            std::fs::remove_dir(keys).map_err(BackupError::io(keys))?;
        }
        if let (Some(dest), Some(tmp)) = (db, &self.db) {
            std::fs::rename(tmp, dest).map_err(BackupError::io(dest))?;
            undo.push((dest.to_owned(), tmp.clone()));
            if let Some(parent) = dest.parent() {
                files::sync_dir(parent);
            }
        }
        std::fs::rename(&self.keys, keys).map_err(BackupError::io(keys))?;
        if let Some(parent) = keys.parent() {
            files::sync_dir(parent);
        }
        Ok(moved)
    }
}

/// Copies the backup's `name` to `to` and checks the copy against the manifest.
fn copy_checked(dir: &Path, manifest: &Manifest, name: &str, to: &Path) -> Result<(), BackupError> {
    let want = manifest
        .files
        .get(name)
        .ok_or_else(|| BackupError::Invalid(format!("the manifest does not list {name}")))?;
    let got = copy_new(&dir.join(name), to)?;
    if got.sha256 != want.sha256 || got.size != want.size {
        return Err(BackupError::HashMismatch(name.to_owned()));
    }
    Ok(())
}

/// `<path>.before-restore-<stamp>`, or with a random suffix when that exists.
fn aside_name(path: &Path, stamp: i64) -> PathBuf {
    let base = format!("{}.before-restore-{stamp}", path.display());
    let p = PathBuf::from(&base);
    if exists(&p) {
        PathBuf::from(format!("{base}-{:08x}", rand::random::<u32>()))
    } else {
        p
    }
}
