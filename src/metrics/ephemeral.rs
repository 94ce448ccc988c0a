//! [`MeteredEphemeral`]: any [`Ephemeral`] with per-operation latency and error metrics
//! (`melo_ephemeral_operation_duration_seconds{op}`, `melo_ephemeral_errors_total{op}`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use super::{Metrics, OpMeters};
use crate::ephemeral::{BusSubscription, Ephemeral, EphemeralResult, RateDecision};

const OPS: [&str; 11] = [
    "set",
    "set_if_absent",
    "delete_if",
    "get",
    "take",
    "delete",
    "incr",
    "rate_limit",
    "publish",
    "subscribe",
    "ping",
];

/// An [`Ephemeral`] that measures every call of the one it wraps.
#[derive(Debug)]
pub struct MeteredEphemeral {
    inner: Arc<dyn Ephemeral>,
    ops: OpMeters,
}

impl MeteredEphemeral {
    /// Wraps `inner`, counting into `metrics`.
    pub fn new(inner: Arc<dyn Ephemeral>, metrics: &Metrics) -> Self {
        let ops = OpMeters::new(&OPS, &metrics.ephemeral_duration, &metrics.ephemeral_errors);
        Self { inner, ops }
    }

    fn done<T>(&self, op: usize, started: Instant, r: &EphemeralResult<T>) {
        self.ops.observe(op, started, r.is_err());
    }
}

#[async_trait]
impl Ephemeral for MeteredEphemeral {
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> EphemeralResult<()> {
        timed!(self, 0, self.inner.set(key, value, ttl))
    }
    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> EphemeralResult<bool> {
        timed!(self, 1, self.inner.set_if_absent(key, value, ttl))
    }
    async fn delete_if(&self, key: &str, value: &[u8]) -> EphemeralResult<bool> {
        timed!(self, 2, self.inner.delete_if(key, value))
    }
    async fn get(&self, key: &str) -> EphemeralResult<Option<Vec<u8>>> {
        timed!(self, 3, self.inner.get(key))
    }
    async fn take(&self, key: &str) -> EphemeralResult<Option<Vec<u8>>> {
        timed!(self, 4, self.inner.take(key))
    }
    async fn delete(&self, key: &str) -> EphemeralResult<()> {
        timed!(self, 5, self.inner.delete(key))
    }
    async fn incr(&self, key: &str, window: Duration) -> EphemeralResult<u64> {
        timed!(self, 6, self.inner.incr(key, window))
    }
    async fn rate_limit(
        &self,
        key: &str,
        limit: u64,
        window: Duration,
        block: Duration,
    ) -> EphemeralResult<RateDecision> {
        timed!(self, 7, self.inner.rate_limit(key, limit, window, block))
    }
    async fn publish(&self, topic: &str, payload: Bytes) -> EphemeralResult<()> {
        timed!(self, 8, self.inner.publish(topic, payload))
    }
    async fn subscribe(&self, topic: &str) -> EphemeralResult<BusSubscription> {
        timed!(self, 9, self.inner.subscribe(topic))
    }
    async fn ping(&self) -> EphemeralResult<()> {
        timed!(self, 10, self.inner.ping())
    }
    async fn maintain(&self) {
        self.inner.maintain().await;
    }
}
