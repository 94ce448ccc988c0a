//! JWT signing-key rotation with several nodes: two servers on one store and one ephemeral
//! state, each with its own `FileKeyProvider` on one shared key directory (a mounted volume in
//! production). A rotation on node 1 leaves every token valid on both nodes, both JWKS documents
//! equal, and both nodes switch to the new key together once it has been published long enough.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{test_config, Client, TestServer};
use melo::crypto::{KeyPolicy, KeyProvider};
use melo::{Ephemeral, FileKeyProvider, MemoryEphemeral, MemoryStore, Store};
use serde_json::Value;

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("JWT header")
        .kid
        .expect("kid")
}

async fn jwks(c: &Client) -> (BTreeSet<String>, Value) {
    let r = c.get("/.well-known/jwks.json", None).await;
    assert_eq!(r.status, 200);
    let kids = r.body["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect();
    (kids, r.body)
}

/// A fresh access token for `u` from the node behind `c`.
async fn token_from(c: &Client, u: &common::User) -> String {
    let r = common::login(c, &u.phone, &u.password, &u.device).await;
    assert_eq!(r.status, 200, "login: {}", r.body);
    r.body["access_token"].as_str().expect("token").to_owned()
}

async fn assert_valid_on_both(nodes: [&Client; 2], token: &str, what: &str) {
    for (i, c) in nodes.iter().enumerate() {
        let r = c.get("/profile", Some(token)).await;
        assert_eq!(
            r.status,
            200,
            "{what} (kid {}) refused by node {}: {}",
            kid_of(token),
            i + 1,
            r.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_on_one_node_keeps_tokens_valid_on_all_nodes_and_jwks_equal() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Node 1 rotates after 5 s (the test triggers it); node 2 would wait an hour, so every new
    // key it learns of comes from the shared directory.
    let publish = Duration::from_secs(3);
    let policy = |rotation| KeyPolicy {
        rotation,
        token_ttl: Duration::from_secs(120),
        publish_delay: publish,
    };
    let k1 = Arc::new(
        FileKeyProvider::open(dir.path(), policy(Duration::from_secs(5)), None)
            .await
            .expect("keys 1"),
    );
    let k2 = Arc::new(
        FileKeyProvider::open(dir.path(), policy(Duration::from_secs(3600)), None)
            .await
            .expect("keys 2"),
    );
    let opened = Instant::now();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let eph: Arc<dyn Ephemeral> = Arc::new(MemoryEphemeral::new());
    let node = |keys: Arc<FileKeyProvider>, key_check_secs| {
        let mut config = test_config();
        config.auth.key_check_secs = key_check_secs;
        config.auth.access_token_expire_minutes = 2;
        melo::Melo::builder(store.clone(), keys)
            .config(config)
            .ephemeral(eph.clone())
            .cluster(true)
            .build()
            .expect("build")
    };
    // Node 1's background check runs once at start; the test drives its rotation. Node 2
    // checks every second, as a real node does every KEY_CHECK_SECONDS.
    let n1 = TestServer::serve(node(k1.clone(), 3600), store.clone()).await;
    let n2 = TestServer::serve(node(k2.clone(), 1), store.clone()).await;
    let (c1, c2) = (&n1.client, &n2.client);

    let a = common::new_user(c1, "Alice").await;
    let before = [token_from(c1, &a).await, token_from(c2, &a).await];
    let old_kid = kid_of(&before[0]);
    assert_eq!(kid_of(&before[1]), old_kid, "one key before the rotation");
    assert_eq!(jwks(c1).await, jwks(c2).await);

    // Rotation is due on node 1 once its key is 5 s old.
    tokio::time::sleep(
        Duration::from_secs(5).saturating_sub(opened.elapsed()) + Duration::from_millis(500),
    )
    .await;
    k1.maintain().await.expect("rotate on node 1");
    assert_eq!(
        std::fs::read_dir(dir.path().join("jwt"))
            .expect("jwt dir")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".pem"))
            })
            .count(),
        2,
        "one new key file"
    );
    let new_kid = k1
        .verifying_keys()
        .iter()
        .map(|k| k.kid().to_owned())
        .find(|k| *k != old_kid)
        .expect("node 1 holds the new key");

    // From the rotation until both nodes sign with the new key (and a little after), every
    // token either node issues verifies on both, and so do the tokens from before.
    let started = Instant::now();
    let mut switched: Option<Instant> = None;
    let mut jwks_equal_since: Option<Instant> = None;
    loop {
        let t1 = token_from(c1, &a).await;
        let t2 = token_from(c2, &a).await;
        assert_valid_on_both([c1, c2], &t1, "token from node 1").await;
        assert_valid_on_both([c1, c2], &t2, "token from node 2").await;
        for t in &before {
            assert_valid_on_both([c1, c2], t, "token from before the rotation").await;
        }
        let (j1, j2) = (jwks(c1).await, jwks(c2).await);
        if j1 == j2 {
            assert_eq!(j1.0, BTreeSet::from([old_kid.clone(), new_kid.clone()]));
            jwks_equal_since.get_or_insert_with(Instant::now);
        } else {
            assert!(
                jwks_equal_since.is_none(),
                "the JWKS documents differ again: {j1:?} vs {j2:?}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "node 2 loads the new key within its key check: {j1:?} vs {j2:?}"
            );
        }
        if kid_of(&t1) == new_kid && kid_of(&t2) == new_kid {
            switched.get_or_insert_with(Instant::now);
        } else {
            assert!(switched.is_none(), "a node went back to the old key");
        }
        if switched.is_some_and(|s| s.elapsed() > Duration::from_secs(1)) {
            break;
        }
        assert!(
            started.elapsed() < publish + Duration::from_secs(5),
            "both nodes sign with the new key after the publish delay"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        jwks_equal_since.is_some(),
        "the JWKS documents became equal"
    );
    n1.stop().await;
    n2.stop().await;
}
