//! Fast, lossy-by-design state shared by the nodes of one deployment, and the node bus.
//!
//! Holds what may be lost on restart: CSRF tokens, link codes, rate-limit buckets, failed-login
//! counters and locks, presence, typing, call state and its deadlines, and publish/subscribe
//! between nodes.
//! Services name keys after what they hold (`typing:{from}:{to}`); for a backend outside the
//! process the builder wraps it so that key names reach it as keyed blind tags and values
//! sealed (see `Blinded`), so neither Redis nor its `MONITOR` shows who is involved.
//!
//! Backends: [`MemoryEphemeral`] (one node, always compiled) and `RedisEphemeral` (feature
//! `redis`: shared by every node of a deployment).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

pub(crate) mod blind;
mod memory;
#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{RedisEphemeral, DEFAULT_PREFIX as REDIS_DEFAULT_PREFIX};
pub use memory::MemoryEphemeral;

#[cfg(any(test, feature = "testing"))]
pub(crate) mod conformance;

/// Errors of the ephemeral backend.
#[derive(Debug, thiserror::Error)]
pub enum EphemeralError {
    /// The backend cannot be reached or failed. Never shown to clients.
    #[error("ephemeral backend unavailable: {0}")]
    Unavailable(String),
}

/// Result alias of ephemeral calls.
pub type EphemeralResult<T> = Result<T, EphemeralError>;

/// Outcome of one request against a fixed-window limiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateDecision {
    /// Counted and allowed.
    Allowed,
    /// Refused; retry after this many seconds (≥ 1).
    Limited {
        /// Seconds until the key may try again.
        retry_after: u64,
    },
}

/// A subscription to one bus topic. Receives messages published after it was created; a
/// subscriber that falls more than its buffer behind skips ahead (the bus is lossy by design,
/// the store stays the source of truth).
pub struct BusSubscription {
    inner: Box<dyn BusReceiver>,
}

impl fmt::Debug for BusSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BusSubscription")
    }
}

impl BusSubscription {
    /// Wraps a backend receiver.
    pub fn new(inner: Box<dyn BusReceiver>) -> Self {
        Self { inner }
    }

    /// The next message; `None` once the bus is closed.
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.inner.recv().await
    }
}

/// A backend's receiving half of a topic subscription.
#[async_trait]
pub trait BusReceiver: Send {
    /// The next message; `None` once closed.
    async fn recv(&mut self) -> Option<Bytes>;
}

/// Ephemeral state and the node bus.
#[async_trait]
pub trait Ephemeral: Send + Sync + fmt::Debug + 'static {
    /// Stores `value` under `key` for `ttl`, replacing any previous value.
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> EphemeralResult<()>;
    /// Stores `value` under `key` for `ttl` only when `key` has no live value; true when stored.
    /// Atomic: of concurrent callers exactly one wins (locks, first-decision-wins state).
    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> EphemeralResult<bool>;
    /// Deletes `key` only while its live value equals `value`; true when deleted. Atomic.
    async fn delete_if(&self, key: &str, value: &[u8]) -> EphemeralResult<bool>;
    /// The live value of `key`.
    async fn get(&self, key: &str) -> EphemeralResult<Option<Vec<u8>>>;
    /// The live values of `keys`, in order, in one round trip on networked backends.
    async fn get_many(&self, keys: &[String]) -> EphemeralResult<Vec<Option<Vec<u8>>>> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            out.push(self.get(k).await?);
        }
        Ok(out)
    }
    /// Atomically reads and deletes `key` (single-use codes).
    async fn take(&self, key: &str) -> EphemeralResult<Option<Vec<u8>>>;
    /// Deletes `key`.
    async fn delete(&self, key: &str) -> EphemeralResult<()>;
    /// Increments a counter, creating it with lifetime `window` when absent; returns the new value.
    async fn incr(&self, key: &str, window: Duration) -> EphemeralResult<u64>;
    /// Fixed-window limiter: `limit` requests per `window` from the key's first request; the
    /// request after that is refused and blocks the key for `block`; then a new window starts.
    /// Atomic (one round trip on networked backends).
    async fn rate_limit(
        &self,
        key: &str,
        limit: u64,
        window: Duration,
        block: Duration,
    ) -> EphemeralResult<RateDecision>;
    /// Adds `member` to the deadline set `set`, due at `at_ms` (Unix milliseconds). The set is
    /// shared by every node; [`take_due`](Self::take_due) hands each member to exactly one of
    /// them, so work scheduled by a node that dies is done by another. Members should be
    /// unique (the blinding wrapper seals each one anew); whoever takes one checks that its
    /// work is still wanted.
    async fn schedule(&self, set: &str, member: &[u8], at_ms: i64) -> EphemeralResult<()>;
    /// Removes and returns up to `max` members of `set` due at or before `now_ms`, earliest
    /// first. Atomic: of concurrent callers on any node, each member goes to exactly one.
    async fn take_due(&self, set: &str, now_ms: i64, max: usize) -> EphemeralResult<Vec<Vec<u8>>>;
    /// Publishes to every current subscriber of `topic` on every node.
    async fn publish(&self, topic: &str, payload: Bytes) -> EphemeralResult<()>;
    /// Subscribes to `topic`.
    async fn subscribe(&self, topic: &str) -> EphemeralResult<BusSubscription>;
    /// Cheap round trip (`/readyz`, `/status`).
    async fn ping(&self) -> EphemeralResult<()>;
    /// Periodic upkeep (expiry sweeps); the server calls it from a background task.
    async fn maintain(&self) {}
    /// True when the state lives in this process only (nothing leaves it, nothing outlives it).
    /// Otherwise (the default) the builder blinds every key name and seals every value before
    /// they reach the backend.
    fn in_process(&self) -> bool {
        false
    }
}
