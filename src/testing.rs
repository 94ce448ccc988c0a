//! Conformance suites for backends written outside this crate (feature `testing`).
//!
//! Melo's own backends ([`MemoryStore`](crate::MemoryStore), `SqliteStore`, `MysqlStore`,
//! [`MemoryEphemeral`](crate::MemoryEphemeral), `RedisEphemeral`) all pass one behaviour suite
//! per trait. These functions run the same suites against a backend of yours (PostgreSQL,
//! FoundationDB, …), from your own tests:
//!
//! - [`store_conformance`] checks a [`Store`]: users, sessions, contacts, messages and device
//!   queues (sequence numbers, acknowledgements, byte bounds, trimming), push registrations,
//!   avatars, chats and invites, message management, sealed-column paging and compare-and-set,
//!   operator tools, account erasure, read markers, imports and scheduled messages.
//! - [`ephemeral_conformance`] checks an [`Ephemeral`] backend: values with expiry, conditional
//!   writes under concurrency, counters, the rate-limit window and block, deadlines taken once
//!   each, publish/subscribe and `ping`.
//!
//! Each suite calls your factory once per case, so every case starts from a fresh backend
//! (for a database: a fresh schema or database of its own). The cases run one after the
//! other; a case that finds a wrong answer panics with a message naming the case, such as
//! ``store conformance case `queue_ack` failed: …``, which fails the calling test. To run one
//! case per test (for parallelism, or to see every failure at once), list them with
//! [`store_case_names`] / [`ephemeral_case_names`] and run one with [`store_case`] /
//! [`ephemeral_case`].
//!
//! The cases need a Tokio runtime with the time driver (`#[tokio::test]` gives one). The
//! ephemeral cases wait on real time (about five seconds in all) so that backends outside the
//! process run them unchanged, and they name their keys `test:<unique id>:…`, so a shared
//! server can run them side by side.
//!
//! ```no_run
//! // tests/conformance.rs of your backend's crate, with
//! // `melo = { version = "…", features = ["testing"] }` in [dev-dependencies].
//! use std::sync::Arc;
//!
//! use melo::{MemoryEphemeral, MemoryStore};
//!
//! #[tokio::test]
//! async fn my_store_conforms() {
//!     // Replace `MemoryStore::new()` with your store on a fresh database.
//!     melo::testing::store_conformance(|| async { Arc::new(MemoryStore::new()) }).await;
//! }
//!
//! #[tokio::test]
//! async fn my_ephemeral_conforms() {
//!     melo::testing::ephemeral_conformance(|| async { Arc::new(MemoryEphemeral::new()) }).await;
//! }
//! # fn main() {}
//! ```

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;

use crate::ephemeral::{conformance as ephemeral_suite, Ephemeral};
use crate::store::{conformance as store_suite, Store};

/// Runs every store conformance case, each against a fresh store from `make`.
///
/// # Panics
///
/// When the store gives a wrong answer or an error in any case, with a message naming the case
/// and the failed check.
pub async fn store_conformance<S, F, Fut>(mut make: F)
where
    S: Store,
    F: FnMut() -> Fut,
    Fut: Future<Output = Arc<S>>,
{
    for (name, case) in store_suite::cases() {
        let store: Arc<dyn Store> = make().await;
        run("store", name, case(store)).await;
    }
}

/// The names of the store conformance cases, in the order [`store_conformance`] runs them.
pub fn store_case_names() -> Vec<&'static str> {
    store_suite::cases().into_iter().map(|(n, _)| n).collect()
}

/// Runs the store conformance case `name` (one of [`store_case_names`]) against `store`.
///
/// # Panics
///
/// When `name` is not a case, or the store fails the case (the message names it).
pub async fn store_case(name: &str, store: Arc<dyn Store>) {
    let Some((name, case)) = store_suite::cases().into_iter().find(|(n, _)| *n == name) else {
        panic!("no store conformance case is named `{name}`");
    };
    run("store", name, case(store)).await;
}

/// Runs every ephemeral conformance case, each against a fresh backend from `make`.
///
/// # Panics
///
/// When the backend gives a wrong answer or an error in any case, with a message naming the
/// case and the failed check.
pub async fn ephemeral_conformance<E, F, Fut>(mut make: F)
where
    E: Ephemeral,
    F: FnMut() -> Fut,
    Fut: Future<Output = Arc<E>>,
{
    for (name, case) in ephemeral_suite::cases() {
        let backend: Arc<dyn Ephemeral> = make().await;
        run("ephemeral", name, case(backend)).await;
    }
}

/// The names of the ephemeral conformance cases, in the order [`ephemeral_conformance`] runs
/// them.
pub fn ephemeral_case_names() -> Vec<&'static str> {
    ephemeral_suite::cases()
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

/// Runs the ephemeral conformance case `name` (one of [`ephemeral_case_names`]) against
/// `backend`.
///
/// # Panics
///
/// When `name` is not a case, or the backend fails the case (the message names it).
pub async fn ephemeral_case(name: &str, backend: Arc<dyn Ephemeral>) {
    let Some((name, case)) = ephemeral_suite::cases()
        .into_iter()
        .find(|(n, _)| *n == name)
    else {
        panic!("no ephemeral conformance case is named `{name}`");
    };
    run("ephemeral", name, case(backend)).await;
}

/// Awaits one case; a panic inside it is raised again with the suite and case named.
async fn run(suite: &str, name: &str, case: impl Future<Output = ()>) {
    if let Err(panic) = AssertUnwindSafe(case).catch_unwind().await {
        let detail = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        panic!("{suite} conformance case `{name}` failed: {detail}");
    }
}
