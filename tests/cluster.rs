//! Two server nodes in one process sharing one store and one ephemeral state/bus (the in-memory
//! backends): messages, receipts, presence, typing, groups, calls, revocations and rate limits
//! work across nodes (issue 6; the same scenario runs on MySQL + Redis where configured).

mod common;

use std::sync::Arc;

use common::realtime::Target;
use common::{test_config, TestServer};
use melo::{Ephemeral, MemoryEphemeral, MemoryStore, Store};

async fn pair(config: melo::Config) -> (TestServer, TestServer) {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let eph: Arc<dyn Ephemeral> = Arc::new(MemoryEphemeral::new());
    let n1 = TestServer::start_node(config.clone(), store.clone(), eph.clone()).await;
    let n2 = TestServer::start_node(config, store, eph).await;
    (n1, n2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_act_as_one_server() {
    let (n1, n2) = pair(test_config()).await;
    common::cluster::two_nodes(&Target::of(&n1), &Target::of(&n2)).await;
    n1.stop().await;
    n2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_budget_is_shared() {
    let mut config = test_config();
    config.limits.rate_limit_calls = 3;
    let (n1, n2) = pair(config).await;
    for c in [&n1.client, &n2.client, &n1.client] {
        assert_eq!(c.get("/status", None).await.status, 200);
    }
    n2.client
        .get("/status", None)
        .await
        .assert_error(429, "rate_limited");
    n1.stop().await;
    n2.stop().await;
}
