//! The conformance suite and Redis-specific cases, against one server (`MELO_TEST_REDIS_URL`)
//! and against a Redis Cluster (`MELO_TEST_REDIS_CLUSTER_URL`: its seed URLs separated by commas,
//! every master among them): unset skips (with a note), set but unreachable fails. Each test
//! uses a random key prefix; every key the tests write carries a TTL of at most a minute, so
//! nothing is left behind.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::RedisEphemeral;
use crate::ephemeral::{Ephemeral, EphemeralError};

/// The deployment a test runs against.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Single,
    Cluster,
}

impl Mode {
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

fn test_prefix() -> String {
    format!("melo-test-{}:", uuid::Uuid::now_v7().simple())
}

/// A node on the test deployment (`url`: one URL, or seeds separated by commas) with `prefix`;
/// panics (fails the test) when it is unreachable.
async fn node(url: &str, prefix: &str) -> RedisEphemeral {
    match RedisEphemeral::connect(url).await {
        Ok(e) => e.with_prefix(prefix),
        Err(e) => panic!("the Redis test URL is set but Redis is unreachable: {e}"),
    }
}

async fn make(mode: Mode) -> Option<Arc<dyn Ephemeral>> {
    let url = mode.url()?;
    let e = node(&url, &test_prefix()).await;
    assert_eq!(e.is_cluster(), matches!(mode, Mode::Cluster), "{mode:?}");
    let e: Arc<dyn Ephemeral> = Arc::new(e);
    Some(e)
}

crate::ephemeral::conformance::ephemeral_conformance!(redis, optional super::make(super::Mode::Single));
crate::ephemeral::conformance::ephemeral_conformance!(redis_cluster, optional super::make(super::Mode::Cluster));

/// Runs each case against one server and against the cluster.
macro_rules! both_modes {
    ($($case:ident),*) => {
        $(
            mod $case {
                #[tokio::test]
                async fn single() {
                    super::$case(super::Mode::Single).await;
                }

                #[tokio::test]
                async fn cluster() {
                    super::$case(super::Mode::Cluster).await;
                }
            }
        )*
    };
}

both_modes!(
    two_nodes_share_state_and_bus,
    resubscribes_after_connection_kill,
    dropping_ends_subscriptions_and_maintain_unsubscribes
);

/// The node URLs of `url` (the seeds of a cluster URL).
fn node_urls(url: &str) -> Vec<String> {
    url.split(',').map(|u| u.trim().to_owned()).collect()
}

/// A plain connection for inspecting one server (one cluster node).
async fn admin(url: &str) -> ::redis::aio::MultiplexedConnection {
    ::redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection")
}

/// A plain connection to each node of the deployment.
async fn admins(url: &str) -> Vec<::redis::aio::MultiplexedConnection> {
    let mut out = Vec::new();
    for u in node_urls(url) {
        out.push(admin(&u).await);
    }
    out
}

/// `CLIENT LIST` id of the connection named `name`.
async fn client_id(admin: &mut ::redis::aio::MultiplexedConnection, name: &str) -> Option<String> {
    let list: String = ::redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(admin)
        .await
        .expect("CLIENT LIST");
    let needle = format!("name={name} ");
    list.lines().find(|l| l.contains(&needle)).and_then(|l| {
        l.split(' ')
            .find_map(|f| f.strip_prefix("id="))
            .map(str::to_owned)
    })
}

/// The bus channels under `prefix` with subscribers, over every node (sharded channels on a
/// cluster).
async fn channels(
    mode: Mode,
    admins: &mut [::redis::aio::MultiplexedConnection],
    prefix: &str,
) -> Vec<String> {
    let sub = match mode {
        Mode::Single => "CHANNELS",
        Mode::Cluster => "SHARDCHANNELS",
    };
    let mut all = Vec::new();
    for a in admins {
        let v: Vec<String> = ::redis::cmd("PUBSUB")
            .arg(sub)
            .arg(format!("{prefix}*"))
            .query_async(a)
            .await
            .expect("PUBSUB CHANNELS");
        all.extend(v);
    }
    all.sort();
    all
}

async fn recv(sub: &mut crate::ephemeral::BusSubscription, within: Duration) -> Option<Bytes> {
    tokio::time::timeout(within, sub.recv())
        .await
        .ok()
        .flatten()
}

async fn two_nodes_share_state_and_bus(mode: Mode) {
    let Some(url) = mode.url() else { return };
    let prefix = test_prefix();
    let (a, b) = (node(&url, &prefix).await, node(&url, &prefix).await);
    let ttl = Duration::from_secs(60);

    a.set("k", b"from-a", ttl).await.expect("set");
    assert_eq!(
        b.get("k").await.expect("get").as_deref(),
        Some(&b"from-a"[..])
    );
    assert!(b.set_if_absent("lock", b"b", ttl).await.expect("nx"));
    assert!(!a.set_if_absent("lock", b"a", ttl).await.expect("nx taken"));
    assert_eq!(
        a.take("lock").await.expect("take").as_deref(),
        Some(&b"b"[..])
    );
    assert_eq!(b.take("lock").await.expect("take"), None);

    let mut on_a = a.subscribe("topic").await.expect("sub a");
    let mut on_b = b.subscribe("topic").await.expect("sub b");
    a.publish("topic", Bytes::from_static(b"hello"))
        .await
        .expect("pub");
    b.publish("topic", Bytes::from_static(b"back"))
        .await
        .expect("pub");
    for sub in [&mut on_a, &mut on_b] {
        let wait = Duration::from_secs(5);
        assert_eq!(recv(sub, wait).await.as_deref(), Some(&b"hello"[..]));
        assert_eq!(recv(sub, wait).await.as_deref(), Some(&b"back"[..]));
    }
    // Another prefix is another deployment.
    let other = node(&url, &test_prefix()).await;
    let mut elsewhere = other.subscribe("topic").await.expect("sub");
    a.publish("topic", Bytes::from_static(b"x"))
        .await
        .expect("pub");
    assert_eq!(recv(&mut elsewhere, Duration::from_millis(300)).await, None);
    assert_eq!(other.get("k").await.expect("get"), None);
}

async fn resubscribes_after_connection_kill(mode: Mode) {
    let Some(url) = mode.url() else { return };
    let prefix = test_prefix();
    let node_a = node(&url, &prefix).await;
    let publisher = node(&url, &prefix).await;
    let mut sub = node_a.subscribe("t").await.expect("sub");
    publisher
        .publish("t", Bytes::from_static(b"before"))
        .await
        .expect("pub");
    assert_eq!(
        recv(&mut sub, Duration::from_secs(5)).await.as_deref(),
        Some(&b"before"[..])
    );

    // Kill the bus connection (on a cluster: its connection to every node).
    let mut admins = admins(&url).await;
    let name = node_a.bus_client_name().to_owned();
    let mut killed_ids = Vec::new();
    for admin in &mut admins {
        let Some(id) = client_id(admin, &name).await else {
            continue;
        };
        let killed: i64 = ::redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(&id)
            .query_async(admin)
            .await
            .expect("CLIENT KILL");
        assert_eq!(killed, 1);
        killed_ids.push(id);
    }
    assert!(!killed_ids.is_empty(), "bus connection listed");

    // Publish until the resubscribed connection delivers again.
    let start = Instant::now();
    let mut delivered = false;
    while start.elapsed() < Duration::from_secs(10) {
        publisher
            .publish("t", Bytes::from_static(b"after"))
            .await
            .expect("pub");
        if let Some(m) = recv(&mut sub, Duration::from_millis(250)).await {
            assert_eq!(&m[..], b"after");
            delivered = true;
            break;
        }
    }
    assert!(
        delivered,
        "delivery resumed after the bus connection was killed"
    );
    let mut new_ids = Vec::new();
    for admin in &mut admins {
        new_ids.extend(client_id(admin, &name).await);
    }
    assert!(!new_ids.is_empty(), "reconnected");
    for id in &new_ids {
        assert!(!killed_ids.contains(id), "a new connection");
    }
}

async fn dropping_ends_subscriptions_and_maintain_unsubscribes(mode: Mode) {
    let Some(url) = mode.url() else { return };
    let prefix = test_prefix();
    let e = node(&url, &prefix).await;
    let mut admins = admins(&url).await;
    let gone = e.subscribe("gone").await.expect("sub");
    let mut kept = e.subscribe("kept").await.expect("sub");
    assert_eq!(channels(mode, &mut admins, &prefix).await.len(), 2);
    drop(gone);
    e.maintain().await;
    assert_eq!(
        channels(mode, &mut admins, &prefix).await,
        vec![format!("{prefix}kept")]
    );

    drop(e);
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), kept.recv())
            .await
            .expect("ends in time"),
        None,
        "a dropped RedisEphemeral closes its subscriptions"
    );
}

/// The keys of one deployment spread over several shards, a value written through one seed is
/// read through another, and the bus delivers between nodes connected through different seeds,
/// on channels of several shards.
#[tokio::test]
async fn cluster_spreads_keys_and_bus_over_shards() {
    let Some(url) = Mode::Cluster.url() else {
        return;
    };
    let seeds = node_urls(&url);
    assert!(
        seeds.len() >= 2,
        "MELO_TEST_REDIS_CLUSTER_URL lists several seeds"
    );
    let prefix = test_prefix();
    let connect = |seed: String| {
        let prefix = prefix.clone();
        async move {
            match RedisEphemeral::connect_cluster(&[seed]).await {
                Ok(e) => e.with_prefix(prefix),
                Err(e) => panic!("MELO_TEST_REDIS_CLUSTER_URL is set but unreachable: {e}"),
            }
        }
    };
    let a = connect(seeds[0].clone()).await;
    let b = connect(seeds[1].clone()).await;
    assert!(a.is_cluster() && b.is_cluster());
    let ttl = Duration::from_secs(60);

    let keys: Vec<String> = (0..32).map(|i| format!("k{i}")).collect();
    for k in &keys {
        a.set(k, k.as_bytes(), ttl).await.expect("set");
    }
    let mut admins = admins(&url).await;
    let mut shards_with_keys = 0;
    let mut total = 0;
    for admin in &mut admins {
        let found: Vec<String> = ::redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(admin)
            .await
            .expect("KEYS");
        total += found.len();
        shards_with_keys += usize::from(!found.is_empty());
    }
    assert_eq!(total, keys.len(), "every key on exactly one listed node");
    assert!(
        shards_with_keys >= 2,
        "keys land on several shards ({shards_with_keys})"
    );
    // get_many across shards, through the other seed, in order, with a missing key.
    let mut asked = keys.clone();
    asked.push("missing".to_owned());
    let got = b.get_many(&asked).await.expect("get_many");
    for (k, v) in keys.iter().zip(&got) {
        assert_eq!(v.as_deref(), Some(k.as_bytes()));
    }
    assert_eq!(got.last(), Some(&None));

    // Bus: topics over several shards, both directions.
    let topics: Vec<String> = (0..8).map(|i| format!("topic-{i}")).collect();
    let mut on_a = Vec::new();
    let mut on_b = Vec::new();
    for t in &topics {
        on_a.push(a.subscribe(t).await.expect("sub a"));
        on_b.push(b.subscribe(t).await.expect("sub b"));
    }
    let mut shards_with_channels = 0;
    for admin in &mut admins {
        let v: Vec<String> = ::redis::cmd("PUBSUB")
            .arg("SHARDCHANNELS")
            .arg(format!("{prefix}*"))
            .query_async(admin)
            .await
            .expect("PUBSUB SHARDCHANNELS");
        shards_with_channels += usize::from(!v.is_empty());
        let unique: HashSet<&String> = v.iter().collect();
        assert_eq!(unique.len(), v.len());
    }
    assert!(shards_with_channels >= 2, "channels on several shards");
    let wait = Duration::from_secs(5);
    for (i, t) in topics.iter().enumerate() {
        a.publish(t, Bytes::from(format!("a{i}")))
            .await
            .expect("pub");
        b.publish(t, Bytes::from(format!("b{i}")))
            .await
            .expect("pub");
    }
    for subs in [&mut on_a, &mut on_b] {
        for (i, sub) in subs.iter_mut().enumerate() {
            assert_eq!(recv(sub, wait).await, Some(Bytes::from(format!("a{i}"))));
            assert_eq!(recv(sub, wait).await, Some(Bytes::from(format!("b{i}"))));
        }
    }
    // Plain PUBSUB channels stay unused: the bus is sharded.
    for admin in &mut admins {
        let v: Vec<String> = ::redis::cmd("PUBSUB")
            .arg("CHANNELS")
            .arg(format!("{prefix}*"))
            .query_async(admin)
            .await
            .expect("PUBSUB CHANNELS");
        assert!(v.is_empty(), "no plain channel: {v:?}");
    }
}

/// Malformed seeds fail before any connection, and no error quotes a seed's password.
#[tokio::test]
async fn cluster_seeds_are_validated_without_leaking() {
    for url in [
        "redis://u:hunter2@127.0.0.1:1,http://u:hunter2@127.0.0.1:2",
        "redis://u:hunter2@127.0.0.1:1,,redis://u:hunter2@127.0.0.1:2",
        "redis://u:hunter2@127.0.0.1:1,redis+unix:///tmp/hunter2.sock",
    ] {
        let err = RedisEphemeral::connect_lazy(url)
            .expect_err(url)
            .to_string();
        assert!(err.contains("seed 2"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
    let none: [&str; 0] = [];
    assert!(RedisEphemeral::connect_cluster_lazy(&none).is_err());
    // Unreachable seeds: an error in time, without the password.
    let start = Instant::now();
    let err =
        RedisEphemeral::connect("redis://u:hunter2@127.0.0.1:1,redis://u:hunter2@127.0.0.1:2")
            .await
            .expect_err("unreachable");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn unreachable_server_errors_without_hanging() {
    // Needs no server: port 1 refuses connections.
    unreachable("redis://127.0.0.1:1").await;
}

#[tokio::test]
async fn unreachable_cluster_errors_without_hanging() {
    // Needs no server: ports 1 and 2 refuse connections.
    unreachable("redis://127.0.0.1:1,redis://127.0.0.1:2").await;
}

async fn unreachable(url: &str) {
    let start = Instant::now();
    let err = RedisEphemeral::connect(url).await.expect_err("unreachable");
    assert!(matches!(err, EphemeralError::Unavailable(_)));
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "connect gave up in time"
    );

    let e = RedisEphemeral::connect_lazy(url).expect("lazy");
    assert_eq!(e.is_cluster(), url.contains(','));
    let ttl = Duration::from_secs(1);
    let bound = Duration::from_secs(4);
    macro_rules! fails {
        ($call:expr) => {{
            let r = tokio::time::timeout(bound, $call).await.expect("no hang");
            assert!(matches!(r, Err(EphemeralError::Unavailable(_))));
        }};
    }
    fails!(e.set("k", b"v", ttl));
    fails!(e.set_if_absent("k", b"v", ttl));
    fails!(e.delete_if("k", b"v"));
    fails!(e.get("k"));
    fails!(e.get_many(&["k".to_owned(), "l".to_owned()]));
    fails!(e.take("k"));
    fails!(e.delete("k"));
    fails!(e.incr("k", ttl));
    fails!(e.rate_limit("k", 1, ttl, ttl));
    fails!(e.publish("t", Bytes::from_static(b"x")));
    fails!(e.subscribe("t"));
    fails!(e.ping());
    tokio::time::timeout(bound, e.maintain())
        .await
        .expect("maintain does not hang");
    assert!(RedisEphemeral::connect("not a url").await.is_err());
}
