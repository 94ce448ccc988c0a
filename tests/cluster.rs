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

/// B overlaps two nodes while A watches: B on node 1, then also on node 2, closes node 1 first,
/// then node 2 (A hears `offline`), then comes back on node 1: A must hear `online` again, even
/// though node 1 last announced `online` itself (its memory of that is stale), and nothing is
/// announced twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_follows_a_user_across_nodes() {
    use common::realtime::{make_contacts, online};
    use common::ws::{is, WsClient, WAIT};
    let (n1, n2) = pair(test_config()).await;
    let (t1, t2) = (Target::of(&n1), Target::of(&n2));
    let a = common::new_user(&t1.client, "pfa").await;
    let b = common::new_user(&t1.client, "pfb").await;
    let b2 = common::realtime::second_device(&t1, &b).await;
    make_contacts(&t1, &a, &b).await;
    let mut wa = online(&t1, &a).await;
    let status = |s: &'static str| {
        let uid = b.uid.clone();
        move |f: &serde_json::Value| {
            is(f, "status_change") && f["user_id"] == uid.as_str() && f["status"] == s
        }
    };
    async fn wait(ws: &mut WsClient, what: &str, pred: impl Fn(&serde_json::Value) -> bool) {
        ws.recv_where(what, pred, WAIT).await;
    }
    let wb1 = online(&t1, &b).await;
    wait(&mut wa, "B online", status("online")).await;
    let wb2 = online(&t2, &b2).await;
    // B was announced `online` already (the shared state says so): node 2 repeats nothing.
    wa.expect_no(
        "a second `online` of B",
        |f| is(f, "status_change") && f["user_id"] == b.uid.as_str(),
        std::time::Duration::from_secs(1),
    )
    .await;
    wb1.ack_and_close().await;
    wb2.ack_and_close().await;
    wait(&mut wa, "B offline", status("offline")).await;
    let wb1 = online(&t1, &b).await;
    wait(&mut wa, "B online again", status("online")).await;
    wb1.ack_and_close().await;
    wa.ack_and_close().await;
    n1.stop().await;
    n2.stop().await;
}
