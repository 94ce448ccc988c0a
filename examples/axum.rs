//! Melo mounted in an axum application under `/chat`.
//!
//! ```text
//! cargo run --example axum --features axum -- 127.0.0.1:3000
//! curl http://127.0.0.1:3000/hello            # the embedder's own route
//! curl http://127.0.0.1:3000/chat/status      # Melo
//! open http://127.0.0.1:3000/chat/app/        # Melo's web client; its socket is /chat/ws
//! ```
//!
//! How it is mounted:
//!
//! - **Prefix**: `http.path_prefix = "/chat"` moves every Melo route (the API, the socket, the
//!   web client, `/docs`, `/openapi.json`, health checks) under `/chat`, and Melo's service is
//!   the router's `fallback_service`: every path the embedder does not route goes to Melo with
//!   its URI unchanged; Melo answers its JSON 404 for paths outside `/chat`. (`nest_service`
//!   would not do: axum 0.8 strips the nesting prefix from the URI before calling the service,
//!   so Melo would see `/ws` where it expects `/chat/ws`. `route_service("/chat/{*rest}", …)`
//!   keeps the URI too, but misses `/chat` itself.)
//! - **Client address**: served with `into_make_service_with_connect_info::<SocketAddr>()`,
//!   every request carries axum's `ConnectInfo<SocketAddr>`, which Melo reads (feature `axum`)
//!   for its per-IP rate limits, socket cap and session IPs. Without it every client would be
//!   127.0.0.1. Behind a reverse proxy, set `http.trusted_proxies` as usual.
//! - **WebSocket**: `axum::serve` serves connections with upgrades, which the socket needs.
//! - **Shutdown**: `Melo::shutdown` closes the open sockets (1001) and stops Melo's tasks;
//!   `axum::serve(…).with_graceful_shutdown` stops accepting connections.
//!
//! The store here is in memory and the keys are generated at start: a demonstration, not a
//! deployment (see `examples/server.rs` and the `melo` binary for persistent ones).

#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use melo::{Config, Melo, MemoryStore, StaticKeys};

/// Where Melo lives in the embedder's URL space.
pub const PREFIX: &str = "/chat";

/// Melo's settings for this mount: the defaults with the path prefix.
pub fn config() -> Config {
    let mut config = Config::default();
    config.http.path_prefix = PREFIX.to_owned();
    config
}

/// The embedder's application: its own routes, and Melo (built with [`config`]) for the rest.
pub fn app(melo: &Melo) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { "The embedder's home page. Chat: /chat/app/\n" }),
        )
        .route("/hello", get(|| async { "Hello from the embedder\n" }))
        .fallback_service(melo.service())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let melo = Melo::builder(
        Arc::new(MemoryStore::new()),
        Arc::new(StaticKeys::generate()?),
    )
    .config(config())
    .build()?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("http://{}/ (Melo under {PREFIX})", listener.local_addr()?);
    axum::serve(
        listener,
        app(&melo).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    melo.shutdown().await;
    Ok(())
}
