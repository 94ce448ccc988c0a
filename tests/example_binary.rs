//! PROTOCOL scenarios S1, S2, S5 (profile/keys) and the real-time scenarios S4, S6–S11 against the
//! example binary operators run, configured only through a `.env` file in its working directory,
//! with zero other setup; the real-time scenarios again with MySQL and one Redis, and with MySQL
//! and a Redis Cluster (`DB_URL`, and `REDIS_URL` listing the cluster's seeds).

// The fresh-database guard of the audit test; this file uses only part of it.
#[allow(dead_code, unreachable_pub)]
#[path = "zk_audit/backends.rs"]
mod backends;
mod common;

use std::path::Path;

use common::binary::{start, start_with, stop};
use common::realtime::{self, Target};
use common::{avatars, calls, chats, read_markers, scenarios, schedule, session_scenarios};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_against_the_melo_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The PROTOCOL §7 fixture, through .env (HTTP_PORT=0: pick a free port).
    std::fs::write(
        dir.path().join(".env"),
        "# fixture\nHTTP_PORT=0\nWS_PORT=0\nRATE_LIMIT_CALLS=100000\nFAILED_LOGIN_LIMIT=1000\n\
         FAILED_LOGIN_IP_LIMIT=100000\nCORS_ORIGINS=http://127.0.0.1:5173\nBCRYPT_COST=\"4\"\n",
    )
    .expect("write .env");
    let server = start(dir.path());
    scenarios::s1(&server.client, server.port).await;
    let users = scenarios::s2(&server.client).await;
    scenarios::s5_profile(&server.client, &users.a, &users.c).await;

    // Zero setup: data and keys under ./melo-data, key files private.
    let data = dir.path().join("melo-data");
    assert!(data.join("melo.db").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&data.join("keys").join("data-keys.json")), 0o600);
        for f in std::fs::read_dir(data.join("keys").join("jwt")).expect("jwt dir") {
            assert_eq!(mode(&f.expect("entry").path()), 0o600);
        }
    }
    stop(server);

    // A restart keeps keys and data: the old token still works and the profile is intact.
    let server = start(dir.path());
    let r = server.client.get("/profile", Some(&users.a.token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["nickname"], "alice2");
    assert_eq!(r.body["phone"], users.a.phone.as_str());
    stop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_scenarios_against_the_melo_binary() {
    realtime_scenarios(&[]).await;
}

/// With `DB_URL` on a fresh database of `MELO_TEST_MYSQL_URL` and `REDIS_URL` set to
/// `redis_var` (either unset: skipped with a note; set but unreachable: the binary refuses to
/// start and the test fails).
async fn realtime_scenarios_on_mysql_and(redis_var: &str) {
    let Some((mysql, redis)) = backends::mysql_and_redis(redis_var) else {
        return;
    };
    let (db, db_url) = backends::MysqlDb::create_empty(&mysql).await;
    realtime_scenarios(&[("DB_URL", &db_url), ("REDIS_URL", &redis)]).await;
    db.drop_database().await;
}

/// MySQL + one Redis server (`MELO_TEST_REDIS_URL`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_scenarios_against_the_example_binary_on_mysql_and_redis() {
    realtime_scenarios_on_mysql_and("MELO_TEST_REDIS_URL").await;
}

/// MySQL + a Redis Cluster (`MELO_TEST_REDIS_CLUSTER_URL`, the seeds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_scenarios_against_the_example_binary_on_mysql_and_a_redis_cluster() {
    realtime_scenarios_on_mysql_and("MELO_TEST_REDIS_CLUSTER_URL").await;
}

/// The real-time scenarios against the binary, with `env` on top of the `.env` fixture.
async fn realtime_scenarios(env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().expect("tempdir");
    // PROTOCOL §3.5 reserves WS_PORT=0 for "no second listener", so the second listener gets a
    // port that was free a moment ago.
    let ws_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    // The PROTOCOL §7 fixture.
    std::fs::write(
        dir.path().join(".env"),
        format!(
            "HTTP_PORT=0\nWS_PORT={ws_port}\nRATE_LIMIT_CALLS=100000\nFAILED_LOGIN_LIMIT=1000\n\
             FAILED_LOGIN_IP_LIMIT=100000\nCALL_RING_TIMEOUT=5\nTURN_URLS=turn:127.0.0.1:3478\n\
             TURN_SECRET=s3cret\nCORS_ORIGINS=http://127.0.0.1:5173\nBCRYPT_COST=4\n"
        ),
    )
    .expect("write .env");
    let server = start_with(dir.path(), env);
    let ws = server.ws_addr();
    assert_eq!(ws.port(), ws_port, "the second listener is on WS_PORT");
    let target = Target::new(server.client.clone(), server.http_addr(), ws);
    realtime::all(&target).await;
    session_scenarios::all(&target).await;
    calls::s14(&target).await;
    avatars::s5_avatar(&target).await;
    chats::s12(&target).await;
    chats::s13(&target).await;
    read_markers::scenario(&target, &target).await;
    schedule::scenario(&target).await;
    stop(server);
}
