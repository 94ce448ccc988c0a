//! `server rotate-keys`: add a data-key version, or move every sealed value and blind index to
//! the current version (see `melo::rekey`). Uses the same settings as the server, so it finds
//! the same database and key directory; safe to run while servers serve.

use std::sync::Arc;

use anyhow::{bail, Context};
use melo::rekey::{self, RekeyOptions};
use melo::FileKeyProvider;

use crate::settings::Settings;

/// Servers re-read the key file every minute; the default activation leaves them two.
const DEFAULT_ACTIVATE_IN: i64 = 120;

/// A parsed `rotate-keys` command line.
#[derive(Debug)]
pub(crate) enum Command {
    /// `--new-key [--activate-in SECONDS]`.
    NewKey { activate_in: i64 },
    /// `[--dry-run] [--batch ROWS]`.
    Rewrite(RekeyOptions),
}

impl Command {
    pub(crate) fn parse(args: &[&str]) -> anyhow::Result<Self> {
        let mut new_key = false;
        let mut activate_in = None;
        let mut options = RekeyOptions::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match *arg {
                "--new-key" => new_key = true,
                "--dry-run" => options.dry_run = true,
                "--activate-in" => {
                    let v = it
                        .next()
                        .context("--activate-in needs a number of seconds")?;
                    activate_in = Some(
                        v.parse::<i64>()
                            .ok()
                            .filter(|s| (0..=30 * 86_400).contains(s))
                            .context("--activate-in must be 0..=2592000 seconds")?,
                    );
                }
                "--batch" => {
                    let v = it.next().context("--batch needs a number of rows")?;
                    options.batch = v
                        .parse::<u32>()
                        .ok()
                        .filter(|b| (1..=10_000).contains(b))
                        .context("--batch must be 1..=10000")?;
                }
                other => bail!("rotate-keys: unknown argument {other:?}"),
            }
        }
        match (new_key, activate_in) {
            (true, a) => {
                if options.dry_run {
                    bail!("--dry-run applies to the rewrite, not to --new-key");
                }
                Ok(Command::NewKey {
                    activate_in: a.unwrap_or(DEFAULT_ACTIVATE_IN),
                })
            }
            (false, Some(_)) => bail!("--activate-in goes with --new-key"),
            (false, None) => Ok(Command::Rewrite(options)),
        }
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
            drop(crate::open_keys(settings).await?);
            let at = melo::model::Timestamp::now().secs() + activate_in;
            let added = FileKeyProvider::add_data_key(&crate::keys_dir(settings), at)
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
            let keys = Arc::new(crate::open_keys(settings).await?);
            let store = crate::open_store(settings).await?;
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
