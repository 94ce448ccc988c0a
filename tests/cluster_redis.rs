//! Two nodes on Redis (issue 6): the two-node scenario over a real Redis bus, and a Redis
//! restart under running nodes: they keep serving, no acknowledged message is lost, and live
//! delivery across nodes resumes once Redis is back. The two-node scenarios run on one Redis
//! server and again on a Redis Cluster.
//!
//! Needs `MELO_TEST_REDIS_URL`, and `MELO_TEST_REDIS_CLUSTER_URL` (the cluster's seed URLs
//! separated by commas) for the cluster runs (CI sets both; unset skips with a note, set but
//! unreachable fails). With `MELO_TEST_MYSQL_URL` set too (CI), both nodes share a fresh database on that
//! MySQL server as their store; otherwise one in-memory store. The restart test runs its own `redis-server` on
//! a free port, so the shared server is never disturbed.

// The fresh-database guard of the audit test; this file uses only part of it.
#[allow(dead_code, unreachable_pub)]
#[path = "zk_audit/backends.rs"]
mod backends;
mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::realtime::{make_contacts, online, relay, Target};
use common::ws::{is, WsClient};
use common::{new_user, test_config, TestServer};
use melo::{Ephemeral, MemoryStore, RedisEphemeral, Store};

/// The Redis deployment the nodes share.
#[derive(Clone, Copy, Debug)]
enum Deployment {
    /// One server: `MELO_TEST_REDIS_URL`.
    Single,
    /// A Redis Cluster: `MELO_TEST_REDIS_CLUSTER_URL`, its seeds separated by commas.
    Cluster,
}

impl Deployment {
    fn var(self) -> &'static str {
        match self {
            Self::Single => "MELO_TEST_REDIS_URL",
            Self::Cluster => "MELO_TEST_REDIS_CLUSTER_URL",
        }
    }

    fn url(self) -> Option<String> {
        match std::env::var(self.var()) {
            Ok(u) if !u.is_empty() => Some(u),
            _ => {
                eprintln!("{} is unset: skipping this Redis test", self.var());
                None
            }
        }
    }
}

fn redis_url() -> Option<String> {
    Deployment::Single.url()
}

/// A node's ephemeral state on `url` (one URL, or cluster seeds separated by commas) under
/// `prefix` (both nodes share the prefix).
async fn redis(url: &str, prefix: &str) -> Arc<dyn Ephemeral> {
    match RedisEphemeral::connect(url).await {
        Ok(e) => {
            assert_eq!(
                e.is_cluster(),
                url.contains(','),
                "cluster mode iff several seeds"
            );
            Arc::new(e.with_prefix(prefix))
        }
        // Not the URL: it may carry a password.
        Err(e) => panic!("the Redis test URL is set but Redis is unreachable: {e}"),
    }
}

/// Two nodes; with `MELO_TEST_MYSQL_URL` they share a fresh MySQL database (the tests of this
/// file run in parallel, so they must not migrate one shared database at once), dropped with
/// the returned guard.
async fn nodes(url: &str) -> (TestServer, TestServer, Option<backends::MysqlDb>) {
    nodes_with(url, test_config()).await
}

async fn nodes_with(
    url: &str,
    config: melo::Config,
) -> (TestServer, TestServer, Option<backends::MysqlDb>) {
    let (mut nodes, db) = cluster_of(2, url, config).await;
    let n2 = nodes.pop().expect("node 2");
    let n1 = nodes.pop().expect("node 1");
    (n1, n2, db)
}

/// `count` nodes on one store and one Redis (see [`nodes`]).
async fn cluster_of(
    count: usize,
    url: &str,
    config: melo::Config,
) -> (Vec<TestServer>, Option<backends::MysqlDb>) {
    let prefix = format!("melo-cluster-{}:", uuid::Uuid::now_v7().simple());
    let (store, db): (Arc<dyn Store>, _) = match backends::env_url("MELO_TEST_MYSQL_URL") {
        Some(u) => {
            let (db, store) = backends::MysqlDb::create(&u).await;
            (store, Some(db))
        }
        None => (Arc::new(MemoryStore::new()), None),
    };
    let mut nodes = Vec::with_capacity(count);
    for _ in 0..count {
        let e = redis(url, &prefix).await;
        nodes.push(TestServer::start_node(config.clone(), store.clone(), e).await);
    }
    (nodes, db)
}

/// Three nodes on `deployment`: the two-node scenario between nodes 1 and 3, then between 3
/// and 2, each time with a bystander node that holds no socket of the users involved (frames
/// are addressed to the right node among several).
async fn three_nodes(deployment: Deployment) {
    let Some(url) = deployment.url() else { return };
    let (nodes, _db) = cluster_of(3, &url, test_config()).await;
    let t: Vec<Target> = nodes.iter().map(Target::of).collect();
    common::cluster::two_nodes(&t[0], &t[2]).await;
    common::cluster::two_nodes(&t[2], &t[1]).await;
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_over_redis() {
    three_nodes(Deployment::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_over_a_redis_cluster() {
    three_nodes(Deployment::Cluster).await;
}

/// The two-node scenario on `deployment`.
async fn two_nodes(deployment: Deployment) {
    let Some(url) = deployment.url() else { return };
    let (n1, n2, _db) = nodes(&url).await;
    common::cluster::two_nodes(&Target::of(&n1), &Target::of(&n2)).await;
    n1.stop().await;
    n2.stop().await;
}

/// Two nodes on `deployment` share one HTTP rate-limit budget.
async fn shared_http_budget(deployment: Deployment) {
    let Some(url) = deployment.url() else { return };
    let mut config = test_config();
    config.limits.rate_limit_calls = 3;
    let (n1, n2, _db) = nodes_with(&url, config).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_over_redis() {
    two_nodes(Deployment::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_over_redis_cluster() {
    two_nodes(Deployment::Cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_budget_is_shared_over_redis() {
    shared_http_budget(Deployment::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_budget_is_shared_over_redis_cluster() {
    shared_http_budget(Deployment::Cluster).await;
}

struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (MELO_TEST_REDIS_URL is set, so Redis is installed)");
        let s = Self { child, port };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("private redis-server did not start on {port}");
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

async fn delivery(ws: &mut WsClient, id: &str, within: Duration) {
    ws.recv_where(
        &format!("relay_delivery {id}"),
        |f| is(f, "relay_delivery") && f["message_id"] == id,
        within,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_loses_nothing_and_live_delivery_resumes() {
    if redis_url().is_none() {
        return;
    }
    let port = free_port();
    let server = RedisServer::start(port);
    let url = format!("redis://127.0.0.1:{}", server.port);
    let (n1, n2, _db) = nodes(&url).await;
    let (t1, t2) = (Target::of(&n1), Target::of(&n2));
    let a = new_user(&t1.client, "rra").await;
    let b = new_user(&t1.client, "rrb").await;
    make_contacts(&t1, &a, &b).await;
    let mut wa = online(&t1, &a).await;
    let mut wb = online(&t2, &b).await;
    let m1 = relay(&mut wa, &a, &b, "UlItMQ==", "rr-1").await;
    delivery(&mut wb, &m1, Duration::from_secs(10)).await;

    // Redis goes away: both nodes keep serving, and a message is still acknowledged.
    server.stop();
    assert_eq!(t1.client.get("/healthz", None).await.status, 200);
    let st = t2.client.get("/status", None).await;
    assert_eq!(st.status, 200);
    assert_eq!(st.body["status"], "degraded", "{}", st.body);
    let m2 = relay(&mut wa, &a, &b, "UlItMg==", "rr-2").await;

    // Redis returns (empty: it keeps nothing): the bus resubscribes and live delivery across
    // nodes resumes; the message sent during the outage arrives too (from B's queue).
    let server = RedisServer::start(port);
    let mut resumed = false;
    for i in 0..30 {
        let m = relay(&mut wa, &a, &b, "UlItMw==", &format!("rr-3-{i}")).await;
        if wb
            .try_recv_where(
                |f| is(f, "relay_delivery") && f["message_id"] == m.as_str(),
                Duration::from_millis(500),
            )
            .await
            .is_some()
        {
            resumed = true;
            break;
        }
    }
    assert!(
        resumed,
        "live delivery across nodes resumed after Redis came back"
    );
    delivery(&mut wb, &m2, Duration::from_secs(10)).await;
    // A socket opened now gets everything acknowledged before it, nothing lost.
    wb.ack_and_close().await;
    wa.ack_and_close().await;
    n1.stop().await;
    n2.stop().await;
    server.stop();
}
