//! The zero-knowledge check after a deletion (issue 17): a user with distinctive values in every
//! place the server keeps them (profile, phone blind index, password hash, E2E key, secret-key
//! backup, avatar, settings, sessions from a known address and user agent, a revoked session,
//! device token hash, push registration, a chat of her own) deletes her account; then none of
//! those values remains in any form:
//!
//! - not as plaintext (every form of the phone, names, tokens…), searched as in tests/privacy.rs;
//! - not as the stored bytes themselves: every cell of her rows (sealed blobs, blind index,
//!   hash), listed from the dump *before* the deletion (and proven findable there), is searched
//!   for after it, by its first and its last 32 bytes, in every table cell and, for SQLite, in
//!   the raw database, WAL and shared-memory files;
//! - not in the ephemeral state keyed by her: her CSRF token, link code, last-seen time,
//!   announced status, rate-limit bucket (the key names are computed as the blinding wrapper
//!   does).
//!
//! Backends as in tests/privacy.rs: SQLite + memory ephemeral always; MySQL and Redis when
//! `MELO_TEST_MYSQL_URL` / `MELO_TEST_REDIS_URL` are set.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::Full;
use melo::crypto::Pii;
use melo::{Ephemeral, MemoryEphemeral, SqliteStore, Store};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::realtime::{delivery, http_send, make_contacts, online, Target};
use crate::common::ws::WsClient;
use crate::common::{
    self, avatars, new_user, random_device, test_config, Client, Resp, TestServer,
};
use backends::{MysqlDb, RedisKeys};
use dump::Entry;
use search::Needles;

// The fresh-backend guards, the dumps and the search of the audit test (tests/privacy.rs); this
// file uses only part of them.
#[allow(dead_code, unreachable_pub)]
#[path = "../zk_audit/backends.rs"]
mod backends;
#[allow(dead_code, unreachable_pub)]
#[path = "../zk_audit/dump.rs"]
mod dump;
#[allow(dead_code, unreachable_pub)]
#[path = "../zk_audit/search.rs"]
mod search;

const PHONE: &str = "+79993217654";
const NAME: &str = "Philippa Voorhees-Zk";
const NICK: &str = "pvoorhees_zk";
const PASSWORD: &str = "Erase-Me-Passw0rd-77";
const USERNAME: &str = "pvoorhees_erase";
const BIO: &str = "Keeper of the lighthouse log at Skerryvore";
const BACKUP: &str = "ERASEDBACKUPCIPHERTEXT0123456789";
const AVATAR_MARKER: &str = "ERASEDAVATARPIXELS";
const PUSH_TOKEN: &str = "erased-fcm-token-9f3c1a";
const CHAT_NAME: &str = "Skerryvore Private Log";
const UA: &str = "ZkEraseAgent/9.9 (Lighthousephone)";
const IP: &str = "198.51.100.233";
const UA2: &str = "ZkEraseSecondDevice/1.2";
const IP2: &str = "203.0.113.199";

/// Where ephemeral state of the run lives, to ask whether a key exists.
enum Ephem {
    Memory(Arc<MemoryEphemeral>),
    Redis { url: String, prefix: String },
}

impl Ephem {
    /// The key name the backend holds for `key`: itself in memory; on Redis the blinding
    /// wrapper's `<prefix><kind>:<blind tag>`.
    fn name(&self, key: &str) -> String {
        match self {
            Self::Memory(_) => key.to_owned(),
            Self::Redis { prefix, .. } => {
                let first = key.split(':').next().unwrap_or("");
                let kind = if !first.is_empty()
                    && first.len() <= 16
                    && first.bytes().all(|b| b.is_ascii_lowercase())
                {
                    first
                } else {
                    "k"
                };
                let pii = Pii::new(common::keys());
                format!(
                    "{prefix}{kind}:{}",
                    pii.blind_tag("ephemeral-key", key.as_bytes())
                )
            }
        }
    }

    /// Does `key` exist? In memory only value keys can be read (counters and limiters not).
    async fn exists(&self, key: &str) -> bool {
        match self {
            Self::Memory(m) => m.get(key).await.expect("get").is_some(),
            Self::Redis { url, .. } => {
                let client = redis::Client::open(url.as_str()).expect("redis url");
                let mut con = client
                    .get_multiplexed_async_connection()
                    .await
                    .expect("redis");
                let n: i64 = redis::cmd("EXISTS")
                    .arg(self.name(key))
                    .query_async(&mut con)
                    .await
                    .expect("EXISTS");
                n == 1
            }
        }
    }
}

struct Run {
    sqlite: Option<(tempfile::TempDir, Arc<SqliteStore>)>,
    mysql: Option<(MysqlDb, Arc<melo::MysqlStore>)>,
    _redis: Option<RedisKeys>,
    ephem: Ephem,
}

impl Run {
    /// Every table cell, and for SQLite the raw files too.
    async fn dump(&self) -> Vec<(&'static str, Vec<Entry>)> {
        let mut out = Vec::new();
        if let Some((dir, _)) = &self.sqlite {
            out.push((
                "SQLite tables",
                dump::sqlite_tables(&dir.path().join("melo.db")),
            ));
            out.push(("SQLite files", dump::files(dir.path())));
        }
        if let Some((_, store)) = &self.mysql {
            out.push(("MySQL tables", dump::mysql_tables(store.pool()).await));
        }
        out
    }
}

/// Every cell of the rows that belong to `uid` (tables keyed by `uid`) or are the chat `chat`,
/// from a table dump: `(place, bytes)` of cells of at least 16 bytes (sealed blobs, the blind
/// index, hashes; not the small integers and flags, which no one could tell apart).
fn rows_of(tables: &[Entry], uid: &str, chat: i64) -> Vec<(String, Vec<u8>)> {
    // place: "<backend> table `t` row N column `c`"
    let mut rows: BTreeMap<(String, String), Vec<(String, &Entry)>> = BTreeMap::new();
    for e in tables {
        let mut parts = e.place.split('`');
        let (_, table, row, column) = (parts.next(), parts.next(), parts.next(), parts.next());
        if let (Some(t), Some(r), Some(c)) = (table, row, column) {
            rows.entry((t.to_owned(), r.to_owned()))
                .or_default()
                .push((c.to_owned(), e));
        }
    }
    let owned = [
        "users",
        "secret_keys",
        "user_settings",
        "avatars",
        "sessions",
        "push_registrations",
    ];
    let mut out = Vec::new();
    for ((table, _), cells) in rows {
        let has = |col: &str, v: &str| {
            cells
                .iter()
                .any(|(c, e)| c == col && e.bytes == v.as_bytes())
        };
        let mine = (owned.contains(&table.as_str()) && has("uid", uid))
            || (table == "chats" && has("id", &chat.to_string()));
        if mine {
            for (col, e) in cells {
                if e.bytes.len() >= 16 {
                    out.push((format!("{table}.{col}"), e.bytes.clone()));
                }
            }
        }
    }
    out
}

/// Places in `entries` holding the first or the last 32 bytes of `blob`.
fn found(entries: &[Entry], blob: &[u8]) -> Vec<String> {
    let n = blob.len().min(32);
    let probes = [&blob[..n], &blob[blob.len() - n..]];
    entries
        .iter()
        .filter(|e| {
            probes
                .iter()
                .any(|p| e.bytes.windows(p.len()).any(|w| w == *p))
        })
        .map(|e| e.place.clone())
        .collect()
}

async fn as_client(
    c: &Client,
    m: Method,
    path: &str,
    token: Option<&str>,
    ua: &str,
    ip: &str,
    body: Value,
) -> Resp {
    let req = c
        .request(m, path, token)
        .header("user-agent", ua)
        .header("x-forwarded-for", ip)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    c.send(req).await
}

async fn ok(c: &Client, m: Method, path: &str, token: &str, body: Value) -> Value {
    let r = as_client(c, m.clone(), path, Some(token), UA, IP, body).await;
    assert_eq!(r.status, 200, "{m} {path}: {}", r.body);
    r.body
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} in {v}"))
        .to_owned()
}

async fn run(r: Run, store: Arc<dyn Store>, ephemeral: Arc<dyn Ephemeral>) {
    let mut config = test_config();
    config.http.trusted_proxies = vec![IpAddr::V4(Ipv4Addr::LOCALHOST).into()];
    let srv = TestServer::start_node(config, store.clone(), ephemeral).await;
    let t = Target::of(&srv);
    let c = &srv.client;
    let pem = common::user_pem();
    let reg = json!({"phone": PHONE, "name": NAME, "nickname": NICK, "password": PASSWORD,
                     "device_id": random_device(), "public_e2e_key": pem});
    let reg = as_client(c, Method::POST, "/register", None, UA, IP, reg).await;
    assert_eq!(reg.status, 200, "{}", reg.body);
    let uid = s(&reg.body, "unique_id");
    let login = |ua: &'static str, ip: &'static str| {
        let body = json!({"identifier": PHONE, "password": PASSWORD, "device_id": random_device()});
        as_client(c, Method::POST, "/login", None, ua, ip, body)
    };
    let l = login(UA, IP).await;
    assert_eq!(l.status, 200, "{}", l.body);
    let (token, csrf, device_token) = (
        s(&l.body, "access_token"),
        s(&l.body, "csrf_token"),
        s(&l.body, "device_token"),
    );
    let sid = l.body["session_id"].as_i64().expect("sid");
    let l2 = login(UA2, IP2).await;
    let sid2 = l2.body["session_id"].as_i64().expect("sid");
    ok(
        c,
        Method::DELETE,
        &format!("/sessions/{sid2}"),
        &token,
        json!({}),
    )
    .await;
    ok(
        c,
        Method::PUT,
        "/profile",
        &token,
        json!({"username": USERNAME, "bio": BIO}),
    )
    .await;
    ok(
        c,
        Method::POST,
        "/e2e/secret_key",
        &token,
        json!({"ciphertext": BACKUP}),
    )
    .await;
    ok(
        c,
        Method::POST,
        "/register_push",
        &token,
        json!({"platform": "android", "push_token": PUSH_TOKEN}),
    )
    .await;
    ok(c, Method::POST, "/devices/link_code", &token, json!({})).await;
    ok(c, Method::GET, "/account/export", &token, json!({})).await;
    ok(c, Method::POST, "/status/offline", &token, json!({})).await;
    ok(c, Method::POST, "/status/online", &token, json!({})).await;
    let png = avatars::png(AVATAR_MARKER.as_bytes());
    let ct = format!("multipart/form-data; boundary={}", avatars::BOUNDARY);
    let up = c
        .send(
            c.request(Method::POST, "/avatar/upload", Some(&token))
                .header("content-type", ct)
                .body(Full::new(Bytes::from(avatars::multipart("file", &png))))
                .expect("request"),
        )
        .await;
    assert_eq!(up.status, 200, "{}", up.body);
    let chat = ok(
        c,
        Method::POST,
        "/chats/create",
        &token,
        json!({"name": CHAT_NAME}),
    )
    .await["chat_id"]
        .as_i64()
        .expect("chat_id");
    let me = common::User {
        uid: uid.clone(),
        phone: PHONE.into(),
        password: PASSWORD.into(),
        device: String::new(),
        token: token.clone(),
        csrf: csrf.clone(),
        session_id: sid,
        device_token: device_token.clone(),
    };
    let bob = new_user(c, "Bob").await;
    make_contacts(&t, &me, &bob).await;
    let mut wb = online(&t, &bob).await;
    http_send(&t, &me, &bob, "ciphertext-for-bob").await;
    delivery(&mut wb, &me, &bob).await;
    wb.ack_all().await;
    wb.ping().await;
    let mut ws = WsClient::open(srv.addr, &token).await;
    ws.sync().await;
    ws.ack_all().await;
    ws.ping().await;

    // Her values: plaintext needles, and the bytes of her rows as stored.
    let mut needles = Needles::default();
    needles.phone("erased", PHONE);
    for (label, v) in [
        ("name", NAME),
        ("nickname", NICK),
        ("password", PASSWORD),
        ("username", USERNAME),
        ("bio", BIO),
        ("backup", BACKUP),
        ("avatar", AVATAR_MARKER),
        ("push token", PUSH_TOKEN),
        ("chat name", CHAT_NAME),
        ("user agent", UA),
        ("IP", IP),
        ("2nd user agent", UA2),
        ("2nd IP", IP2),
        ("access token", &token),
        ("CSRF token", &csrf),
        ("device token", &device_token),
    ] {
        needles.add(label, v);
    }
    needles.add(
        "E2E public key (PEM body)",
        pem.lines().nth(1).expect("pem body"),
    );
    let before = r.dump().await;
    let tables = before
        .iter()
        .find(|(w, _)| w.ends_with("tables"))
        .expect("a table dump");
    let mut blobs = rows_of(&tables.1, &uid, chat);
    blobs.push((
        "device token hash".into(),
        Sha256::digest(device_token.as_bytes()).to_vec(),
    ));
    for table in [
        "users.phone_index",
        "users.name",
        "users.bio",
        "sessions.ip",
        "avatars.sealed",
        "push_registrations.sealed",
        "secret_keys.ciphertext",
        "user_settings.settings",
        "chats.name",
    ] {
        assert!(
            blobs.iter().any(|(p, _)| p == table),
            "{table} among her rows: {:?}",
            blobs.iter().map(|(p, _)| p).collect::<Vec<_>>()
        );
    }
    assert_eq!(
        blobs.iter().filter(|(p, _)| p == "sessions.ip").count(),
        2,
        "both sessions"
    );
    for (what, entries) in &before {
        for (place, blob) in &blobs {
            assert!(
                !found(entries, blob).is_empty(),
                "{what} before: {place} not findable"
            );
        }
    }
    let keys = [
        format!("csrf:{sid}"),
        format!("seen:{uid}"),
        format!("announced:{uid}"),
        format!("linksess:{sid}"),
        format!("rl:u:{uid}"),
        format!("export:{uid}"),
    ];
    for k in &keys[..4] {
        assert!(r.ephem.exists(k).await, "{k} before the deletion");
    }
    if matches!(r.ephem, Ephem::Redis { .. }) {
        for k in &keys[4..] {
            assert!(
                r.ephem.exists(k).await,
                "{k} (a limiter) before the deletion"
            );
        }
    }

    let body = json!({"password": PASSWORD, "csrf_token": csrf});
    let del = ok(c, Method::DELETE, "/account", &token, body).await;
    assert_eq!(del["status"], "deleted");
    assert_eq!(ws.expect_close(Duration::from_secs(5)).await.0, 1008);
    // The socket's end runs presence on the server: give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let check = |when: &'static str, dumps: Vec<(&'static str, Vec<Entry>)>| {
        for (what, entries) in dumps {
            search::assert_clean(&format!("{what} {when}"), &entries, &needles);
            for (place, blob) in &blobs {
                let hits = found(&entries, blob);
                assert!(
                    hits.is_empty(),
                    "{what} {when}: {place} of the deleted account in {hits:?}"
                );
            }
        }
    };
    check("after the deletion", r.dump().await);
    for k in &keys {
        assert!(!r.ephem.exists(k).await, "{k} after the deletion");
    }
    // Bob still has the message she sent him.
    let h = c
        .get(&format!("/messages/history/dm/{uid}"), Some(&bob.token))
        .await;
    assert!(
        h.body["messages"]
            .to_string()
            .contains("ciphertext-for-bob"),
        "{}",
        h.body
    );
    wb.close().await;
    srv.stop().await;
    check("after stop", r.dump().await);
    if let Some((db, store)) = r.mysql {
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
async fn sqlite_and_memory_keep_nothing_of_a_deleted_account() {
    let (dir, store) = sqlite().await;
    let eph = Arc::new(MemoryEphemeral::new());
    let r = Run {
        sqlite: Some((dir, store.clone())),
        mysql: None,
        _redis: None,
        ephem: Ephem::Memory(eph.clone()),
    };
    run(r, store, eph).await;
}

/// MySQL and Redis, each when its URL is set (the other side falls back to SQLite / memory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_and_redis_keep_nothing_of_a_deleted_account() {
    let mysql = backends::env_url("MELO_TEST_MYSQL_URL");
    let redis = backends::env_url("MELO_TEST_REDIS_URL");
    if mysql.is_none() && redis.is_none() {
        eprintln!("MELO_TEST_MYSQL_URL and MELO_TEST_REDIS_URL are unset: skipping");
        return;
    }
    let (mut sqlite_part, mut mysql_part) = (None, None);
    let store: Arc<dyn Store> = match &mysql {
        Some(url) => {
            let (db, store) = MysqlDb::create(url).await;
            mysql_part = Some((db, store.clone()));
            store
        }
        None => {
            let (dir, store) = sqlite().await;
            sqlite_part = Some((dir, store.clone()));
            store
        }
    };
    let (ephemeral, ephem, keys): (Arc<dyn Ephemeral>, Ephem, Option<RedisKeys>) = match &redis {
        Some(url) => {
            let (e, keys) = backends::redis(url).await;
            let ephem = Ephem::Redis {
                url: url.clone(),
                prefix: keys.prefix.clone(),
            };
            (e, ephem, Some(keys))
        }
        None => {
            let m = Arc::new(MemoryEphemeral::new());
            (m.clone(), Ephem::Memory(m), None)
        }
    };
    let r = Run {
        sqlite: sqlite_part,
        mysql: mysql_part,
        _redis: keys,
        ephem,
    };
    run(r, store, ephemeral).await;
}
