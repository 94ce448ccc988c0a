//! Operating the `melo` binary: start-up validation that names the variable, `check-config`
//! with secrets redacted, JSON logs with a separate audit trail (ids only), and a graceful
//! SIGTERM under open sockets that loses no acknowledged message.

// The fresh-database guard of the audit test; this file uses only part of it.
#[allow(dead_code, unreachable_pub)]
#[path = "zk_audit/backends.rs"]
mod backends;
mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::binary::{run_melo, start_with, stop, terminate, wait_exit};
use common::realtime::{make_contacts, online, relay, Target};
use common::ws::{is, WsClient};
use common::{login, new_user};
use serde_json::Value;

const FIXTURE: &str = "HTTP_PORT=0\nWS_PORT=0\nRATE_LIMIT_CALLS=100000\nFAILED_LOGIN_LIMIT=1000\n\
                       FAILED_LOGIN_IP_LIMIT=100000\nBCRYPT_COST=4\n";

fn run_binary(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    run_melo(dir, args, env)
}

#[test]
fn a_bad_setting_stops_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".env"), FIXTURE).expect(".env");
    for (var, value) in [
        ("BCRYPT_COST", "3"),
        ("WS_PORT", "eighty"),
        ("TYPING_TTL", "0"),
        ("LOG_FORMAT", "xml"),
        ("HOST", "example.com"),
        ("TRUSTED_PROXIES", "10.0.0.1,not-an-ip"),
        ("TLS_CERT_FILE", "/etc/melo/cert.pem"),
    ] {
        let out = run_binary(dir.path(), &[], &[(var, value)]);
        assert!(!out.status.success(), "{var}={value} must stop start-up");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(var),
            "{var}={value}: the error names the variable: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    }
    // Nothing was created by a refused start.
    assert!(!dir.path().join("melo-data").exists());
}

#[test]
fn check_config_prints_effective_settings_with_secrets_redacted() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".env"), FIXTURE).expect(".env");
    let out = run_binary(
        dir.path(),
        &["check-config"],
        &[
            ("TURN_SECRET", "turn-secret-4242"),
            ("ENCRYPTION_KEY_STR", "operator-secret-9191"),
            ("DB_URL", "sqlite:///tmp/melo-check.db"),
            ("TYPING_TTL", "7"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(!text.contains("turn-secret-4242") && !text.contains("operator-secret-9191"));
    let v: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(v["config"]["realtime"]["turn_secret"], "[redacted]");
    assert_eq!(v["config"]["realtime"]["typing_ttl"], 7);
    assert_eq!(v["config"]["auth"]["bcrypt_cost"], 4, "from .env");
    assert_eq!(v["server"]["encryption_key_str"], "[redacted]");
    assert_eq!(v["server"]["db_url"], "sqlite:///tmp/melo-check.db");
    assert_eq!(v["logging"]["max_bytes"], 10 * 1024 * 1024);
    assert!(
        !dir.path().join("melo-data").exists(),
        "a check starts nothing"
    );
}

fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_sockets_keeps_acknowledged_messages_and_audits() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".env"), FIXTURE).expect(".env");
    let logs = dir.path().join("logs");
    let (log, audit) = (logs.join("melo.log"), logs.join("audit.log"));
    let (log_s, audit_s) = (log.display().to_string(), audit.display().to_string());
    let env = [
        ("RUST_LOG", "info"),
        ("LOG_FILE", log_s.as_str()),
        ("AUDIT_LOG_FILE", audit_s.as_str()),
    ];
    let server = start_with(dir.path(), &env);
    let http = server.http_addr();
    let t = Target::new(server.client.clone(), http, http);
    let a = new_user(&t.client, "Alice").await;
    let b = new_user(&t.client, "Bob").await;
    make_contacts(&t, &a, &b).await;
    let r = login(&t.client, &a.phone, "wrong-password", &a.device).await;
    r.assert_error(401, "invalid_credentials");

    // A's message is acknowledged (`queued`) while B is offline; then SIGTERM.
    let mut wa = online(&t, &a).await;
    let id = relay(&mut wa, &a, &b, "U0lHVEVSTQ==", "term-1").await;
    terminate(&server);
    while wa.recv_json(Duration::from_secs(10)).await.is_some() {}
    assert_eq!(wa.closed, Some((1001, "going_away".to_owned())));
    wait_exit(server, Duration::from_secs(15));

    // After a restart B gets it from its queue.
    let server = start_with(dir.path(), &env);
    let mut wb = WsClient::open(server.http_addr(), &b.token).await;
    let sync = wb.sync().await;
    assert!(
        sync.backlog
            .iter()
            .any(|f| is(f, "relay_delivery") && f["message_id"] == id.as_str()),
        "the acknowledged message survived the shutdown: {:?}",
        sync.backlog
    );
    wb.ack_and_close().await;
    stop(server);

    // The audit trail: security events only, ids only.
    let events = json_lines(&audit);
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| e["fields"]["event"].as_str())
        .collect();
    assert_eq!(kinds.len(), events.len(), "only audit events: {events:?}");
    for kind in ["register", "login", "login_failed", "data_keys_generated"] {
        assert!(kinds.contains(&kind), "{kind} audited: {kinds:?}");
    }
    assert!(events.iter().all(|e| e["target"] == "melo::audit"));
    let failed = events
        .iter()
        .find(|e| e["fields"]["event"] == "login_failed")
        .expect("failed login");
    assert_eq!(failed["fields"]["user_id"], a.uid.as_str());
    // The general log is JSON lines and has the shutdown; neither log holds PII or secrets.
    let lines = json_lines(&log);
    assert!(lines.iter().any(|l| l["fields"]["message"] == "stopped"));
    for path in [&log, &audit] {
        let text = std::fs::read_to_string(path).expect("log");
        for secret in [&a.phone, &b.phone, &a.password, &a.token, &a.device_token] {
            assert!(!text.contains(secret.as_str()), "{} leaks", path.display());
        }
        assert!(!text.contains("Alice") && !text.contains("wrong-password"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_their_own_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".env"), FIXTURE).expect(".env");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let server = start_with(dir.path(), &[("METRICS_ADDR", addr.as_str())]);
    assert_eq!(server.client.get("/status", None).await.status, 200);
    server
        .client
        .get("/metrics", None)
        .await
        .assert_error(404, "feature_disabled");
    let scraper = common::Client::new(format!("http://{addr}"));
    let r = scraper.get("/metrics", None).await;
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.raw.to_vec()).expect("utf-8");
    assert!(
        text.contains(
            "melo_http_requests_total{method=\"GET\",route=\"/status\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert_eq!(scraper.get("/status", None).await.status, 404);
    stop(server);
}

/// Two example-binary processes on the same MySQL and Redis (CI sets both URLs; otherwise
/// skipped with a note): a DM from a user on process 1 reaches a user on process 2 live, and a
/// revocation on process 1 closes the socket on process 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_mysql_and_redis() {
    two_processes("MELO_TEST_REDIS_URL").await;
}

/// The same with `REDIS_URL` listing the seeds of a Redis Cluster
/// (`MELO_TEST_REDIS_CLUSTER_URL`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_mysql_and_a_redis_cluster() {
    two_processes("MELO_TEST_REDIS_CLUSTER_URL").await;
}

/// Two processes on a fresh database of `MELO_TEST_MYSQL_URL` and the Redis of `redis_var`.
async fn two_processes(redis_var: &str) {
    let Some((mysql, redis)) = backends::mysql_and_redis(redis_var) else {
        return;
    };
    // A fresh `melo_t_…` database (the runs of this test go in parallel), dropped at the end
    // or after a panic.
    let (db, mysql) = backends::MysqlDb::create_empty(&mysql).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".env"), FIXTURE).expect(".env");
    // One key directory for both (the first process creates the keys).
    let data = dir.path().join("shared-data");
    let data_s = data.display().to_string();
    let env = [
        ("DB_URL", mysql.as_str()),
        ("REDIS_URL", redis.as_str()),
        ("MELO_DATA_DIR", data_s.as_str()),
    ];
    let p1 = start_with(dir.path(), &env);
    let p2 = start_with(dir.path(), &env);
    let (h1, h2) = (p1.http_addr(), p2.http_addr());
    let t1 = Target::new(p1.client.clone(), h1, h1);
    let t2 = Target::new(p2.client.clone(), h2, h2);
    let a = new_user(&t1.client, "pa").await;
    let b = new_user(&t2.client, "pb").await;
    make_contacts(&t1, &a, &b).await;
    let mut wa = online(&t1, &a).await;
    let mut wb = online(&t2, &b).await;
    let id = relay(&mut wa, &a, &b, "VFdPLVBST0M=", "tp-1").await;
    wb.recv_where(
        "the DM from the other process",
        |f| is(f, "relay_delivery") && f["message_id"] == id.as_str(),
        Duration::from_secs(10),
    )
    .await;
    let b2 = common::realtime::second_device(&t1, &b).await;
    let r = t1
        .client
        .call(
            http::Method::DELETE,
            &format!("/sessions/{}", b.session_id),
            Some(&b2.token),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    while wb.recv_json(Duration::from_secs(10)).await.is_some() {}
    assert_eq!(wb.closed, Some((1008, "token_revoked".to_owned())));
    wa.ack_and_close().await;
    stop(p1);
    stop(p2);
    db.drop_database().await;
}
