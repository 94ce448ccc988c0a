//! The conformance suite and Redis-specific cases against `MELO_TEST_REDIS_URL`: unset skips
//! (with a note), set but unreachable fails. Each test uses a random key prefix; every key the
//! tests write carries a TTL of at most a minute, so nothing is left behind.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::RedisEphemeral;
use crate::ephemeral::{Ephemeral, EphemeralError};

fn url() -> Option<String> {
    match std::env::var("MELO_TEST_REDIS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!("MELO_TEST_REDIS_URL is unset: skipping this Redis test");
            None
        }
    }
}

fn test_prefix() -> String {
    format!("melo-test-{}:", uuid::Uuid::now_v7().simple())
}

/// A node on the test server with a fresh prefix; panics (fails the test) when the server
/// named by `MELO_TEST_REDIS_URL` is unreachable.
async fn node(url: &str, prefix: &str) -> RedisEphemeral {
    match RedisEphemeral::connect(url).await {
        Ok(e) => e.with_prefix(prefix),
        Err(e) => panic!("MELO_TEST_REDIS_URL is set but Redis is unreachable: {e}"),
    }
}

async fn make() -> Option<Arc<dyn Ephemeral>> {
    let url = url()?;
    let e: Arc<dyn Ephemeral> = Arc::new(node(&url, &test_prefix()).await);
    Some(e)
}

crate::ephemeral::conformance::ephemeral_conformance!(redis, optional super::make());

/// A plain connection for inspecting the server.
async fn admin(url: &str) -> ::redis::aio::MultiplexedConnection {
    ::redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection")
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

async fn recv(sub: &mut crate::ephemeral::BusSubscription, within: Duration) -> Option<Bytes> {
    tokio::time::timeout(within, sub.recv())
        .await
        .ok()
        .flatten()
}

#[tokio::test]
async fn two_nodes_share_state_and_bus() {
    let Some(url) = url() else { return };
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

#[tokio::test]
async fn resubscribes_after_connection_kill() {
    let Some(url) = url() else { return };
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

    let mut admin = admin(&url).await;
    let name = node_a.bus_client_name().to_owned();
    let id = client_id(&mut admin, &name)
        .await
        .expect("bus connection listed");
    let killed: i64 = ::redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&id)
        .query_async(&mut admin)
        .await
        .expect("CLIENT KILL");
    assert_eq!(killed, 1);

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
    let new_id = client_id(&mut admin, &name).await.expect("reconnected");
    assert_ne!(new_id, id, "a new connection");
}

#[tokio::test]
async fn dropping_ends_subscriptions_and_maintain_unsubscribes() {
    let Some(url) = url() else { return };
    let prefix = test_prefix();
    let e = node(&url, &prefix).await;
    let mut admin = admin(&url).await;
    let channels = |admin: &mut ::redis::aio::MultiplexedConnection| {
        let mut c = admin.clone();
        let pattern = format!("{prefix}*");
        async move {
            let v: Vec<String> = ::redis::cmd("PUBSUB")
                .arg("CHANNELS")
                .arg(pattern)
                .query_async(&mut c)
                .await
                .expect("PUBSUB CHANNELS");
            v
        }
    };
    let gone = e.subscribe("gone").await.expect("sub");
    let mut kept = e.subscribe("kept").await.expect("sub");
    assert_eq!(channels(&mut admin).await.len(), 2);
    drop(gone);
    e.maintain().await;
    assert_eq!(channels(&mut admin).await, vec![format!("{prefix}kept")]);

    drop(e);
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), kept.recv())
            .await
            .expect("ends in time"),
        None,
        "a dropped RedisEphemeral closes its subscriptions"
    );
}

#[tokio::test]
async fn unreachable_server_errors_without_hanging() {
    // Needs no server: port 1 refuses connections.
    let url = "redis://127.0.0.1:1";
    let start = Instant::now();
    let err = RedisEphemeral::connect(url).await.expect_err("unreachable");
    assert!(matches!(err, EphemeralError::Unavailable(_)));
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "connect gave up in time"
    );

    let e = RedisEphemeral::connect_lazy(url).expect("lazy");
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
