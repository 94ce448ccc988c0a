//! `melo serve`: the listeners (API, WebSocket, metrics), TLS with reloading certificates, and
//! a graceful stop on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use melo::Melo;
use tokio::net::TcpListener;

use crate::open::{open_keys, open_store};
use crate::settings::Settings;

pub(crate) async fn run(settings: Settings, migrate: melo::Migrations) -> anyhow::Result<()> {
    let mut config = settings.config.clone();
    let keys = open_keys(&settings).await?;
    let store = open_store(&settings, migrate).await?;
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

/// `TLS_CERT_FILE` + `TLS_KEY_FILE` (PEM) turn TLS on; the pair is re-read every
/// `TLS_RELOAD_SECONDS` when the files changed (certificate renewals need no restart).
fn tls_config(
    settings: &Settings,
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
