//! # Melo — a privacy-first messenger server
//!
//! Melo stores and relays opaque, client-encrypted ciphertext. Every piece of personal data it
//! must keep (phones, names, nicknames, IPs, user agents, activity times, keys) is sealed with
//! AES-256-GCM at rest; equality lookups go through keyed blind indexes.
//!
//! The crate is a library: a [`MeloBuilder`] wires pluggable backends — a [`Store`], an
//! [`Ephemeral`] state, a [`KeyProvider`] and a [`PushProvider`] — into a raw hyper 1.x service.
//! The `melo` binary (`src/bin/melo`, feature `cli`) is what operators run.
//!
//! ```no_run
//! use std::sync::Arc;
//! use melo::{Melo, MemoryStore, StaticKeys};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = Arc::new(StaticKeys::generate()?);
//! let melo = Melo::builder(Arc::new(MemoryStore::new()), keys).build()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! melo.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`builder`] — [`MeloBuilder`] → [`Melo`]
//! - [`backup`] — consistent backups of the database and keys, verification, restore
//! - [`server`] — accept loop, graceful shutdown, [`MeloService`] for embedders
//! - [`config`] — [`Config`]: plain data, documented defaults
//! - `http` — router, extractors, the one error mapping, handlers (private)
//! - [`service`] — every business rule (users, auth, sessions)
//! - [`store`] — durable state: [`Store`] traits, [`MemoryStore`], `SqliteStore`, `MysqlStore`
//! - [`ephemeral`] — fast lossy state: [`Ephemeral`], [`MemoryEphemeral`], `RedisEphemeral`
//! - [`crypto`] — [`KeyProvider`], PII sealing, blind indexes, JWT, passwords
//! - [`push`] — [`PushProvider`], [`NoopPush`], [`RecordingPush`]
//! - [`model`] — ids and domain types
//! - [`admin`], [`rekey`] — operator tools working on the store from a process of their own

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod admin;
#[cfg(any(feature = "sqlite", feature = "mysql"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "mysql"))))]
pub mod backup;
pub mod builder;
pub mod config;
pub mod crypto;
pub mod ephemeral;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod http;
#[cfg(all(feature = "mysql", feature = "redis"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "mysql", feature = "redis"))))]
pub mod import;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod push;
pub mod rekey;
pub mod server;
pub mod service;
pub mod store;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub mod tls;
mod ws;

pub use async_trait::async_trait;
pub use builder::MeloBuilder;
pub use config::Config;
pub use crypto::{FileKeyProvider, KeyProvider, StaticKeys};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use ephemeral::RedisEphemeral;
pub use ephemeral::{Ephemeral, MemoryEphemeral};
pub use error::BuildError;
/// Body type of every response of [`MeloService`].
pub use http::response::Body as ResponseBody;
pub use push::{NoopPush, PushProvider, RecordingPush};
pub use server::{Melo, MeloService};
#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub use store::MysqlStore;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use store::SqliteStore;
pub use store::{MemoryStore, Migrations, Store};

/// The README's Rust examples, compiled as doctests so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The Rust examples of `docs/custom-backend.md`, compiled as doctests.
#[cfg(all(doctest, feature = "testing"))]
#[doc = include_str!("../docs/custom-backend.md")]
pub struct CustomBackendDoctests;
