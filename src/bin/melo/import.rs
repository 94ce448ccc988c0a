//! `melo import-original`: moves a deployment of the original Python server into this Melo's
//! store (see `melo::import` and docs/import-original.md). The original's settings have names
//! of their own (`ORIGINAL_*`, `--from-*`): Melo's `DB_URL`, `REDIS_URL` and
//! `ENCRYPTION_KEY_STR` keep meaning Melo's.

use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use melo::import::{ImportOptions, Importer, OriginalDb, OriginalKey, OriginalRedis};
use melo::{Migrations, Store};

use crate::open::{data_dir, keys_dir, open_keys, open_store};
use crate::settings::Settings;

/// How the report is printed.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum ReportFormat {
    /// A table of counts and one line per problem row.
    Text,
    /// One JSON document.
    Json,
}

/// `melo import-original` flags.
#[derive(Args, Debug)]
pub(crate) struct ImportArgs {
    /// The original server's MySQL database: its DB_URL (`mysql://`, `mysql+aiomysql://`, …).
    #[arg(
        long,
        env = "ORIGINAL_DB_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    from_db_url: String,
    /// The original server's Redis, with its database number: its REDIS_URL. Device tokens are
    /// read from it; unset: not imported (apps then log in with their password).
    #[arg(
        long,
        env = "ORIGINAL_REDIS_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    from_redis_url: Option<String>,
    /// The original server's field-encryption key: its ENCRYPTION_KEY_STR (URL-safe base64 of
    /// 32 bytes). Not Melo's ENCRYPTION_KEY_STR; prefer the variable to the flag (process lists
    /// show flags).
    #[arg(
        long,
        env = "ORIGINAL_ENCRYPTION_KEY_STR",
        hide_env_values = true,
        value_name = "KEY"
    )]
    from_key: String,
    /// Read everything and report what a run would do; write nothing (not even Melo's keys or
    /// schema).
    #[arg(long)]
    dry_run: bool,
    /// Report format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    report: ReportFormat,
    /// Users read from the original per page (1-10000).
    #[arg(long, value_name = "ROWS", default_value_t = ImportOptions::default().user_batch,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch: u32,
}

/// Melo's store and keys for a dry run: opened without writing. A data directory without a
/// database (or keys) is compared as empty.
async fn dry_run_target(
    settings: &Settings,
) -> anyhow::Result<(Arc<dyn Store>, Arc<dyn melo::KeyProvider>)> {
    let secret = settings
        .encryption_key
        .as_ref()
        .map(|s| s.expose().to_owned());
    let keys = melo::import::dry_run_keys(&keys_dir(settings), secret.as_deref())
        .await
        .context("reading Melo's keys")?;
    let fresh_sqlite = settings.db_url.is_none() && !data_dir(settings).join("melo.db").exists();
    let store: Arc<dyn Store> = if fresh_sqlite {
        Arc::new(melo::MemoryStore::new())
    } else {
        open_store(settings, Migrations::Verify)
            .await
            .context("a dry run does not migrate Melo's database: run `melo migrate` first")?
    };
    Ok((store, keys))
}

pub(crate) async fn run(settings: &Settings, args: ImportArgs) -> anyhow::Result<()> {
    let key = OriginalKey::parse(&args.from_key)
        .map_err(|e| anyhow::anyhow!("ORIGINAL_ENCRYPTION_KEY_STR: {e}"))?;
    let db = OriginalDb::connect(&args.from_db_url)
        .await
        .context("ORIGINAL_DB_URL")?;
    let redis = match args.from_redis_url.as_deref().map(str::trim) {
        Some(url) if !url.is_empty() => Some(
            OriginalRedis::connect(url)
                .await
                .context("ORIGINAL_REDIS_URL")?,
        ),
        _ => None,
    };
    let (store, keys): (Arc<dyn Store>, Arc<dyn melo::KeyProvider>) = if args.dry_run {
        dry_run_target(settings).await?
    } else {
        let keys = Arc::new(open_keys(settings).await?);
        (open_store(settings, Migrations::Apply).await?, keys)
    };
    let options = ImportOptions {
        dry_run: args.dry_run,
        user_batch: args.batch,
        avatar_max_bytes: settings.config.push.avatar_max_bytes,
        device_token_ttl_secs: settings.config.auth.device_token_ttl,
        ..ImportOptions::default()
    };
    let report = Importer::new(store, keys, options)
        .run(&key, &db, redis.as_ref())
        .await;
    db.close().await;
    let report = report?;
    match args.report {
        ReportFormat::Text => print!("{}", report.to_text()),
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(())
}
