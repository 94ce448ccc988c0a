//! [`backup`]: the database copy (or dump), then the keys, the key check, the manifest, and a
//! verification of what was written.

use std::collections::BTreeMap;
use std::path::Path;

use super::files::{self, create_private_dirs, is_empty_dir, make_private};
use super::keycheck::{check, Samples};
use super::manifest::{
    DataKeysSource, DatabaseEntry, DatabaseKind, FileEntry, Manifest, KEYS_DIR, MANIFEST_FORMAT,
};
use super::{blocking, keys, verify, BackupError, BackupOptions, BackupReport, Database, Layout};
use crate::model::Timestamp;

/// Backs up the database and keys of `source` into `target`, a new or empty directory (made
/// 0700; every file in it 0600), while the server keeps serving:
///
/// 1. the database: for SQLite a `VACUUM INTO` copy, `melo.db`; for MySQL `database.sql`
///    from `mariadb-dump --single-transaction` when [`BackupOptions::mysql_dump`] allows it and
///    the program is found, otherwise nothing (the report's `dump_command` is what the operator
///    runs);
/// 2. the keys, copied after the database, so they hold every data-key version it uses;
/// 3. the key check: values sampled from the copy (SQLite) or the live database (MySQL) must
///    open with the copied keys, or nothing is kept;
/// 4. `manifest.json`, last: a directory without one is an interrupted backup;
/// 5. [`verify`](super::verify) of the directory as written.
///
/// On failure, whatever this call wrote is removed again.
pub async fn backup(
    source: &Layout,
    target: &Path,
    options: &BackupOptions,
) -> Result<BackupReport, BackupError> {
    let created = {
        let target = target.to_owned();
        blocking(move || prepare(&target)).await?
    };
    match write(source, target, options).await {
        Ok(report) => Ok(report),
        Err(e) => {
            let target = target.to_owned();
            let _ = blocking(move || {
                clean(&target, created);
                Ok(())
            })
            .await;
            Err(e)
        }
    }
}

/// Makes `target` a new 0700 directory, or checks that it is empty (and makes it 0700).
/// Returns whether it was created.
fn prepare(target: &Path) -> Result<bool, BackupError> {
    if files::exists(target) {
        if !target.is_dir() || !is_empty_dir(target)? {
            return Err(BackupError::TargetNotEmpty(target.to_owned()));
        }
        make_private(target)?;
        return Ok(false);
    }
    create_private_dirs(target)?;
    Ok(true)
}

/// Removes what a failed backup wrote into `target` (it was empty), and `target` if it was
/// created.
fn clean(target: &Path, created: bool) {
    if created {
        files::remove_all(target);
    } else if let Ok(entries) = std::fs::read_dir(target) {
        for e in entries.flatten() {
            files::remove_all(&e.path());
        }
    }
}

async fn write(
    source: &Layout,
    target: &Path,
    options: &BackupOptions,
) -> Result<BackupReport, BackupError> {
    let mut listed: BTreeMap<String, FileEntry> = BTreeMap::new();
    let copied = copy_database(source, target, options).await?;
    // The keys after the database: a data key added meanwhile is in the copy, none is missing.
    let key_entries = {
        let (from, to) = (source.keys_dir.clone(), target.join(KEYS_DIR));
        let secret = source.data_secret.clone();
        blocking(move || keys::copy(&from, &to, secret.as_ref())).await?
    };
    listed.extend(key_entries);
    let data_source = match source.data_secret {
        Some(_) => DataKeysSource::Derived,
        None => DataKeysSource::File,
    };
    let loaded = keys::load(
        &target.join(KEYS_DIR),
        data_source,
        source.data_secret.as_ref(),
    )
    .await?;
    let key_check = check(loaded.provider, &copied.samples)?;
    if let Some(file) = &copied.entry.file {
        let path = target.join(file);
        listed.insert(
            file.clone(),
            blocking(move || files::hash_file(&path)).await?,
        );
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        melo_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: Timestamp::now().to_string(),
        database: copied.entry,
        keys: loaded.entry,
        key_check,
        files: listed,
    };
    {
        let (manifest, target) = (manifest.clone(), target.to_owned());
        blocking(move || {
            manifest.write(&target)?;
            files::sync_dir(&target);
            Ok(())
        })
        .await?;
    }
    verify(target, source.data_secret.as_ref()).await?;
    tracing::info!(
        target: "melo::audit",
        event = "backup_written",
        database = ?manifest.database.kind,
        schema_version = manifest.database.schema_version,
        values_checked = manifest.key_check.opened(),
        "backup written"
    );
    Ok(BackupReport {
        dir: target.to_owned(),
        manifest,
        dump_command: copied.dump_command,
    })
}

/// The database part as copied, with the samples the key check opens.
struct Copied {
    entry: DatabaseEntry,
    samples: Samples,
    dump_command: Option<String>,
}

// `options` is about the MySQL dump only.
#[cfg_attr(not(feature = "mysql"), allow(unused_variables))]
async fn copy_database(
    source: &Layout,
    target: &Path,
    options: &BackupOptions,
) -> Result<Copied, BackupError> {
    match &source.database {
        #[cfg(feature = "sqlite")]
        Database::Sqlite(path) => {
            let (path, dest) = (path.clone(), target.join(super::manifest::SQLITE_FILE));
            blocking(move || {
                super::sqlite::snapshot(&path, &dest)?;
                let conn = super::sqlite::open_copy(&dest)?;
                Ok(Copied {
                    entry: DatabaseEntry {
                        kind: DatabaseKind::Sqlite,
                        file: Some(super::manifest::SQLITE_FILE.to_owned()),
                        schema_version: super::sqlite::schema_version(&conn)?,
                        dump_command: None,
                    },
                    samples: super::sqlite::sample(&conn)?,
                    dump_command: None,
                })
            })
            .await
        }
        #[cfg(feature = "mysql")]
        Database::Mysql(url) => copy_mysql(url, target, options).await,
    }
}

#[cfg(feature = "mysql")]
async fn copy_mysql(
    url: &crate::config::Secret,
    target: &Path,
    options: &BackupOptions,
) -> Result<Copied, BackupError> {
    use super::manifest::DUMP_FILE;
    use super::mysql::{self, DumpPlan};
    use super::MysqlDump;

    let pool = mysql::connect(url).await?;
    let schema_version = mysql::schema_version(&pool)
        .await?
        .ok_or_else(|| BackupError::Database("the database holds no melo schema".into()))?;
    let plan = DumpPlan::new(url)?;
    let program = match &options.mysql_dump {
        MysqlDump::Auto => mysql::find_dump_program(),
        MysqlDump::Program(p) => Some(p.clone()),
        MysqlDump::Skip => None,
    };
    let out = target.join(DUMP_FILE);
    let (file, recorded, dump_command) = match program {
        Some(program) => {
            let shown = plan.display(&program.display().to_string());
            let out = out.clone();
            blocking(move || plan.run(&program, &out)).await?;
            (Some(DUMP_FILE.to_owned()), shown, None)
        }
        None => (
            None,
            plan.display("mariadb-dump"),
            Some(plan.for_operator(&out)),
        ),
    };
    // The live database: a dump is a snapshot of its own, so no row is recorded; restore
    // samples the loaded dump again.
    let samples = mysql::sample(&pool).await?;
    pool.close().await;
    Ok(Copied {
        entry: DatabaseEntry {
            kind: DatabaseKind::Mysql,
            file,
            schema_version,
            dump_command: Some(recorded),
        },
        samples,
        dump_command,
    })
}
