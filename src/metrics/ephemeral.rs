//! [`MeteredEphemeral`]: any [`Ephemeral`] with per-operation latency and error metrics
//! (`melo_ephemeral_operation_duration_seconds{op}`, `melo_ephemeral_errors_total{op}`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Metrics, OpMeters};
use crate::ephemeral::{BusSubscription, Ephemeral, EphemeralResult, RateDecision};

/// An [`Ephemeral`] that measures every call of the one it wraps.
#[derive(Debug)]
pub struct MeteredEphemeral {
    inner: Arc<dyn Ephemeral>,
    ops: OpMeters,
}

impl MeteredEphemeral {
    /// Wraps `inner`, counting into `metrics`.
    pub fn new(inner: Arc<dyn Ephemeral>, metrics: &Metrics) -> Self {
        let ops = OpMeters::new(
            &[EPHEMERAL_OPS],
            &metrics.ephemeral_duration,
            &metrics.ephemeral_errors,
        );
        Self { inner, ops }
    }

    fn done<T>(&self, op: &str, started: Instant, r: &EphemeralResult<T>) {
        self.ops.observe(op, started, r.is_err());
    }
}

metered!(MeteredEphemeral, Ephemeral, EPHEMERAL_OPS {
    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> EphemeralResult<()>;
    fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> EphemeralResult<bool>;
    fn delete_if(&self, key: &str, value: &[u8]) -> EphemeralResult<bool>;
    fn get(&self, key: &str) -> EphemeralResult<Option<Vec<u8>>>;
    fn get_many(&self, keys: &[String]) -> EphemeralResult<Vec<Option<Vec<u8>>>>;
    fn take(&self, key: &str) -> EphemeralResult<Option<Vec<u8>>>;
    fn delete(&self, key: &str) -> EphemeralResult<()>;
    fn incr(&self, key: &str, window: Duration) -> EphemeralResult<u64>;
    fn rate_limit(&self, key: &str, limit: u64, window: Duration, block: Duration)
        -> EphemeralResult<RateDecision>;
    fn schedule(&self, set: &str, member: &[u8], at_ms: i64) -> EphemeralResult<()>;
    fn take_due(&self, set: &str, now_ms: i64, max: usize) -> EphemeralResult<Vec<Vec<u8>>>;
    fn publish(&self, topic: &str, payload: Bytes) -> EphemeralResult<()>;
    fn subscribe(&self, topic: &str) -> EphemeralResult<BusSubscription>;
    fn ping(&self) -> EphemeralResult<()>;
} async fn maintain(&self) {
    self.inner.maintain().await;
}
fn in_process(&self) -> bool {
    self.inner.in_process()
});
