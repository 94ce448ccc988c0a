//! Two nodes while the bus loses notes (issue 16): every note node 1 publishes is lost, as when
//! its publish queue overflows, a subscriber lags or Redis drops the connection. What node 1
//! changes must still take effect on node 2 within the staleness bound (2 s), read from the
//! store: a revoked session's socket closes, a removed contact can no longer send, a removed
//! chat member stops receiving, and a device that logged in meanwhile gets every message.
//! Also presence with a shared ephemeral state: an invisible user's socket announces nothing.
//!
//! Runs over Redis (`MELO_TEST_REDIS_URL`) and again over a Redis Cluster
//! (`MELO_TEST_REDIS_CLUSTER_URL`), and, with `MELO_TEST_MYSQL_URL`, a fresh MySQL database shared
//! by both nodes; without them, over the in-memory backends (one shared `MemoryEphemeral`
//! stands in for Redis; the cluster cases are skipped).

// The fresh-database guard of the audit test; this file uses only part of it.
#[allow(dead_code, unreachable_pub)]
#[path = "zk_audit/backends.rs"]
mod backends;
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use common::realtime::{make_contacts, online, relay, second_device, Target};
use common::ws::{is, WAIT};
use common::{new_user, test_config, TestServer, User};
use http::Method;
use melo::ephemeral::{BusSubscription, EphemeralResult, RateDecision};
use melo::{Ephemeral, MemoryEphemeral, MemoryStore, RedisEphemeral, Store};
use serde_json::json;

/// The bound of the issue, plus room for a loaded CI machine.
const BOUND: Duration = Duration::from_secs(5);

/// An ephemeral backend whose published notes are lost while `lost` is set (the state itself
/// keeps working).
#[derive(Debug)]
struct LossyBus {
    inner: Arc<dyn Ephemeral>,
    lost: Arc<AtomicBool>,
}

#[async_trait]
impl Ephemeral for LossyBus {
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> EphemeralResult<()> {
        self.inner.set(key, value, ttl).await
    }
    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> EphemeralResult<bool> {
        self.inner.set_if_absent(key, value, ttl).await
    }
    async fn delete_if(&self, key: &str, value: &[u8]) -> EphemeralResult<bool> {
        self.inner.delete_if(key, value).await
    }
    async fn get(&self, key: &str) -> EphemeralResult<Option<Vec<u8>>> {
        self.inner.get(key).await
    }
    async fn get_many(&self, keys: &[String]) -> EphemeralResult<Vec<Option<Vec<u8>>>> {
        self.inner.get_many(keys).await
    }
    async fn take(&self, key: &str) -> EphemeralResult<Option<Vec<u8>>> {
        self.inner.take(key).await
    }
    async fn delete(&self, key: &str) -> EphemeralResult<()> {
        self.inner.delete(key).await
    }
    async fn incr(&self, key: &str, window: Duration) -> EphemeralResult<u64> {
        self.inner.incr(key, window).await
    }
    async fn rate_limit(
        &self,
        key: &str,
        limit: u64,
        window: Duration,
        block: Duration,
    ) -> EphemeralResult<RateDecision> {
        self.inner.rate_limit(key, limit, window, block).await
    }
    async fn schedule(&self, set: &str, member: &[u8], at_ms: i64) -> EphemeralResult<()> {
        self.inner.schedule(set, member, at_ms).await
    }
    async fn take_due(&self, set: &str, now_ms: i64, max: usize) -> EphemeralResult<Vec<Vec<u8>>> {
        self.inner.take_due(set, now_ms, max).await
    }
    async fn publish(&self, topic: &str, payload: Bytes) -> EphemeralResult<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.inner.publish(topic, payload).await
    }
    async fn subscribe(&self, topic: &str) -> EphemeralResult<BusSubscription> {
        self.inner.subscribe(topic).await
    }
    async fn ping(&self) -> EphemeralResult<()> {
        self.inner.ping().await
    }
    async fn maintain(&self) {
        self.inner.maintain().await;
    }
    // Both nodes must name keys alike: blinded (Redis) or not (one shared memory state).
    fn in_process(&self) -> bool {
        self.inner.in_process()
    }
}

/// Two nodes on one store and one ephemeral state; node 1's notes are lost while the returned
/// switch is on.
struct Nodes {
    n1: TestServer,
    n2: TestServer,
    outage: Arc<AtomicBool>,
    _db: Option<backends::MysqlDb>,
}

/// Where the nodes' ephemeral state lives.
#[derive(Clone, Copy)]
enum Backend {
    /// `MELO_TEST_REDIS_URL`, or one shared in-memory state when unset.
    Redis,
    /// `MELO_TEST_REDIS_CLUSTER_URL` (the seeds); unset: the case is skipped.
    RedisCluster,
}

impl Nodes {
    /// `None` when the backend is not configured (the case is skipped with a note).
    async fn start(backend: Backend) -> Option<Self> {
        let prefix = format!("melo-outage-{}:", uuid::Uuid::now_v7().simple());
        let redis = match backend {
            Backend::Redis => backends::env_url("MELO_TEST_REDIS_URL"),
            Backend::RedisCluster => match backends::env_url("MELO_TEST_REDIS_CLUSTER_URL") {
                Some(u) => Some(u),
                None => {
                    eprintln!("MELO_TEST_REDIS_CLUSTER_URL unset: skipped");
                    return None;
                }
            },
        };
        let memory: Arc<dyn Ephemeral> = Arc::new(MemoryEphemeral::new());
        let shared = |url: Option<String>| {
            let prefix = prefix.clone();
            let memory = memory.clone();
            async move {
                match url {
                    Some(u) => match RedisEphemeral::connect(&u).await {
                        Ok(e) => Arc::new(e.with_prefix(prefix)) as Arc<dyn Ephemeral>,
                        Err(e) => {
                            panic!("MELO_TEST_REDIS_URL is set but Redis is unreachable: {e}")
                        }
                    },
                    None => memory,
                }
            }
        };
        let (store, db): (Arc<dyn Store>, _) = match backends::env_url("MELO_TEST_MYSQL_URL") {
            Some(u) => {
                let (db, store) = backends::MysqlDb::create(&u).await;
                (store, Some(db))
            }
            None => (Arc::new(MemoryStore::new()), None),
        };
        let outage = Arc::new(AtomicBool::new(false));
        let e1 = Arc::new(LossyBus {
            inner: shared(redis.clone()).await,
            lost: outage.clone(),
        });
        let e2 = shared(redis).await;
        let n1 = TestServer::start_node(test_config(), store.clone(), e1).await;
        let n2 = TestServer::start_node(test_config(), store, e2).await;
        Some(Self {
            n1,
            n2,
            outage,
            _db: db,
        })
    }

    fn targets(&self) -> (Target, Target) {
        (Target::of(&self.n1), Target::of(&self.n2))
    }

    fn bus_down(&self) {
        self.outage.store(true, Ordering::SeqCst);
    }

    async fn stop(self) {
        self.n1.stop().await;
        self.n2.stop().await;
    }
}

async fn post(t: &Target, u: &User, path: &str, body: serde_json::Value) -> common::Resp {
    let r = t.client.post(path, Some(&u.token), &body).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r
}

/// A session revoked through node 1 while node 1's notes are lost: its socket on node 2
/// closes with `token_revoked` within the bound.
async fn a_revocation_during_a_bus_outage_closes_the_socket(backend: Backend) {
    let Some(nodes) = Nodes::start(backend).await else {
        return;
    };
    let (t1, t2) = nodes.targets();
    let a = new_user(&t1.client, "oua").await;
    let a2 = second_device(&t1, &a).await;
    let mut w2 = online(&t2, &a2).await;
    nodes.bus_down();
    let r = t1
        .client
        .call(
            Method::DELETE,
            &format!("/sessions/{}", a2.session_id),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (code, reason) = w2.expect_close(BOUND).await;
    assert_eq!((code, reason.as_str()), (1008, "token_revoked"));
    nodes.stop().await;
}

/// A contact ended through node 1 while its note is lost: node 2 refuses the former contact's
/// DM once the bound has passed (it accepted one before).
async fn an_unsubscribe_during_a_bus_outage_takes_effect(backend: Backend) {
    let Some(nodes) = Nodes::start(backend).await else {
        return;
    };
    let (t1, t2) = nodes.targets();
    let a = new_user(&t1.client, "oub").await;
    let b = new_user(&t2.client, "ouc").await;
    make_contacts(&t1, &a, &b).await;
    let mut wb = online(&t2, &b).await;
    // Node 2 has the pair cached as contacts.
    relay(&mut wb, &b, &a, "T1VULTE=", "ou-1").await;
    nodes.bus_down();
    post(
        &t1,
        &a,
        "/unsubscribe",
        json!({"target_id": b.uid, "csrf_token": a.csrf}),
    )
    .await;
    let deadline = tokio::time::Instant::now() + BOUND;
    let mut n = 0;
    loop {
        n += 1;
        let cid = format!("ou-after-{n}");
        wb.send_json(
            &json!({"type": "relay", "target": a.uid, "payload": "T1VULTI=", "client_id": cid}),
        )
        .await;
        let reply = wb
            .recv_where(
                "the reply to the relay",
                |f| {
                    (is(f, "msg_status") && f["client_id"] == cid)
                        || (is(f, "error") && f["ref"] == cid)
                },
                WAIT,
            )
            .await;
        if is(&reply, "error") {
            assert_eq!(reply["reason"], "not_a_contact", "{reply}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node 2 still relays for a removed contact after {BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    nodes.stop().await;
}

/// A chat member removed through node 1 while its note is lost: once the bound has passed,
/// a message sent through node 2 no longer reaches it (live or queued).
async fn a_member_removal_during_a_bus_outage_takes_effect(backend: Backend) {
    let Some(nodes) = Nodes::start(backend).await else {
        return;
    };
    let (t1, t2) = nodes.targets();
    let a = new_user(&t1.client, "oud").await;
    let b = new_user(&t1.client, "oue").await;
    make_contacts(&t1, &a, &b).await;
    let r = post(&t1, &a, "/chats/create", json!({"name": "Outage"})).await;
    let chat = r.body["chat_id"].as_i64().expect("chat_id");
    post(
        &t1,
        &a,
        "/chats/members/add",
        json!({"chat_id": chat, "user_unique_id": b.uid}),
    )
    .await;
    let mut wa = online(&t2, &a).await;
    let mut wb = online(&t2, &b).await;
    // Node 2 caches the member list with B in it.
    let cid = "ou-chat-1";
    wa.send_json(
        &json!({"type": "relay", "chat_id": chat, "payload": "T1VULTM=", "client_id": cid}),
    )
    .await;
    wb.recv_where(
        "the first chat message",
        |f| is(f, "relay_delivery") && f["chat_id"] == chat,
        WAIT,
    )
    .await;
    nodes.bus_down();
    post(
        &t1,
        &a,
        "/chats/members/remove",
        json!({"chat_id": chat, "user_unique_id": b.uid}),
    )
    .await;
    tokio::time::sleep(BOUND).await;
    let cid = "ou-chat-2";
    wa.send_json(
        &json!({"type": "relay", "chat_id": chat, "payload": "T1VULTQ=", "client_id": cid}),
    )
    .await;
    wa.recv_where(
        "queued",
        |f| is(f, "msg_status") && f["client_id"] == cid,
        WAIT,
    )
    .await;
    wb.expect_no(
        "a chat message after removal",
        |f| is(f, "relay_delivery") && f["payload"] == "T1VULTQ=",
        Duration::from_secs(1),
    )
    .await;
    wb.close().await;
    // Nor is it queued for B's device.
    let (mut again, sync) = common::realtime::connect(&t2, &b).await;
    assert!(
        sync.backlog.iter().all(|f| f["payload"] != "T1VULTQ="),
        "queued for a removed member: {:?}",
        sync.backlog
    );
    again.ack_all().await;
    nodes.stop().await;
}

/// A device that logs in through node 1 while its note is lost gets every DM sent through
/// node 2 after its login answered, although node 2 had the user's sessions cached.
async fn a_device_logged_in_during_a_bus_outage_gets_every_message(backend: Backend) {
    let Some(nodes) = Nodes::start(backend).await else {
        return;
    };
    let (t1, t2) = nodes.targets();
    let a = new_user(&t2.client, "ouf").await;
    let b = new_user(&t2.client, "oug").await;
    make_contacts(&t2, &a, &b).await;
    let mut wa = online(&t2, &a).await;
    let mut wb = online(&t2, &b).await;
    // Node 2 caches B's sessions (one device).
    relay(&mut wa, &a, &b, "T1VULTU=", "ou-dev-0").await;
    wb.recv_type("relay_delivery", WAIT).await;
    nodes.bus_down();
    let b2 = second_device(&t1, &b).await;
    let mut sent = Vec::new();
    for i in 1..=5 {
        sent.push(relay(&mut wa, &a, &b, "T1VULTY=", &format!("ou-dev-{i}")).await);
    }
    let (mut w2, sync) = common::realtime::connect(&t1, &b2).await;
    let got: Vec<String> = sync
        .backlog
        .iter()
        .filter(|f| is(f, "relay_delivery"))
        .filter_map(|f| f["message_id"].as_str().map(str::to_owned))
        .collect();
    for id in &sent {
        assert!(
            got.contains(id),
            "message {id} missing on the new device: {got:?}"
        );
    }
    w2.ack_all().await;
    drop(wb);
    nodes.stop().await;
}

/// PROTOCOL S11.7 with a shared ephemeral state: a user in invisible mode opens a socket on
/// one node while a contact watches from the other: no `status_change` at all; leaving
/// invisible mode announces `online`.
async fn an_invisible_socket_announces_nothing_across_nodes(backend: Backend) {
    let Some(nodes) = Nodes::start(backend).await else {
        return;
    };
    let (t1, t2) = nodes.targets();
    let a = new_user(&t1.client, "ouh").await;
    let b = new_user(&t2.client, "oui").await;
    make_contacts(&t1, &a, &b).await;
    let mut wa = online(&t1, &a).await;
    let r = t2
        .client
        .post("/status/offline", Some(&b.token), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut wb = online(&t2, &b).await;
    wa.expect_no(
        "a status_change of an invisible user",
        |f| is(f, "status_change") && f["user_id"] == b.uid.as_str(),
        Duration::from_secs(2),
    )
    .await;
    let r = t2
        .client
        .post("/status/online", Some(&b.token), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    wa.recv_where(
        "status_change online",
        |f| is(f, "status_change") && f["user_id"] == b.uid.as_str() && f["status"] == "online",
        WAIT,
    )
    .await;
    wb.ping().await;
    nodes.stop().await;
}

/// Each case over one Redis (or memory) and over a Redis Cluster.
macro_rules! on_both {
    ($($case:ident),*) => {
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Backend::Redis).await;
                }
            )*
        }
        mod redis_cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Backend::RedisCluster).await;
                }
            )*
        }
    };
}

on_both!(
    a_revocation_during_a_bus_outage_closes_the_socket,
    an_unsubscribe_during_a_bus_outage_takes_effect,
    a_member_removal_during_a_bus_outage_takes_effect,
    a_device_logged_in_during_a_bus_outage_gets_every_message,
    an_invisible_socket_announces_nothing_across_nodes
);
