//! Assembling a Melo node by hand, as an embedder would: a MySQL store, Redis for the shared
//! ephemeral state and node bus, keys in a directory, and the API on one listener. Operators run
//! the `melo` binary instead, which does the same with every setting validated.
//!
//! ```text
//! DB_URL=mysql://root@127.0.0.1:3306/test REDIS_URL=redis://127.0.0.1:6379 \
//!     cargo run --example server
//! ```

#![allow(clippy::print_stdout)]

use std::sync::Arc;

use anyhow::Context;
use melo::crypto::KeyPolicy;
use melo::{Config, FileKeyProvider, Melo, MysqlStore, RedisEphemeral};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let db_url = std::env::var("DB_URL").context("set DB_URL=mysql://…")?;
    let redis_url = std::env::var("REDIS_URL").context("set REDIS_URL=redis://…")?;
    let key_dir = std::env::var("MELO_KEY_DIR").unwrap_or_else(|_| "./melo-keys".into());

    // Keys: JWT signing keys (rotated), data keys (AES-256-GCM seals, blind indexes), VAPID.
    // Every node of a deployment shares this directory.
    let keys = FileKeyProvider::open(&key_dir, KeyPolicy::default(), None).await?;
    // The store applies its migrations when it connects.
    let store = MysqlStore::connect(&db_url).await?;
    // Shared presence, typing, rate limits and the bus between nodes.
    let ephemeral = RedisEphemeral::connect(&redis_url).await?;

    let mut config = Config::default();
    config.http.http_port = 8088;
    let melo = Melo::builder(Arc::new(store), Arc::new(keys))
        .config(config)
        .ephemeral(Arc::new(ephemeral))
        .cluster(true)
        .build()?;

    let listener = TcpListener::bind(("127.0.0.1", 8088)).await?;
    println!("melo listening on http://{}", listener.local_addr()?);
    melo.serve(listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    melo.shutdown().await;
    Ok(())
}
