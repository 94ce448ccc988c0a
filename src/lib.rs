//! # Melo — a privacy-first messenger server
//!
//! Melo stores and relays opaque, client-encrypted ciphertext. Every piece of personal data it
//! must keep (phones, names, profiles, session IPs and user agents, chat names, invite codes,
//! push subscriptions, avatars, queued events) is sealed with AES-256-GCM at rest, bound to its
//! table, column and row; equality lookups go through keyed blind indexes, and an ephemeral
//! backend outside the process (Redis) sees blind-tagged key names and sealed values only.
//!
//! The crate is a library: a [`MeloBuilder`] wires pluggable backends (a [`Store`], an
//! [`Ephemeral`] state and node bus, a [`KeyProvider`] and a [`PushProvider`]) into a raw
//! hyper 1 service with HTTP routes and a WebSocket endpoint. The `melo` binary
//! (`src/bin/melo/`, feature `cli`) is the same library with settings read from the
//! environment, the way operators run it.
//!
//! ## Embedding in a few lines
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
//! melo.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! [`Melo::service`] gives a hyper and tower service ([`MeloService`]) for an accept loop of
//! your own or an axum `Router` (see [`ClientAddr`] and `http.path_prefix`). [`hooks`] lets an
//! embedder vet registrations ([`RegistrationPolicy`]), follow what happens ([`Melo::events`])
//! and send system messages ([`Melo::send_system_message`]). [`Melo::builder`] defaults everything but
//! the store and the keys: [`MemoryEphemeral`], the Web Push provider (or [`NoopPush`]),
//! [`Config::default`] and fresh [`metrics::Metrics`].
//!
//! ## How a request flows
//!
//! 1. [`MeloBuilder::build`] validates the [`Config`], wraps the backends (blinding for an
//!    ephemeral backend outside the process, per-operation timing when metrics are on),
//!    assembles one shared core (backends, keys, settings) and the services over it, and starts
//!    the background tasks: key maintenance, ephemeral upkeep, the queue and history sweep,
//!    the call timers, the scheduled-message claimer, the revocation poller and, with several
//!    nodes, the bus publisher and listeners.
//! 2. The transports decode and encode only. The HTTP side (private `http` module: router,
//!    extractors, the error envelope, one handler per route, `/openapi.json`) calls one
//!    service per request; the WebSocket side (private `ws` module: upgrade, admission, the
//!    per-socket task) moves frames between a socket and its delivery feed. Neither touches a
//!    store.
//! 3. The services (the private `service` module) hold every business rule. They seal personal data before it
//!    reaches a store, and one error table maps each service error to its HTTP status, its
//!    WebSocket reason and, where it ends a socket, its close code.
//! 4. Delivery is at least once: a message is stored once with
//!    one queue entry per recipient device, the node's hub hands pre-serialized frames to the
//!    sockets it holds, the cluster bus carries the rest to the nodes that hold the other
//!    sockets, and each socket's window replays what was not acknowledged.
//!
//! ## Module map
//!
//! - [`builder`]: [`MeloBuilder`] → [`Melo`]; configuration checks → [`BuildError`] ([`error`]).
//! - [`server`]: [`Melo`]: `serve`, `serve_tls`, `serve_ws`, `serve_ws_tls`, `service`,
//!   `shutdown`; the accept loop, the connection cap, graceful drain, background tasks;
//!   [`MeloService`].
//! - [`config`]: [`Config`], plain data with documented defaults (the library never reads the
//!   environment).
//! - [`hooks`]: for embedders: [`RegistrationPolicy`], the [`Event`] stream, system messages
//!   ([`MessageTarget`]).
//! - `service` (private): every business rule: accounts and authentication, users, sessions, devices,
//!   contacts, messages and history, chats, message management, presence and typing, calls,
//!   push, avatars, scheduled messages, limits; the delivery engine, the hub of this node's
//!   sockets, the read caches, the WebSocket frames as types, and the cluster notes between
//!   nodes on the bus. Its error type is public: [`Error`].
//! - [`store`]: durable state: the [`Store`] traits (one per aggregate, [`store::DeliveryStore`]
//!   the narrow hot path), [`MemoryStore`], `SqliteStore` (feature `sqlite`), `MysqlStore`
//!   (feature `mysql`), with migrations embedded ([`Migrations`]).
//! - [`ephemeral`]: fast, lossy state and the node bus: [`Ephemeral`], [`MemoryEphemeral`],
//!   `RedisEphemeral` (feature `redis`: one server or Redis Cluster).
//! - [`crypto`]: [`KeyProvider`], [`StaticKeys`], [`FileKeyProvider`] (a shared key directory
//!   with JWT rotation), sealing and blind indexes ([`crypto::Pii`]), RS256 JWTs, passwords.
//! - [`push`]: [`PushProvider`], [`NoopPush`], [`RecordingPush`], VAPID keys, and
//!   `WebPushProvider` (feature `web-push`) with its public-address-only HTTPS client.
//! - [`metrics`]: the Prometheus families, metered store and ephemeral wrappers,
//!   `Melo::serve_metrics`.
//! - [`model`]: ids, timestamps, users, sessions, messages and chats.
//! - [`admin`], [`rekey`], `backup` (feature `sqlite` or `mysql`), `import` (features `mysql`
//!   and `redis`): operator tools that work on a deployment's store from a process of their
//!   own (`melo admin`, `melo rotate-keys`, `melo backup`, `melo import-original`).
//! - [`logging`]: the size-rotated log file of the binary.
//! - `tls` (feature `tls`): rustls configuration and certificate reloading.
//! - `testing` (feature `testing`): the store and ephemeral conformance suites, for backends
//!   written outside the crate.
//!
//! ## Feature flags
//!
//! `cli`, `sqlite`, `mysql`, `redis`, `web-push` and `tls` are on by default. `axum` makes
//! [`MeloService`] read axum's `ConnectInfo<SocketAddr>` as the client address. `testing` exports
//! the conformance suites; `fuzzing` (hidden) exposes entry points for the cargo-fuzz targets.
//! An embedder can turn the defaults off and keep what it needs, e.g.
//! `default-features = false, features = ["mysql", "redis"]`.
//!
//! ## Further reading
//!
//! The repository's `docs/` directory holds the guides: `docs/embedding.md` (builder, serving,
//! backends, feature flags), `docs/custom-backend.md` (running the conformance suites against
//! a backend of your own), `docs/hooks.md`, `docs/protocol.md` (the client contract),
//! `docs/configuration.md` (every setting of the binary), `docs/operations.md`,
//! `docs/security.md`, `docs/several-nodes.md`, `docs/performance.md`, and `docs/design.md`
//! (the architecture as built and the measurements behind it).

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
pub mod hooks;
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
pub(crate) mod service;
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
pub use hooks::{
    Event, EventStream, MessageTarget, RegistrationAttempt, RegistrationDecision,
    RegistrationPolicy,
};
/// Body type of every response of [`MeloService`].
pub use http::response::Body as ResponseBody;
pub use push::{NoopPush, PushProvider, RecordingPush};
pub use server::{ClientAddr, Melo, MeloService};
pub use service::{AccountDeleted, Error, FieldError};
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

/// The Rust examples of `docs/embedding.md`, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/embedding.md")]
pub struct EmbeddingDoctests;

/// The Rust examples of `docs/hooks.md`, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/hooks.md")]
pub struct HooksDoctests;

/// The Rust examples of `docs/custom-backend.md`, compiled as doctests.
#[cfg(all(doctest, feature = "testing"))]
#[doc = include_str!("../docs/custom-backend.md")]
pub struct CustomBackendDoctests;
