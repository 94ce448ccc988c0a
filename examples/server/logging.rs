//! Logging of the example server: human lines on a terminal, JSON lines otherwise; optionally a
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

use crate::env::Env;

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

impl LogSettings {
    pub(crate) fn from_env(env: &Env) -> anyhow::Result<Self> {
        let format = env.str("LOG_FORMAT").unwrap_or_else(|| "auto".into());
        if !matches!(format.as_str(), "auto" | "human" | "json") {
            anyhow::bail!("LOG_FORMAT={format:?} must be auto, human or json");
        }
        let mut max_bytes: u64 = 10 * 1024 * 1024;
        env.parse("LOG_MAX_BYTES", &mut max_bytes)
            .map_err(anyhow::Error::msg)?;
        if max_bytes < 4096 {
            anyhow::bail!("LOG_MAX_BYTES={max_bytes} must be at least 4096");
        }
        let mut max_files: usize = 5;
        env.parse("LOG_MAX_FILES", &mut max_files)
            .map_err(anyhow::Error::msg)?;
        if max_files > 1000 {
            anyhow::bail!("LOG_MAX_FILES={max_files} must be at most 1000");
        }
        let filter = env.str("RUST_LOG").unwrap_or_else(|| "info".into());
        EnvFilter::try_new(&filter).with_context(|| format!("RUST_LOG={filter:?}"))?;
        Ok(Self {
            format,
            file: env.str("LOG_FILE"),
            audit_file: env.str("AUDIT_LOG_FILE"),
            max_bytes,
            max_files,
            filter,
        })
    }

    /// Installs the subscriber. Keep the guards until exit: dropping them flushes the files.
    pub(crate) fn init(&self) -> anyhow::Result<Vec<WorkerGuard>> {
        let mut guards = Vec::new();
        let json = match self.format.as_str() {
            "json" => true,
            "human" => false,
            _ => !std::io::stdout().is_terminal(),
        };
        let filter = || EnvFilter::new(&self.filter);
        let stdout = if json {
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stdout)
                .with_filter(filter())
                .boxed()
        } else {
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::stdout().is_terminal())
                .with_writer(std::io::stdout)
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
