//! "The server knows nothing" (issue 7): after a workload that touches every documented route
//! (checked against `/openapi.json`) with distinctive PII — accounts, sessions from known IPs
//! (v4 and v6, via `X-Forwarded-For` from a trusted proxy) and user agents, device tokens and
//! link codes, profiles, E2E keys and the secret-key backup, avatars, contacts, DMs over WS and
//! HTTP, named groups and channels, invites, push subscriptions, presence, typing, calls — no
//! plaintext appears in what the backends keep:
//!
//! - SQLite: every cell of every table in `sqlite_master`, and the raw bytes of the database
//!   file, its `-wal` and `-shm`;
//! - MySQL: every cell of every table of `SHOW TABLES`, as raw bytes;
//! - Redis: every key under the test prefix (its name too) with its value read by type, and every
//!   command the nodes sent (`MONITOR`: values that lived briefly, messages on the node bus).
//!
//! Searched for (ASCII case-insensitively): phones in E.164, without `+`, national, formatted and
//! as the last 10 digits; names, nicknames, usernames, bios, passwords; IPs; user agents; chat
//! and channel names; invite codes; push endpoints (full, host, path), keys and tokens; link
//! codes; access, CSRF and device tokens; SDP and ICE addresses; avatar bytes; the public key.
//! Checked with the sockets open (live presence, typing and call state) and again after the
//! server stopped. (The memory ephemeral of the SQLite run lives in the process: not dumped.)
//!
//! Backends: SQLite + memory ephemeral always; MySQL and Redis when `MELO_TEST_MYSQL_URL` /
//! `MELO_TEST_REDIS_URL` are set (unset: skipped with a note; set but unusable: the test fails).

#![cfg(all(
    feature = "sqlite",
    feature = "mysql",
    feature = "redis",
    feature = "web-push"
))]

mod common;
mod zk_audit;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use common::push_service::PushService;
use common::{test_config, TestServer};
use melo::{Ephemeral, MemoryEphemeral, MysqlStore, SqliteStore, Store};
use zk_audit::backends::{self, MysqlDb, RedisKeys};
use zk_audit::dump::{self, Entry};
use zk_audit::monitor::RedisMonitor;
use zk_audit::people::DM_PAYLOAD;
use zk_audit::search::{self, Needles};

/// The backends of one audit run, each of which can be dumped.
struct Backends {
    sqlite: Option<(tempfile::TempDir, Arc<SqliteStore>)>,
    mysql: Option<(MysqlDb, Arc<MysqlStore>)>,
    /// Its keys are deleted when this is dropped.
    redis: Option<RedisKeys>,
    /// Every command sent to Redis under the prefix, captured since before the server started.
    monitor: Option<RedisMonitor>,
}

/// One dump: what it is, its entries, and a value it must contain (proof that it read the
/// data at all: a stored message's client ciphertext, a key family, the bus).
struct Dump {
    what: &'static str,
    entries: Vec<Entry>,
    proof: &'static str,
}

impl Backends {
    async fn dump(&self) -> Vec<Dump> {
        let mut out = Vec::new();
        let mut add = |what, entries, proof| {
            out.push(Dump {
                what,
                entries,
                proof,
            })
        };
        if let Some((dir, _store)) = &self.sqlite {
            add(
                "SQLite tables",
                dump::sqlite_tables(&dir.path().join("melo.db")),
                DM_PAYLOAD,
            );
            add("SQLite files", dump::files(dir.path()), DM_PAYLOAD);
        }
        if let Some((_, store)) = &self.mysql {
            add(
                "MySQL tables",
                dump::mysql_tables(store.pool()).await,
                DM_PAYLOAD,
            );
        }
        if let Some(r) = &self.redis {
            add(
                "Redis keys",
                dump::redis_keys(&r.url, &r.prefix).await,
                ":csrf:",
            );
        }
        if let Some(m) = &self.monitor {
            add("Redis commands (MONITOR)", m.entries().await, "\"PUBLISH\"");
        }
        out
    }

    /// Dumps everything and asserts that no needle occurs, and no identifier of `ids` in what
    /// Redis holds or was sent; `when` names the moment.
    async fn audit(&self, needles: &Needles, ids: &Needles, when: &str) -> Vec<Dump> {
        let dumps = self.dump().await;
        for d in &dumps {
            let what = format!("{} {when}", d.what);
            assert!(
                search::contains(&d.entries, d.proof),
                "{what}: the dump does not show {:?}; it cannot be reading the data",
                d.proof
            );
            search::assert_clean(&what, &d.entries, needles);
            if d.what.starts_with("Redis") {
                search::assert_clean(&format!("{what} (identifiers)"), &d.entries, ids);
            }
        }
        if let (Some(r), Some(keys)) = (&self.redis, dumps.iter().find(|d| d.what == "Redis keys"))
        {
            assert_key_names_blind(&r.prefix, &keys.entries);
        }
        dumps
    }
}

/// Redis keys (without the prefix) that prove the dump saw the live state of the workload.
const LIVE_KEYS: &[&str] = &["csrf:", "link:", "call:", "typing:", "slow:", "rl:"];

/// Every Redis key name is `<prefix><kind>:<32 hex>`: a short lowercase family name and a keyed
/// blind tag. No uid, chat id, session id, message id or address can hide in that shape.
fn assert_key_names_blind(prefix: &str, entries: &[Entry]) {
    let mut names = 0;
    for e in entries
        .iter()
        .filter(|e| e.place.starts_with("redis key name"))
    {
        names += 1;
        let name = String::from_utf8_lossy(&e.bytes);
        let rest = name
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("key {name:?} outside the prefix"));
        let (kind, tag) = rest
            .split_once(':')
            .unwrap_or_else(|| panic!("key {name:?} has no kind"));
        assert!(
            (1..=16).contains(&kind.len()) && kind.bytes().all(|b| b.is_ascii_lowercase()),
            "key {name:?}: kind {kind:?}"
        );
        assert!(
            tag.len() == 32
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "key {name:?} is not <kind>:<blind tag>"
        );
    }
    assert!(names > 0, "no Redis key names dumped");
}

async fn audit(b: Backends, store: Arc<dyn Store>, ephemeral: Arc<dyn Ephemeral>) {
    let push = PushService::start().await;
    let mut config = test_config();
    config.http.trusted_proxies = vec![IpAddr::V4(Ipv4Addr::LOCALHOST).into()];
    config.push.allow_http = true;
    config.push.allow_private = true;
    config.push.coalesce_seconds = 0;
    let s = TestServer::start_node(config, store, ephemeral).await;
    let out = zk_audit::workload::run(&s, &push).await;
    // Dave is offline: a message push and a call push went to his endpoint.
    push.wait_for(2, Duration::from_secs(10)).await;

    let dumps = b.audit(&out.needles, &out.ids, "with sockets open").await;
    if let Some(prefix) = b.redis.as_ref().map(|r| &r.prefix) {
        let keys = dumps
            .iter()
            .find(|d| d.what == "Redis keys")
            .expect("dumped");
        for family in LIVE_KEYS {
            let want = format!("redis key name \"{prefix}{family}");
            assert!(
                keys.entries.iter().any(|e| e.place.starts_with(&want)),
                "the Redis dump has no {family} key"
            );
        }
    }
    for ws in out.sockets {
        ws.ack_and_close().await;
    }
    s.stop().await;
    b.audit(&out.needles, &out.ids, "after stop").await;
    if let Some((db, store)) = b.mysql {
        db.drop_now(store).await;
    }
}

async fn sqlite() -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("melo.db"))
        .await
        .expect("sqlite");
    (dir, Arc::new(store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_memory_keep_no_plaintext() {
    let (dir, store) = sqlite().await;
    let b = Backends {
        sqlite: Some((dir, store.clone())),
        mysql: None,
        redis: None,
        monitor: None,
    };
    audit(b, store, Arc::new(MemoryEphemeral::new())).await;
}

/// MySQL and Redis, each when its URL is set (the other side falls back to SQLite / memory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_and_redis_keep_no_plaintext() {
    let mysql = backends::env_url("MELO_TEST_MYSQL_URL");
    let redis = backends::env_url("MELO_TEST_REDIS_URL");
    if mysql.is_none() && redis.is_none() {
        eprintln!("MELO_TEST_MYSQL_URL and MELO_TEST_REDIS_URL are unset: skipping");
        return;
    }
    let mut b = Backends {
        sqlite: None,
        mysql: None,
        redis: None,
        monitor: None,
    };
    let store: Arc<dyn Store> = match &mysql {
        Some(url) => {
            let (db, store) = MysqlDb::create(url).await;
            b.mysql = Some((db, store.clone()));
            store
        }
        None => {
            let (dir, store) = sqlite().await;
            b.sqlite = Some((dir, store.clone()));
            store
        }
    };
    let ephemeral: Arc<dyn Ephemeral> = match &redis {
        Some(url) => {
            let (e, keys) = backends::redis(url).await;
            b.monitor = Some(RedisMonitor::start(url, &keys.prefix).await);
            b.redis = Some(keys);
            e
        }
        None => Arc::new(MemoryEphemeral::new()),
    };
    audit(b, store, ephemeral).await;
}

/// The search finds what it must: a planted plaintext is reported with its place, in any case,
/// and the phone variants cover the national and formatted forms.
#[test]
fn the_search_reports_planted_plaintext_and_where() {
    let mut needles = Needles::default();
    needles.phone("planted", "+79995550142");
    needles.add("planted name", "Zebulonia Quux");
    let entries = [
        Entry::new(
            "mysql table `users` row 0 column `name`",
            b"\x00\x01zebulonia QUUX\xff".to_vec(),
        ),
        Entry::new(
            "redis key name \"p:x\"",
            b"p:lock:8 (999) 555-01-42".to_vec(),
        ),
        Entry::new("file melo.db-wal", b"..89995550142..".to_vec()),
        Entry::new(
            "sqlite table `users` row 1 column `bio`",
            b"sealed:\x8a\x13".to_vec(),
        ),
    ];
    let hits = search::find(&entries, &needles);
    let has = |s: &str| hits.iter().any(|h| h.contains(s));
    assert!(
        has("planted name \"Zebulonia Quux\" in mysql table `users` row 0 column `name` at byte 2"),
        "{hits:#?}"
    );
    assert!(
        has("planted phone (formatted) \"8 (999) 555-01-42\" in redis key name"),
        "{hits:#?}"
    );
    assert!(
        has("planted phone (national) \"89995550142\" in file melo.db-wal at byte 2"),
        "{hits:#?}"
    );
    assert!(
        has("planted phone (last 10 digits) \"9995550142\" in file melo.db-wal at byte 3"),
        "{hits:#?}"
    );
    assert!(!hits.iter().any(|h| h.contains("`bio`")), "{hits:#?}");
    let failure = search::check("planted", &entries, &needles).expect_err("a failed check");
    assert!(
        failure.starts_with("planted: 4 plaintext occurrence(s) in 4 entries"),
        "{failure}"
    );
    assert!(search::check("clean", &entries[3..], &needles).is_ok());
}

/// The route check names a documented operation that no request hit with success.
#[test]
fn the_route_check_reports_untouched_operations() {
    let api = zk_audit::api::Api::new(common::Client::new("http://127.0.0.1:9".into()));
    api.record("GET", "/avatar/12345678?x=1", 200);
    api.record("POST", "/b", 404);
    api.record("GET", "/ws", 101);
    let doc = serde_json::json!({"paths": {
        "/avatar/{user_unique_id}": {"get": {}}, "/b": {"post": {}}, "/ws": {"get": {}},
        "/c/{id}/d": {"delete": {}}}});
    assert_eq!(api.untouched(&doc), ["POST /b", "DELETE /c/{id}/d"]);
}
