//! The conformance suites exported by feature `testing`, run from outside the crate through the
//! public API only, as a third-party backend's tests would run them.

use std::sync::Arc;

use melo::testing::{
    ephemeral_case, ephemeral_case_names, ephemeral_conformance, store_case, store_case_names,
    store_conformance,
};
use melo::{Ephemeral, MemoryEphemeral, MemoryStore, Store};

#[tokio::test]
async fn memory_store_passes_the_exported_store_suite() {
    let mut made = 0;
    store_conformance(|| {
        made += 1;
        async { Arc::new(MemoryStore::new()) }
    })
    .await;
    let names = store_case_names();
    assert_eq!(made, names.len(), "one fresh store per case");
    assert!(names.len() >= 80, "the whole suite is exported: {names:?}");
    assert!(names.contains(&"queue_ack"));
}

#[tokio::test]
async fn memory_ephemeral_passes_the_exported_ephemeral_suite() {
    let mut made = 0;
    ephemeral_conformance(|| {
        made += 1;
        async { Arc::new(MemoryEphemeral::new()) }
    })
    .await;
    let names = ephemeral_case_names();
    assert_eq!(made, names.len(), "one fresh backend per case");
    assert!(names.contains(&"bus") && names.contains(&"deadlines"));
}

#[tokio::test]
async fn one_case_runs_by_name() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    store_case("users_create_and_conflicts", store).await;
    let e: Arc<dyn Ephemeral> = Arc::new(MemoryEphemeral::new());
    ephemeral_case("counters", e).await;
}

#[tokio::test]
#[should_panic(expected = "no store conformance case is named `no_such_case`")]
async fn an_unknown_case_name_panics() {
    store_case("no_such_case", Arc::new(MemoryStore::new())).await;
}

/// A backend that breaks one rule (`take` leaves the value in place): the exported suite must
/// catch it and name the case, or a third party's broken backend would pass.
mod broken {
    use std::time::Duration;

    use bytes::Bytes;
    use melo::async_trait;
    use melo::ephemeral::{BusSubscription, EphemeralResult, RateDecision};

    use super::*;

    #[derive(Debug, Default)]
    struct TakeIsNotSingleUse(MemoryEphemeral);

    #[async_trait]
    impl Ephemeral for TakeIsNotSingleUse {
        async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> EphemeralResult<()> {
            self.0.set(key, value, ttl).await
        }
        async fn set_if_absent(
            &self,
            key: &str,
            value: &[u8],
            ttl: Duration,
        ) -> EphemeralResult<bool> {
            self.0.set_if_absent(key, value, ttl).await
        }
        async fn delete_if(&self, key: &str, value: &[u8]) -> EphemeralResult<bool> {
            self.0.delete_if(key, value).await
        }
        async fn get(&self, key: &str) -> EphemeralResult<Option<Vec<u8>>> {
            self.0.get(key).await
        }
        async fn take(&self, key: &str) -> EphemeralResult<Option<Vec<u8>>> {
            // The bug: reads without deleting.
            self.0.get(key).await
        }
        async fn delete(&self, key: &str) -> EphemeralResult<()> {
            self.0.delete(key).await
        }
        async fn incr(&self, key: &str, window: Duration) -> EphemeralResult<u64> {
            self.0.incr(key, window).await
        }
        async fn rate_limit(
            &self,
            key: &str,
            limit: u64,
            window: Duration,
            block: Duration,
        ) -> EphemeralResult<RateDecision> {
            self.0.rate_limit(key, limit, window, block).await
        }
        async fn schedule(&self, set: &str, member: &[u8], at_ms: i64) -> EphemeralResult<()> {
            self.0.schedule(set, member, at_ms).await
        }
        async fn take_due(
            &self,
            set: &str,
            now_ms: i64,
            max: usize,
        ) -> EphemeralResult<Vec<Vec<u8>>> {
            self.0.take_due(set, now_ms, max).await
        }
        async fn publish(&self, topic: &str, payload: Bytes) -> EphemeralResult<()> {
            self.0.publish(topic, payload).await
        }
        async fn subscribe(&self, topic: &str) -> EphemeralResult<BusSubscription> {
            self.0.subscribe(topic).await
        }
        async fn ping(&self) -> EphemeralResult<()> {
            self.0.ping().await
        }
    }

    #[tokio::test]
    #[should_panic(expected = "ephemeral conformance case `set_get_take_delete` failed")]
    async fn a_broken_backend_fails_with_the_case_named() {
        ephemeral_conformance(|| async { Arc::new(TakeIsNotSingleUse::default()) }).await;
    }
}
