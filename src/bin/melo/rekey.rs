//! `melo rotate-keys`: add a data-key version, or move every sealed value and blind index to
//! the current version (see `melo::rekey`). Uses the same settings as the server, so it finds
//! the same database and key directory; safe to run while servers serve.

use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use melo::rekey::{self, RekeyOptions};
use melo::FileKeyProvider;

use crate::settings::Settings;

/// Servers re-read the key file every minute; the default activation leaves them two.
const DEFAULT_ACTIVATE_IN: i64 = 120;

/// `melo rotate-keys` flags.
#[derive(Args, Debug)]
pub(crate) struct RotateArgs {
    /// Add a data-key version that becomes current after --activate-in seconds (instead of
    /// rewriting).
    #[arg(long)]
    new_key: bool,
    /// With --new-key: seconds until the new version seals (0-2592000). Servers re-read the key
    /// file every KEY_CHECK_SECONDS; the default leaves them two minutes. [default: 120]
    #[arg(long, value_name = "SECONDS", requires = "new_key",
          value_parser = clap::value_parser!(i64).range(0..=30 * 86_400))]
    activate_in: Option<i64>,
    /// Only count what a rewrite would change.
    #[arg(long, conflicts_with = "new_key")]
    dry_run: bool,
    /// Rows per batch of the rewrite (1-10000).
    #[arg(long, value_name = "ROWS", default_value_t = RekeyOptions::default().batch,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch: u32,
}

/// What `rotate-keys` does.
#[derive(Debug)]
pub(crate) enum Command {
    /// `--new-key [--activate-in SECONDS]`.
    NewKey { activate_in: i64 },
    /// `[--dry-run] [--batch ROWS]`.
    Rewrite(RekeyOptions),
}

impl RotateArgs {
    pub(crate) fn command(&self) -> anyhow::Result<Command> {
        if self.new_key {
            return Ok(Command::NewKey {
                activate_in: self.activate_in.unwrap_or(DEFAULT_ACTIVATE_IN),
            });
        }
        Ok(Command::Rewrite(RekeyOptions {
            dry_run: self.dry_run,
            batch: self.batch,
        }))
    }
}

pub(crate) async fn run(settings: &Settings, command: Command) -> anyhow::Result<()> {
    match command {
        Command::NewKey { activate_in } => {
            if settings.encryption_key.is_some() {
                bail!(
                    "ENCRYPTION_KEY_STR derives a single data-key version; rotation needs the \
                     key file (unset ENCRYPTION_KEY_STR to use <DATA_DIR>/keys/data-keys.json)"
                );
            }
            // Creates the key files on a first run, like the server would.
            drop(crate::open::open_keys(settings).await?);
            let at = melo::model::Timestamp::now().secs() + activate_in;
            let added = FileKeyProvider::add_data_key(&crate::open::keys_dir(settings), at)
                .await
                .context("adding a data key")?;
            println!(
                "{}",
                serde_json::json!({
                    "added_version": added.version,
                    "activates_at": added.activates_at,
                    "activates_in_seconds": activate_in,
                })
            );
            eprintln!(
                "data key version {} added; running servers load it within a minute and seal \
                 with it from its activation on. Then run `rotate-keys` to move old values.",
                added.version
            );
            Ok(())
        }
        Command::Rewrite(options) => {
            let keys = Arc::new(crate::open::open_keys(settings).await?);
            let store = crate::open::open_store(settings, melo::Migrations::Apply).await?;
            let report = rekey::rotate(store.as_ref(), keys, options, |t| {
                eprintln!(
                    "{:<20} rows {:>8}  stale {:>8}  rewritten {:>8}  changed meanwhile {:>4}  \
                     unreadable {:>4}",
                    t.table, t.rows, t.stale, t.rewritten, t.changed_meanwhile, t.unreadable
                );
            })
            .await
            .context("re-encrypting")?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if let Some((v, at)) = report.pending_version {
                let wait = at - melo::model::Timestamp::now().secs();
                eprintln!(
                    "data key version {v} activates in {wait} s; run rotate-keys again after that"
                );
            }
            if report.unreadable() > 0 {
                bail!(
                    "{} values could not be opened with any key version; they were left as they \
                     are",
                    report.unreadable()
                );
            }
            Ok(())
        }
    }
}
