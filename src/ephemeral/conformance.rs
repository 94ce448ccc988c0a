//! One behaviour suite for every [`Ephemeral`] backend. Uses real (short) time so networked
//! backends run it unchanged. With feature `testing`, [`crate::testing::ephemeral_conformance`]
//! runs the same cases for backends outside the crate.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{Ephemeral, RateDecision};

/// Calls back `ephemeral_cases!(@$mode ($args); case, case, ...)` with every case of the suite:
/// the one list behind both the crate's unit tests and [`cases`] (what
/// [`crate::testing::ephemeral_conformance`] runs).
macro_rules! ephemeral_cases {
    (@tests ($make:expr); $($case:ident),*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let e: Option<std::sync::Arc<dyn $crate::ephemeral::Ephemeral>> = $make.await;
                let Some(e) = e else { return };
                $crate::ephemeral::conformance::$case(e).await;
            }
        )*
    };
    (@table (); $($case:ident),*) => {
        /// Every case of the suite, by name, in the suite's order.
        #[cfg_attr(all(test, not(feature = "testing")), allow(dead_code))]
        pub(crate) fn cases() -> Vec<(&'static str, Case)> {
            vec![$((
                stringify!($case),
                (|e: Arc<dyn Ephemeral>| -> Pin<Box<dyn Future<Output = ()> + Send>> {
                    Box::pin($case(e))
                }) as Case,
            )),*]
        }
    };
    ($mode:ident $args:tt) => {
        $crate::ephemeral::conformance::ephemeral_cases!(@$mode $args;
            set_get_take_delete, conditional, values_expire, counters, rate_limit_window_and_block,
            deadlines, bus, ping);
    };
}
pub(crate) use ephemeral_cases;

/// Expands to a test module running every case against a fresh backend from `make`. With
/// `optional`, `make` yields an `Option`, and `None` (backend not configured) skips the case.
#[cfg(test)]
macro_rules! ephemeral_conformance {
    ($name:ident, optional $make:expr) => {
        mod $name {
            $crate::ephemeral::conformance::ephemeral_cases!(tests ($make));
        }
    };
    ($name:ident, $make:expr) => {
        $crate::ephemeral::conformance::ephemeral_conformance!($name, optional async {
            let e: std::sync::Arc<dyn $crate::ephemeral::Ephemeral> = $make.await;
            Some(e)
        });
    };
}
#[cfg(test)]
pub(crate) use ephemeral_conformance;

/// One case of the suite: a run against a fresh backend, panicking when it misbehaves.
pub(crate) type Case = fn(Arc<dyn Ephemeral>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

ephemeral_cases!(table());

fn key(name: &str) -> String {
    // Unique per run so shared backends (Redis) never see stale keys.
    format!("test:{}:{name}", uuid::Uuid::now_v7().simple())
}

pub(crate) async fn set_get_take_delete(e: Arc<dyn Ephemeral>) {
    let k = key("kv");
    assert_eq!(e.get(&k).await.expect("get"), None);
    e.set(&k, b"v1", Duration::from_secs(60))
        .await
        .expect("set");
    e.set(&k, b"v2", Duration::from_secs(60))
        .await
        .expect("replace");
    assert_eq!(e.get(&k).await.expect("get").as_deref(), Some(&b"v2"[..]));
    assert_eq!(e.take(&k).await.expect("take").as_deref(), Some(&b"v2"[..]));
    assert_eq!(
        e.take(&k).await.expect("take again"),
        None,
        "take is single-use"
    );
    e.set(&k, b"v3", Duration::from_secs(60))
        .await
        .expect("set");
    e.delete(&k).await.expect("delete");
    assert_eq!(e.get(&k).await.expect("get"), None);
    e.delete(&k).await.expect("delete missing is fine");
}

pub(crate) async fn conditional(e: Arc<dyn Ephemeral>) {
    let k = key("nx");
    let ttl = Duration::from_secs(60);
    assert!(e.set_if_absent(&k, b"a", ttl).await.expect("nx"));
    assert!(!e.set_if_absent(&k, b"b", ttl).await.expect("nx taken"));
    assert_eq!(e.get(&k).await.expect("get").as_deref(), Some(&b"a"[..]));
    assert!(!e.delete_if(&k, b"b").await.expect("other value kept"));
    assert!(e.get(&k).await.expect("get").is_some());
    assert!(e.delete_if(&k, b"a").await.expect("delete_if"));
    assert!(!e.delete_if(&k, b"a").await.expect("gone"));
    // Exactly one of many concurrent callers wins.
    let k = key("race");
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let (e, k) = (e.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            e.set_if_absent(&k, &[i], ttl).await.expect("nx")
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.expect("join"));
    }
    assert_eq!(wins, 1);
    // An expired value counts as absent.
    let k = key("nx-ttl");
    assert!(e
        .set_if_absent(&k, b"x", Duration::from_millis(200))
        .await
        .expect("nx"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(e
        .set_if_absent(&k, b"y", ttl)
        .await
        .expect("nx after expiry"));
}

pub(crate) async fn values_expire(e: Arc<dyn Ephemeral>) {
    let k = key("ttl");
    e.set(&k, b"v", Duration::from_millis(300))
        .await
        .expect("set");
    assert!(e.get(&k).await.expect("get").is_some());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(e.get(&k).await.expect("get"), None);
    assert_eq!(e.take(&k).await.expect("take"), None);
}

pub(crate) async fn counters(e: Arc<dyn Ephemeral>) {
    let k = key("n");
    assert_eq!(e.incr(&k, Duration::from_secs(1)).await.expect("incr"), 1);
    assert_eq!(e.incr(&k, Duration::from_secs(1)).await.expect("incr"), 2);
    assert_eq!(e.incr(&k, Duration::from_secs(1)).await.expect("incr"), 3);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        e.incr(&k, Duration::from_secs(1)).await.expect("incr"),
        1,
        "window restarts"
    );
}

pub(crate) async fn rate_limit_window_and_block(e: Arc<dyn Ephemeral>) {
    let k = key("rl");
    let (w, b) = (Duration::from_secs(60), Duration::from_secs(1));
    for _ in 0..3 {
        assert_eq!(
            e.rate_limit(&k, 3, w, b).await.expect("rl"),
            RateDecision::Allowed
        );
    }
    assert_eq!(
        e.rate_limit(&k, 3, w, b).await.expect("rl"),
        RateDecision::Limited { retry_after: 1 }
    );
    assert!(matches!(
        e.rate_limit(&k, 3, w, b).await.expect("rl"),
        RateDecision::Limited { .. }
    ));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        e.rate_limit(&k, 3, w, b).await.expect("rl"),
        RateDecision::Allowed,
        "new window after block"
    );
    let other = key("rl-other");
    assert_eq!(
        e.rate_limit(&other, 3, w, b).await.expect("rl"),
        RateDecision::Allowed,
        "keys are independent"
    );
    // A short window resets the count without any block.
    let short = key("rl-short");
    let sw = Duration::from_millis(500);
    assert_eq!(
        e.rate_limit(&short, 1, sw, Duration::from_secs(60))
            .await
            .expect("rl"),
        RateDecision::Allowed
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        e.rate_limit(&short, 1, sw, Duration::from_secs(60))
            .await
            .expect("rl"),
        RateDecision::Allowed
    );
}

pub(crate) async fn bus(e: Arc<dyn Ephemeral>) {
    let topic = key("topic");
    let mut a = e.subscribe(&topic).await.expect("sub");
    let mut b = e.subscribe(&topic).await.expect("sub");
    let mut other = e.subscribe(&key("other")).await.expect("sub");
    e.publish(&topic, Bytes::from_static(b"m1"))
        .await
        .expect("pub");
    e.publish(&topic, Bytes::from_static(b"m2"))
        .await
        .expect("pub");
    let wait = Duration::from_secs(5);
    for sub in [&mut a, &mut b] {
        assert_eq!(
            tokio::time::timeout(wait, sub.recv())
                .await
                .expect("m1 in time")
                .as_deref(),
            Some(&b"m1"[..])
        );
        assert_eq!(
            tokio::time::timeout(wait, sub.recv())
                .await
                .expect("m2 in time")
                .as_deref(),
            Some(&b"m2"[..])
        );
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(200), other.recv())
            .await
            .is_err(),
        "topics are separate"
    );
    e.publish(&key("nobody"), Bytes::from_static(b"x"))
        .await
        .expect("publish without subscribers");
}

/// Deadlines come out once each, when due, earliest first; of concurrent takers each member
/// goes to exactly one.
pub(crate) async fn deadlines(e: Arc<dyn Ephemeral>) {
    let set = key("deadlines");
    e.schedule(&set, b"late", 3_000).await.expect("schedule");
    e.schedule(&set, b"early", 1_000).await.expect("schedule");
    e.schedule(&set, b"mid", 2_000).await.expect("schedule");
    assert!(e.take_due(&set, 999, 10).await.expect("take").is_empty());
    assert_eq!(
        e.take_due(&set, 2_500, 10).await.expect("take"),
        vec![b"early".to_vec(), b"mid".to_vec()]
    );
    assert!(
        e.take_due(&set, 2_500, 10).await.expect("take").is_empty(),
        "taken once"
    );
    assert_eq!(
        e.take_due(&set, 5_000, 10).await.expect("take"),
        vec![b"late".to_vec()]
    );
    let set = key("deadlines-race");
    for i in 0..40u32 {
        e.schedule(&set, &i.to_be_bytes(), i64::from(i))
            .await
            .expect("schedule");
    }
    let takers: Vec<_> = (0..4)
        .map(|_| {
            let (e, set) = (e.clone(), set.clone());
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let batch = e.take_due(&set, 1_000, 3).await.expect("take");
                    if batch.is_empty() {
                        return got;
                    }
                    got.extend(batch);
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in takers {
        all.extend(t.await.expect("taker"));
    }
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 40, "every member exactly once");
}

pub(crate) async fn ping(e: Arc<dyn Ephemeral>) {
    e.ping().await.expect("ping");
}
