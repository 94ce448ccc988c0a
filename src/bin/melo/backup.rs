//! `melo backup <dir>`, `melo restore <dir>` and `melo verify-backup <dir>`: the database and the
//! keys that open it, with a manifest (see `melo::backup` and docs/operations-backup.md).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use melo::backup::{self, BackupOptions, Layout, MysqlDump, RestoreOptions};

use crate::settings::Settings;

/// `melo backup` flags.
#[derive(Args, Debug)]
pub(crate) struct BackupArgs {
    /// A new or empty directory for the backup (created 0700).
    dir: PathBuf,
    /// MySQL: do not run mariadb-dump; print the command that completes the backup instead.
    #[arg(long)]
    no_dump: bool,
}

/// `melo restore` flags.
#[derive(Args, Debug)]
pub(crate) struct RestoreArgs {
    /// The backup directory (as `melo backup` wrote it).
    dir: PathBuf,
    /// Restore over an existing database and key directory (stop the server first): they are
    /// renamed to `<name>.before-restore-<seconds>`, never deleted.
    #[arg(long)]
    force: bool,
}

/// `melo verify-backup` flags.
#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    /// The backup directory.
    dir: PathBuf,
}

/// The server's data layout from the settings: the same database and key directory `serve` uses.
fn layout(settings: &Settings) -> anyhow::Result<Layout> {
    Ok(Layout::from_db_url(
        Path::new(&settings.data_dir),
        settings.db_url.as_deref(),
        settings.encryption_key.clone(),
    )?)
}

pub(crate) async fn run_backup(settings: &Settings, args: BackupArgs) -> anyhow::Result<()> {
    let options = BackupOptions {
        mysql_dump: if args.no_dump {
            MysqlDump::Skip
        } else {
            MysqlDump::Auto
        },
    };
    let report = backup::backup(&layout(settings)?, &args.dir, &options)
        .await
        .with_context(|| format!("backup into {}", args.dir.display()))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(command) = &report.dump_command {
        eprintln!("the backup is incomplete until the database is dumped into it: {command}");
    }
    Ok(())
}

pub(crate) async fn run_restore(settings: &Settings, args: RestoreArgs) -> anyhow::Result<()> {
    let options = RestoreOptions { force: args.force };
    let report = backup::restore(&args.dir, &layout(settings)?, &options)
        .await
        .with_context(|| format!("restore from {}", args.dir.display()))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

pub(crate) async fn run_verify(settings: &Settings, args: VerifyArgs) -> anyhow::Result<()> {
    let verified = backup::verify(&args.dir, settings.encryption_key.as_ref())
        .await
        .with_context(|| format!("verify {}", args.dir.display()))?;
    println!("{}", serde_json::to_string_pretty(&verified)?);
    Ok(())
}
