//! The Melo server operators run: configuration from the environment (and an optional `.env`),
//! zero setup by default (SQLite and keys under `./melo-data`).
//!
//! ```text
//! cargo run --release --example server
//! cargo run --release --example server -- --check-config   # print the effective settings
//! curl 127.0.0.1:8088/status
//! ```
//!
//! Every variable is documented in `.env.example` and the README. Every setting is validated
//! before anything starts; an error names the variable.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod env;
mod logging;
mod rekey;
mod settings;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use melo::crypto::KeyPolicy;
use melo::{FileKeyProvider, Melo, SqliteStore, Store};
use tokio::net::TcpListener;

const USAGE: &str = "usage: server [--check-config]
       server rotate-keys [--dry-run] [--new-key [--activate-in SECONDS]] [--batch ROWS]

  --check-config  validate the settings (environment and ./.env), print them with secrets
                  redacted, and exit
  rotate-keys     data-key rotation (see the README): --new-key adds a data-key version that
                  becomes current after --activate-in seconds (default 120); without it, every
                  sealed value and blind index is moved to the current version and a JSON
                  report is printed; --dry-run only counts";

fn main() -> std::process::ExitCode {
    match start() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line naming what to fix (no backtrace: this is an operator's error message).
            eprintln!("melo: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn start() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut rotate = None;
    let check = match args.as_slice() {
        [] => false,
        ["--check-config"] => true,
        ["--help" | "-h"] => {
            println!("{USAGE}");
            return Ok(());
        }
        ["rotate-keys", rest @ ..] => {
            rotate = Some(rekey::Command::parse(rest).with_context(|| USAGE.to_owned())?);
            false
        }
        _ => bail!("{USAGE}"),
    };
    // `.env` is applied before any thread exists (setting variables later is racy).
    env::load_dotenv(std::path::Path::new(".env")).context("reading .env")?;
    let env = env::Env::from_process();
    let settings = settings::Settings::from_env(&env)?;
    if check {
        println!("{}", serde_json::to_string_pretty(&settings.redacted())?);
        return Ok(());
    }
    if let Some(command) = rotate {
        return tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(rekey::run(&settings, command));
    }
    // Dropped at the end of `main`: flushes the log files.
    let _log_guards = settings.log.init()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(settings))
}

async fn run(settings: settings::Settings) -> anyhow::Result<()> {
    let mut config = settings.config.clone();
    let keys = open_keys(&settings).await?;
    let store = open_store(&settings).await?;
    let ephemeral: Option<Arc<dyn melo::Ephemeral>> = match settings.redis_url.as_deref() {
        Some(url) => Some(Arc::new(melo::RedisEphemeral::connect(url).await.context(
            "REDIS_URL: cannot reach Redis (check the URL, or each seed of a cluster, and that \
             the server or cluster is up)",
        )?)),
        None => None,
    };
    let ip = settings.host;
    let addr = SocketAddr::new(ip, config.http.http_port);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    config.http.http_port = local.port();
    let tls = tls_config(&settings)?;
    config.http.hsts = tls.is_some();
    log_fd_limit();

    // WS_PORT: the second, WebSocket-only listener (any path); 0 disables it.
    let ws_listener = match config.http.ws_port {
        0 => None,
        port => {
            let addr = SocketAddr::new(ip, port);
            Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?,
            )
        }
    };
    if let Some(l) = &ws_listener {
        config.http.ws_port = l.local_addr()?.port();
    }

    let metrics_listener = match settings.metrics_addr {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding METRICS_ADDR {addr}"))?,
        ),
        None => None,
    };

    let mut builder = Melo::builder(store, Arc::new(keys)).config(config);
    if let Some(key) = settings.vapid.clone() {
        builder = builder.vapid(key);
    }
    if let Some(e) = ephemeral {
        // Shared ephemeral state means this node may be one of several: join the cluster.
        builder = builder.ephemeral(e).cluster(true);
    }
    let melo = builder.build()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("melo listening on {scheme}://{local}");
    if let Some(l) = &ws_listener {
        let ws_scheme = if tls.is_some() { "wss" } else { "ws" };
        println!(
            "melo websocket listening on {ws_scheme}://{}",
            l.local_addr()?
        );
    }
    if let Some(l) = &metrics_listener {
        println!(
            "melo metrics listening on http://{}/metrics",
            l.local_addr()?
        );
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let signal = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        signal.cancel();
    });
    let http = async {
        match &tls {
            Some(tls) => {
                melo.serve_tls(listener, tls.clone(), stop.clone().cancelled_owned())
                    .await
            }
            None => melo.serve(listener, stop.clone().cancelled_owned()).await,
        }
    };
    let ws = async {
        match (ws_listener, &tls) {
            (None, _) => Ok(()),
            (Some(l), Some(tls)) => {
                melo.serve_ws_tls(l, tls.clone(), stop.clone().cancelled_owned())
                    .await
            }
            (Some(l), None) => melo.serve_ws(l, stop.clone().cancelled_owned()).await,
        }
    };
    let metrics = async {
        match metrics_listener {
            None => Ok(()),
            Some(l) => melo.serve_metrics(l, stop.clone().cancelled_owned()).await,
        }
    };
    let (a, b, m) = tokio::join!(http, ws, metrics);
    a?;
    b?;
    m?;
    melo.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Creates the data directory readable by the server's user only (it holds the database).
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// `TLS_CERT_FILE` + `TLS_KEY_FILE` (PEM) turn TLS on; the pair is re-read every
/// `TLS_RELOAD_SECONDS` when the files changed (certificate renewals need no restart).
fn tls_config(
    settings: &settings::Settings,
) -> anyhow::Result<Option<Arc<tokio_rustls::rustls::ServerConfig>>> {
    let Some((cert, key)) = &settings.tls else {
        return Ok(None);
    };
    let reloading = melo::tls::ReloadingCert::load(cert, key)
        .with_context(|| format!("TLS_CERT_FILE={cert:?} / TLS_KEY_FILE={key:?}"))?;
    let every = Duration::from_secs(settings.tls_reload_secs);
    let watched = reloading.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tick.tick().await;
            match watched.reload_if_changed() {
                Ok(true) => tracing::info!("TLS certificate reloaded"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "TLS certificate not reloaded; the previous one stays")
                }
            }
        }
    });
    Ok(Some(reloading.server_config()?))
}

/// Reports the open-file limit: each socket needs one descriptor.
fn log_fd_limit() {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    if let Some(line) = limits.lines().find(|l| l.starts_with("Max open files")) {
        let soft = line.split_whitespace().nth(3).unwrap_or("?");
        tracing::info!(soft_limit = soft, "open-file limit");
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down");
}

/// The data directory (created 0700) and the key provider under `<data dir>/keys`.
pub(crate) async fn open_keys(settings: &settings::Settings) -> anyhow::Result<FileKeyProvider> {
    let config = &settings.config;
    private_dir(&data_dir(settings)).with_context(|| format!("creating {}", settings.data_dir))?;
    let policy = KeyPolicy {
        rotation: Duration::from_secs(config.auth.jwt_key_rotation_days * 86_400),
        token_ttl: config.auth.token_ttl(),
        // Every node sharing the key directory loads a new key within one key check; wait at
        // least two (and at least the default 5 minutes) before it signs.
        publish_delay: KeyPolicy::default().publish_delay.max(Duration::from_secs(
            config.auth.key_check_secs.max(1).saturating_mul(2),
        )),
    };
    let secret = settings
        .encryption_key
        .as_ref()
        .map(|s| s.expose().to_owned());
    FileKeyProvider::open(keys_dir(settings), policy, secret.as_deref())
        .await
        .context("opening keys")
}

fn data_dir(settings: &settings::Settings) -> PathBuf {
    PathBuf::from(&settings.data_dir)
}

pub(crate) fn keys_dir(settings: &settings::Settings) -> PathBuf {
    data_dir(settings).join("keys")
}

/// The store `DB_URL` names (SQLite under the data directory by default).
pub(crate) async fn open_store(settings: &settings::Settings) -> anyhow::Result<Arc<dyn Store>> {
    let data_dir = data_dir(settings);
    Ok(match settings.db_url.as_deref() {
        None => Arc::new(
            SqliteStore::open(data_dir.join("melo.db"))
                .await
                .context("opening SQLite")?,
        ),
        Some("memory:") => {
            tracing::warn!("DB_URL=memory: nothing is persisted; for tests and measurements only");
            Arc::new(melo::MemoryStore::new())
        }
        #[cfg(feature = "mysql")]
        Some(url) if url.starts_with("mysql:") => Arc::new(
            melo::MysqlStore::connect(url)
                .await
                .context("connecting to MySQL")?,
        ),
        #[cfg(not(feature = "mysql"))]
        Some(url) if url.starts_with("mysql:") => {
            bail!("DB_URL is a MySQL URL, but this build lacks the `mysql` feature")
        }
        Some(url) => Arc::new(SqliteStore::connect(url).await.context("opening SQLite")?),
    })
}
