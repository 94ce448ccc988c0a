//! `melo`: the Melo server and its operator tools.
//!
//! ```text
//! melo                      # = melo serve: SQLite and keys under ./melo-data, API on 127.0.0.1:8088
//! melo --help               # every setting, its variable and its default
//! melo check-config         # the effective settings, secrets redacted
//! melo migrate              # apply schema migrations (then `melo serve --no-migrate`)
//! melo rotate-keys          # data-key rotation
//! melo backup DIR           # database + keys + manifest, while serving; `melo restore DIR`
//! melo admin user lock UID  # and unlock, delete, sessions, revoke; `admin stats`, `admin invite`
//! melo import-original      # move a deployment of the original server (ORIGINAL_DB_URL, …)
//! ```
//!
//! Every setting is a flag backed by an environment variable (also read from `./.env`); every
//! one is validated before anything starts, and an error names the variable.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod admin;
mod args;
mod backup;
mod erase;
#[cfg(feature = "mysql")]
mod import;
mod logging;
mod open;
mod rekey;
mod serve;
mod settings;

use anyhow::Context;
use clap::{Parser, Subcommand};
use melo::Migrations;

use crate::settings::{Settings, SettingsArgs};

/// Melo: a privacy-first messenger server. Without a command, `serve`.
#[derive(Parser, Debug)]
#[command(name = "melo", version, about, long_about = None, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: SettingsArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (the default): the API, the WebSocket and the metrics listeners.
    Serve {
        /// Do not apply schema migrations; refuse to start unless the database is exactly at
        /// this release's schema (run `melo migrate` first).
        #[arg(long)]
        no_migrate: bool,
    },
    /// Validate the settings and print them as JSON, secrets redacted; start nothing.
    CheckConfig,
    /// Apply the schema migrations this release needs, then exit.
    Migrate,
    /// Data-key rotation: add a key version, or move every sealed value and blind index to the
    /// current one. Safe while servers run.
    RotateKeys(rekey::RotateArgs),
    /// Write a consistent backup of the database and the keys that open it, with a manifest,
    /// while the server runs.
    Backup(backup::BackupArgs),
    /// Restore a backup into a data directory without a database or keys (or, with --force,
    /// over them, moving them aside); refuses a backup whose files or keys do not check out.
    Restore(backup::RestoreArgs),
    /// Check a backup (every file's hash, the keys against the data) without restoring it.
    VerifyBackup(backup::VerifyArgs),
    /// Operator tools on a running deployment's database: lock, unlock, delete, sessions,
    /// revoke, stats, invites.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Move a deployment of the original Python server into this Melo: users, contacts, chats,
    /// members, read markers and device tokens from its MySQL and Redis
    /// (docs/import-original.md).
    #[cfg(feature = "mysql")]
    ImportOriginal(import::ImportArgs),
}

fn main() -> std::process::ExitCode {
    // `.env` is applied before any thread exists (setting variables later is racy) and before
    // the flags are parsed (they fall back to the variables). Variables already set win.
    if let Err(e) = load_dotenv() {
        eprintln!("melo: {e:#}");
        return std::process::ExitCode::FAILURE;
    }
    tidy_environment();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            eprintln!("melo: {}", one_line(&e));
            return std::process::ExitCode::from(2);
        }
    };
    match start(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line naming what to fix (no backtrace: this is an operator's error message).
            eprintln!("melo: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Settings read from the environment are trimmed, and a blank one counts as unset where the
/// setting has a default (`BCRYPT_COST=` is the default cost; `STUN_URLS=` is no STUN server).
/// Runs before any thread exists.
fn tidy_environment() {
    let command = <Cli as clap::CommandFactory>::command();
    for arg in command.get_arguments() {
        let Some(var) = arg.get_env() else { continue };
        let Some(value) = std::env::var_os(var) else {
            continue;
        };
        let Some(value) = value.to_str() else {
            continue;
        };
        let trimmed = value.trim();
        if trimmed.is_empty() && !arg.get_default_values().is_empty() {
            std::env::remove_var(var);
        } else if trimmed.len() != value.len() {
            std::env::set_var(var, trimmed);
        }
    }
}

/// A usage error as one line that names the environment variable behind the flag, e.g.
/// `invalid value 'eighty' for '--ws-port <WS_PORT>': … (from WS_PORT or --ws-port)`.
fn one_line(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let rendered = e.render().to_string();
    let first = rendered.lines().next().unwrap_or_default();
    let mut line = first.strip_prefix("error: ").unwrap_or(first).to_owned();
    if let (clap::error::ErrorKind::MissingRequiredArgument, Some(ContextValue::Strings(args))) =
        (e.kind(), e.get(ContextKind::InvalidArg))
    {
        // "the following required arguments were not provided:" lists them on the next lines.
        line = format!("{} {}", line.trim_end_matches(':'), args.join(", "));
        return line;
    }
    if let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) {
        let long = arg
            .trim_start_matches('-')
            .split([' ', '='])
            .next()
            .unwrap_or_default();
        let command = <Cli as clap::CommandFactory>::command();
        let env = command
            .get_arguments()
            .find(|a| a.get_long() == Some(long))
            .and_then(|a| a.get_env())
            .map(|v| v.to_string_lossy().into_owned());
        if let Some(var) = env {
            line.push_str(&format!(" (from {var} or --{long})"));
        }
    }
    line
}

/// `./.env`, if there is one; unlike `dotenvy::dotenv` it does not search parent directories.
fn load_dotenv() -> anyhow::Result<()> {
    match dotenvy::from_path(".env") {
        Ok(()) => Ok(()),
        Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        // dotenvy's message quotes the line, which may hold a secret: name the place only.
        Err(dotenvy::Error::LineParse(_, at)) => anyhow::bail!(
            "reading .env: a line does not parse (at character {at} of it; not shown, it may \
             hold a secret): quote values with spaces, `#`, `$` or `\\` in single quotes"
        ),
        Err(e) => Err(e).context("reading .env"),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn start(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::from_args(&cli.settings)?;
    let command = cli.command.unwrap_or(Command::Serve { no_migrate: false });
    match command {
        Command::Serve { no_migrate } => {
            // Dropped at the end: flushes the log files.
            let _log_guards = settings.log.init(false)?;
            let migrations = if no_migrate {
                Migrations::Verify
            } else {
                Migrations::Apply
            };
            runtime()?.block_on(serve::run(settings, migrations))
        }
        Command::CheckConfig => {
            println!("{}", serde_json::to_string_pretty(&settings.redacted())?);
            Ok(())
        }
        Command::Migrate => {
            let _log_guards = settings.log.init(true)?;
            runtime()?.block_on(async {
                let store = open::open_store(&settings, Migrations::Apply).await?;
                store.ping().await.context("the database does not answer")?;
                println!("database schema is up to date");
                Ok(())
            })
        }
        Command::Backup(args) => {
            let _log_guards = settings.log.init(true)?;
            runtime()?.block_on(backup::run_backup(&settings, args))
        }
        Command::Restore(args) => {
            let _log_guards = settings.log.init(true)?;
            runtime()?.block_on(backup::run_restore(&settings, args))
        }
        Command::VerifyBackup(args) => {
            let _log_guards = settings.log.init(true)?;
            runtime()?.block_on(backup::run_verify(&settings, args))
        }
        Command::Admin(command) => {
            let _log_guards = settings.log.init(true)?;
            runtime()?.block_on(admin::run(&settings, command))
        }
        Command::RotateKeys(args) => {
            let _log_guards = settings.log.init(true)?;
            let command = args.command()?;
            runtime()?.block_on(rekey::run(&settings, command))
        }
        #[cfg(feature = "mysql")]
        Command::ImportOriginal(args) => {
            let _log_guards = settings.log.init(true)?;
            runtime()?.block_on(import::run(&settings, args))
        }
    }
}
