//! Operator tools (issue 17) against servers started in-process, over real sockets. The
//! operator's `Admin` works on a second store handle opened on the servers' database (a second
//! `SqliteStore` on the same file; a second `MysqlStore` on the same MySQL database), as the
//! `melo admin` process does: lock, unlock, list and revoke sessions (open sockets close),
//! counts, and the registration modes with single-use invites.
//!
//! MySQL runs with `MELO_TEST_MYSQL_URL`, several nodes with `MELO_TEST_REDIS_URL` (unset: those
//! tests skip with a note; set but unreachable: they fail).

// The fresh-database guard of the audit test; this file uses only part of it.
#[allow(dead_code, unreachable_pub)]
#[path = "zk_audit/backends.rs"]
mod backends;
mod common;

use std::sync::Arc;

use common::admin::{closed_revoked, invite_registration, lock_and_revoke, register_body, uid};
use common::realtime::{online, second_device, Target};
use common::{keys, login, new_user, random_phone, test_config, TestServer};
use melo::admin::Admin;
use melo::config::Registration;
use melo::crypto::Pii;
use melo::model::SessionId;
use melo::{Config, Ephemeral, MemoryStore, MysqlStore, RedisEphemeral, SqliteStore, Store};

/// A server on a fresh SQLite file, and an operator's handle opened on the same file.
async fn sqlite_server(config: Config) -> (TestServer, Admin, Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("melo.db");
    let served: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).await.expect("open"));
    let server = TestServer::start_with(config, served).await;
    let second: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).await.expect("open again"));
    let admin = Admin::new(second.clone(), keys());
    (server, admin, second, dir)
}

/// A server on a fresh MySQL database, and an operator's handle with its own pool on it;
/// `None` (with a note) without `MELO_TEST_MYSQL_URL`.
async fn mysql_server(
    config: Config,
) -> Option<(TestServer, Admin, Arc<dyn Store>, backends::MysqlDb)> {
    let Some(url) = backends::env_url("MELO_TEST_MYSQL_URL") else {
        eprintln!("MELO_TEST_MYSQL_URL is unset: skipping the MySQL run");
        return None;
    };
    let (db, db_url) = backends::MysqlDb::create_empty(&url).await;
    let served: Arc<dyn Store> = Arc::new(MysqlStore::connect(&db_url).await.expect("open"));
    let server = TestServer::start_with(config, served).await;
    let second: Arc<dyn Store> = Arc::new(MysqlStore::connect(&db_url).await.expect("again"));
    Some((server, Admin::new(second.clone(), keys()), second, db))
}

fn with_registration(mode: Registration) -> Config {
    let mut c = test_config();
    c.auth.registration = mode;
    c
}

#[tokio::test]
async fn lock_revoke_and_count_on_sqlite() {
    let (server, admin, _, _dir) = sqlite_server(test_config()).await;
    lock_and_revoke(&Target::of(&server), &admin).await;
    server.stop().await;
}

#[tokio::test]
async fn lock_revoke_and_count_on_mysql() {
    let Some((server, admin, _, db)) = mysql_server(test_config()).await else {
        return;
    };
    lock_and_revoke(&Target::of(&server), &admin).await;
    server.stop().await;
    drop(admin);
    db.drop_database().await;
}

#[tokio::test]
async fn invites_on_sqlite_are_single_use_and_never_stored_in_plaintext() {
    let (server, admin, second, dir) = sqlite_server(with_registration(Registration::Invite)).await;
    let pii = Pii::new(keys());
    let codes = invite_registration(&Target::of(&server), &admin, &second, &pii).await;
    server.stop().await;
    // Neither form of any code is in the database files (only keyed blind indexes are).
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir.path()).expect("dir") {
        files.push(std::fs::read(entry.expect("entry").path()).expect("read"));
    }
    for code in &codes {
        for form in [code.clone(), code.replace('-', "")] {
            for bytes in &files {
                assert!(
                    !bytes.windows(form.len()).any(|w| w == form.as_bytes()),
                    "an invite code is in the database files"
                );
            }
        }
    }
}

#[tokio::test]
async fn invites_on_mysql() {
    let Some((server, admin, second, db)) =
        mysql_server(with_registration(Registration::Invite)).await
    else {
        return;
    };
    let pii = Pii::new(keys());
    invite_registration(&Target::of(&server), &admin, &second, &pii).await;
    server.stop().await;
    drop(admin);
    db.drop_database().await;
}

#[tokio::test]
async fn closed_and_open_registration() {
    let closed = TestServer::start_with(
        with_registration(Registration::Closed),
        Arc::new(MemoryStore::new()),
    )
    .await;
    let c = &closed.client;
    let r = c
        .post("/register", None, &register_body(&random_phone(), None))
        .await;
    r.assert_error(403, "registration_closed");
    // Even a body whose fields are invalid: the mode answers first.
    let mut bad = register_body("not a phone", None);
    bad["password"] = serde_json::json!("short");
    c.post("/register", None, &bad)
        .await
        .assert_error(403, "registration_closed");
    // Logins of existing accounts are not affected.
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let open = TestServer::start_with(test_config(), store.clone()).await;
    let (uid, phone, password) = common::register(&open.client, "Olga").await;
    open.stop().await;
    let closed_same_store =
        TestServer::start_with(with_registration(Registration::Closed), store).await;
    let r = login(
        &closed_same_store.client,
        &phone,
        &password,
        &common::random_device(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["unique_id"], uid.as_str());
    // A code does not open a closed registration.
    let r = closed_same_store
        .client
        .post(
            "/register",
            None,
            &register_body(&random_phone(), Some("x")),
        )
        .await;
    r.assert_error(403, "registration_closed");
    closed_same_store.stop().await;
    // Open (the default) ignores an invite code.
    let open = TestServer::start().await;
    let r = open
        .client
        .post(
            "/register",
            None,
            &register_body(&random_phone(), Some("whatever")),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    open.stop().await;
    closed.stop().await;
}

/// Several nodes on Redis (and MySQL when set): a revocation noted by the operator's process
/// closes the sockets on every node; a revocation written to the store with no note at all
/// (another tool) still closes them within the session caches' TTL and the sockets' re-check.
#[tokio::test]
async fn revocations_reach_every_node() {
    let Some(redis_url) = backends::env_url("MELO_TEST_REDIS_URL") else {
        eprintln!("MELO_TEST_REDIS_URL is unset: skipping the several-node run");
        return;
    };
    let prefix = format!("melo-admin-{}:", uuid::Uuid::now_v7().simple());
    let redis = || async {
        match RedisEphemeral::connect(&redis_url).await {
            Ok(e) => Arc::new(e.with_prefix(&prefix)) as Arc<dyn Ephemeral>,
            Err(e) => panic!("MELO_TEST_REDIS_URL is set but Redis is unreachable: {e}"),
        }
    };
    // The nodes' store, and the operator's own handle on the same database.
    let (served, second, db): (Arc<dyn Store>, Arc<dyn Store>, _) =
        match backends::env_url("MELO_TEST_MYSQL_URL") {
            Some(url) => {
                let (db, db_url) = backends::MysqlDb::create_empty(&url).await;
                let a = MysqlStore::connect(&db_url).await.expect("open");
                let b = MysqlStore::connect(&db_url).await.expect("open again");
                (Arc::new(a), Arc::new(b), Some(db))
            }
            None => {
                let shared: Arc<dyn Store> = Arc::new(MemoryStore::new());
                (shared.clone(), shared, None)
            }
        };
    let n1 = TestServer::start_node(test_config(), served.clone(), redis().await).await;
    let n2 = TestServer::start_node(test_config(), served, redis().await).await;
    let (t1, t2) = (Target::of(&n1), Target::of(&n2));
    let admin = Admin::new(second.clone(), keys()).with_ephemeral(redis().await);

    let a = new_user(&t1.client, "Ann").await;
    let a2 = second_device(&t2, &a).await;
    let b = new_user(&t1.client, "Ben").await;
    let mut wa = online(&t1, &a).await;
    let mut wa2 = online(&t2, &a2).await;
    let mut wb = online(&t2, &b).await;

    // Noted: the session's socket on node 2 closes, the other device's on node 1 stays.
    let one = SessionId(a2.session_id);
    assert_eq!(
        admin.revoke(uid(&a), Some(one)).await.expect("revoke"),
        vec![one]
    );
    closed_revoked(&mut wa2, "noted revocation, node 2").await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    wa.ping().await;

    // Not noted: straight to the store, as a tool that knows nothing of notes would.
    let raw = second
        .revoke_sessions_except(uid(&b), None)
        .await
        .expect("raw revocation");
    assert_eq!(raw, vec![SessionId(b.session_id)]);
    let took = closed_revoked(&mut wb, "unnoted revocation, node 2").await;
    assert!(took < std::time::Duration::from_secs(4), "{took:?}");

    // A lock closes node 1's socket and refuses logins on both nodes.
    admin.lock(uid(&a)).await.expect("lock");
    closed_revoked(&mut wa, "lock, node 1").await;
    for t in [&t1, &t2] {
        login(&t.client, &a.phone, &a.password, &a.device)
            .await
            .assert_error(403, "account_locked");
    }
    admin.unlock(uid(&a)).await.expect("unlock");
    let r = login(&t2.client, &a.phone, &a.password, &a.device).await;
    assert_eq!(r.status, 200, "{}", r.body);

    n1.stop().await;
    n2.stop().await;
    drop(admin);
    if let Some(db) = db {
        db.drop_database().await;
    }
}
