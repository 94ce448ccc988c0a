//! Logging of the `melo` binary: human lines on a terminal, JSON lines otherwise; optionally a
//! size-rotated JSON file (`LOG_FILE`) and a separate audit trail (`AUDIT_LOG_FILE`) with the
//! security events only (target `melo::audit`: registrations, logins, failed logins, lockouts,
//! session revocations, key rotations), which carry ids only.

use std::io::IsTerminal;

use anyhow::Context;
use melo::logging::RotatingFile;
use serde::Serialize;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use clap::Args;

/// Log output flags.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Logging")]
pub(crate) struct LogArgs {
    /// `auto` (human lines on a terminal, JSON lines otherwise), `human` or `json`.
    #[arg(long, env = "LOG_FORMAT", global = true, default_value = "auto",
          value_parser = ["auto", "human", "json"])]
    log_format: String,
    /// Also write JSON lines to this file (size-rotated).
    #[arg(long, env = "LOG_FILE", global = true, value_name = "PATH")]
    log_file: Option<String>,
    /// Security events only (target `melo::audit`), JSON lines, never dropped.
    #[arg(long, env = "AUDIT_LOG_FILE", global = true, value_name = "PATH")]
    audit_log_file: Option<String>,
    /// Rotate a log file at this size, bytes (at least 4096).
    #[arg(long, env = "LOG_MAX_BYTES", global = true, default_value_t = 10 * 1024 * 1024)]
    log_max_bytes: u64,
    /// Rotated files kept per log (at most 1000).
    #[arg(long, env = "LOG_MAX_FILES", global = true, default_value_t = 5)]
    log_max_files: usize,
    /// The log filter (tracing's EnvFilter syntax, e.g. `info,melo=debug`).
    #[arg(
        long = "log",
        env = "RUST_LOG",
        global = true,
        default_value = "info",
        value_name = "FILTER"
    )]
    rust_log: String,
}

/// Log output settings.
#[derive(Debug, Serialize)]
pub(crate) struct LogSettings {
    /// `LOG_FORMAT`: `auto` (human on a terminal, JSON otherwise), `human` or `json`.
    pub(crate) format: String,
    /// `LOG_FILE`: also write JSON lines here.
    pub(crate) file: Option<String>,
    /// `AUDIT_LOG_FILE`: security events only, JSON lines.
    pub(crate) audit_file: Option<String>,
    /// `LOG_MAX_BYTES`: rotate a file at this size. Default 10 MB.
    pub(crate) max_bytes: u64,
    /// `LOG_MAX_FILES`: rotated files kept per log. Default 5.
    pub(crate) max_files: usize,
    /// `RUST_LOG`: the filter. Default `info`.
    pub(crate) filter: String,
}

/// A value that is set and not blank.
fn set(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

impl LogSettings {
    pub(crate) fn from_args(args: &LogArgs) -> anyhow::Result<Self> {
        let format = args.log_format.clone();
        let max_bytes = args.log_max_bytes;
        if max_bytes < 4096 {
            anyhow::bail!("LOG_MAX_BYTES={max_bytes} must be at least 4096");
        }
        let max_files = args.log_max_files;
        if max_files > 1000 {
            anyhow::bail!("LOG_MAX_FILES={max_files} must be at most 1000");
        }
        let filter = args.rust_log.trim().to_owned();
        EnvFilter::try_new(&filter).with_context(|| format!("RUST_LOG={filter:?}"))?;
        Ok(Self {
            format,
            file: set(&args.log_file),
            audit_file: set(&args.audit_log_file),
            max_bytes,
            max_files,
            filter,
        })
    }

    /// Installs the subscriber, writing to standard output (the server) or standard error (the
    /// tools, whose standard output is their result). Keep the guards until exit: dropping them
    /// flushes the files.
    pub(crate) fn init(&self, to_stderr: bool) -> anyhow::Result<Vec<WorkerGuard>> {
        let mut guards = Vec::new();
        let terminal = if to_stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        let json = match self.format.as_str() {
            "json" => true,
            "human" => false,
            _ => !terminal,
        };
        let out = move || -> Box<dyn std::io::Write> {
            if to_stderr {
                Box::new(std::io::stderr())
            } else {
                Box::new(std::io::stdout())
            }
        };
        let filter = || EnvFilter::new(&self.filter);
        let stdout = if json {
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(out)
                .with_filter(filter())
                .boxed()
        } else {
            tracing_subscriber::fmt::layer()
                .with_ansi(terminal)
                .with_writer(out)
                .with_filter(filter())
                .boxed()
        };
        let mut file_layer = None;
        if let Some(path) = &self.file {
            let file = RotatingFile::open(path, self.max_bytes, self.max_files)
                .with_context(|| format!("LOG_FILE={path:?}"))?;
            let (writer, guard) = tracing_appender::non_blocking(file);
            guards.push(guard);
            file_layer = Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_ansi(false)
                    .with_writer(writer)
                    .with_filter(filter()),
            );
        }
        let mut audit_layer = None;
        if let Some(path) = &self.audit_file {
            let file = RotatingFile::open(path, self.max_bytes, self.max_files)
                .with_context(|| format!("AUDIT_LOG_FILE={path:?}"))?;
            // The audit trail must not drop events under load: block instead.
            let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(false)
                .finish(file);
            guards.push(guard);
            audit_layer = Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_ansi(false)
                    .with_writer(writer)
                    .with_filter(Targets::new().with_target("melo::audit", tracing::Level::INFO)),
            );
        }
        tracing_subscriber::registry()
            .with(stdout)
            .with(file_layer)
            .with(audit_layer)
            .try_init()
            .context("installing the log subscriber")?;
        Ok(guards)
    }
}
