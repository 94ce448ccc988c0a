//! JWT signing-key rotation on a running server (issue 7): tokens signed before a rotation keep
//! working until they expire, new tokens carry the new `kid`, `/.well-known/jwks.json` lists
//! exactly the live keys, and an expired or foreign-key token is refused.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{test_config, TestServer};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use melo::crypto::{KeyPolicy, KeyProvider};
use melo::store::Store;
use melo::{FileKeyProvider, MemoryStore};
use serde_json::Value;

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("JWT header")
        .kid
        .expect("kid")
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("json")
}

async fn jwks_kids(c: &common::Client) -> BTreeSet<String> {
    let r = c.get("/.well-known/jwks.json", None).await;
    assert_eq!(r.status, 200);
    r.body["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_survive_rotation_until_expiry_and_jwks_lists_live_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Rotate every 5 s; checked every second; a new key is made 2 s ahead of its slot and signs
    // once published for 2 s.
    let policy = KeyPolicy {
        rotation: Duration::from_secs(5),
        token_ttl: Duration::from_secs(60),
        publish_delay: Duration::from_secs(2),
    };
    let keys = Arc::new(
        FileKeyProvider::open(dir.path(), policy, None)
            .await
            .expect("keys"),
    );
    let mut config = test_config();
    config.auth.key_check_secs = 1;
    config.auth.access_token_expire_minutes = 1;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let melo = melo::Melo::builder(store.clone(), keys.clone())
        .config(config)
        .build()
        .expect("build");
    let s = TestServer::serve(melo, store).await;
    let c = &s.client;

    let a = common::new_user(c, "Alice").await;
    let k1 = kid_of(&a.token);
    assert_eq!(jwks_kids(c).await, BTreeSet::from([k1.clone()]));

    // Wait for a rotation.
    let mut kids = jwks_kids(c).await;
    for _ in 0..100 {
        if kids.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        kids = jwks_kids(c).await;
    }
    assert!(kids.len() >= 2, "rotated within 10 s: {kids:?}");
    assert!(kids.contains(&k1), "the retired key still verifies");
    // The token signed before the rotation still works.
    assert_eq!(c.get("/profile", Some(&a.token)).await.status, 200);
    // Once the new key is past its publish delay, new tokens carry it.
    let mut fresh = String::new();
    for _ in 0..50 {
        let r = common::login(c, &a.phone, &a.password, &a.device).await;
        fresh = r.body["access_token"].as_str().expect("token").to_owned();
        if kid_of(&fresh) != k1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let k_new = kid_of(&fresh);
    assert_ne!(k_new, k1, "the new key signs within 5 s");
    assert!(jwks_kids(c).await.contains(&k_new));
    assert_eq!(c.get("/profile", Some(&fresh)).await.status, 200);
    // The JWKS is exactly the provider's live set (as of the same moment).
    let live: BTreeSet<String> = keys
        .verifying_keys()
        .iter()
        .map(|k| k.kid().to_owned())
        .collect();
    let listed = jwks_kids(c).await;
    let live_after: BTreeSet<String> = keys
        .verifying_keys()
        .iter()
        .map(|k| k.kid().to_owned())
        .collect();
    assert!(
        listed == live || listed == live_after,
        "jwks {listed:?} = live {live:?}"
    );

    // After expiry, a token of the retired key is refused: re-sign A's first claims with the
    // first key's private PEM and an `exp` in the past.
    let first_pem = std::fs::read_dir(dir.path().join("jwt"))
        .expect("jwt dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pem"))
        .min()
        .expect("a key file");
    let pem = std::fs::read(first_pem).expect("pem");
    let mut claims = claims_of(&a.token);
    let now = melo::model::Timestamp::now().secs();
    claims["iat"] = (now - 120).into();
    claims["exp"] = (now - 5).into();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(k1.clone());
    let expired = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(&pem).expect("key"),
    )
    .expect("sign");
    c.get("/profile", Some(&expired))
        .await
        .assert_error(401, "token_expired");
    // The same claims, unexpired, verify: the refusal above is the expiry, not the key.
    claims["exp"] = (now + 30).into();
    let valid = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(&pem).expect("key"),
    )
    .expect("sign");
    assert_eq!(c.get("/profile", Some(&valid)).await.status, 200);
    // A `kid` that is not in the set (a retired, deleted key) is refused.
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("retired-and-deleted".to_owned());
    let foreign = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(&pem).expect("key"),
    )
    .expect("sign");
    c.get("/profile", Some(&foreign))
        .await
        .assert_error(401, "invalid_token");
    s.stop().await;
}
