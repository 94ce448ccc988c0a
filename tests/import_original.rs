//! `melo import-original` (the real binary) against a deployment of the original server built
//! by the test: a fresh MariaDB database in the original's schema, filled with values encrypted
//! as the original encrypted them, including the dirty cases the original let in (duplicate
//! contact edges in both directions, duplicate chat members, plaintext chat names, an
//! undecryptable phone, an invalid phone, a duplicate phone, dangling references), and device
//! tokens in a Redis logical database of their own. Then a dry run (counts, problem rows by
//! original id only, nothing written), a run, a second run (nothing twice), `melo serve` on the
//! result (old password, old device token, old contacts and chats, a message delivered), and
//! the zero-knowledge audit of the files Melo wrote.
//!
//! Needs `MELO_TEST_MYSQL_URL` and `MELO_TEST_REDIS_URL` (unset: skipped with a note; set but
//! unreachable: the test fails).

#[allow(dead_code, unreachable_pub)]
#[path = "zk_audit/backends.rs"]
mod backends;
mod common;
#[allow(dead_code, unreachable_pub)]
#[path = "zk_audit/dump.rs"]
mod dump;
#[allow(dead_code, unreachable_pub)]
#[path = "common/original.rs"]
mod original;
#[allow(dead_code, unreachable_pub)]
#[path = "zk_audit/search.rs"]
mod search;

use std::path::Path;

use common::binary::{run_melo, start_with, stop};
use common::ws::{is, WsClient, WAIT};
use common::{user_pem, Client};
use original::{OriginalDb, OriginalKey, OriginalRedis, UserRow};
use search::Needles;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const FIXTURE: &str = "HTTP_PORT=0\nWS_PORT=0\nRATE_LIMIT_CALLS=100000\nFAILED_LOGIN_LIMIT=1000\n\
                       FAILED_LOGIN_IP_LIMIT=100000\nFAILED_LOGIN_ACCOUNT_LIMIT=100000\n";

/// A PNG signature followed by bytes ≥ 0x80: the Latin-1 round trip must keep them.
fn avatar_png() -> Vec<u8> {
    let mut b = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    b.extend((0u8..=255).rev());
    b
}

fn hex_sha256(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Person {
    uid: &'static str,
    /// As the original stored it (normalized by its rules), and as Melo shows it.
    phone: &'static str,
    melo_phone: &'static str,
    name: &'static str,
    nickname: &'static str,
    password: &'static str,
}

const ALICE: Person = Person {
    uid: "31415926",
    phone: "89161230001",
    melo_phone: "+79161230001",
    name: "Alicia Originale",
    nickname: "alicia_orig",
    password: "alice-password-1",
};
const BOB: Person = Person {
    uid: "27182818",
    phone: "+79161230002",
    melo_phone: "+79161230002",
    name: "Roberto Originale",
    nickname: "roberto_orig",
    password: "bob-password-22",
};
const CAROL: Person = Person {
    uid: "16180339",
    phone: "+79161230003",
    melo_phone: "+79161230003",
    name: "Carolina Originale",
    nickname: "carolina_orig",
    password: "carol-password-3",
};
const GRACE: Person = Person {
    uid: "26457513",
    phone: "+79161230007",
    melo_phone: "+79161230007",
    name: "Graziella Originale",
    nickname: "graziella_orig",
    password: "grace-password-7",
};

const ALICE_DEVICE: &str = "a1b2c3d4e5f60718";
const ALICE_TOKEN: &str = "AliceDeviceToken_0123456789abcdefghijklmnop";
const BOB_DEVICE: &str = "0011223344556677";
const BOB_TOKEN: &str = "BobDeviceToken-0123456789abcdefghijklmnopqr";
const CAROL_DEVICE: &str = "8899aabbccddeeff";
const DAVE_DEVICE: &str = "fedcba9876543210";
const DAVE_TOKEN: &str = "DaveDeviceToken_0123456789abcdefghijklmnopq";
const INVITE: &str = "FalconCode_x-9";
const SECRET_BACKUP: &str = "client-side-encrypted-backup-of-alice-0123456789";
const ALICE_BIO: &str = "Biography of Alicia from the original";
const CHAT_NAME: &str = "Project Falcon Crew";
const CHANNEL_NAME: &str = "Falcon Announcements";
const OLD_MARKER: &str = "0190f5d2-0000-7abc-8def-000000000001";
const ALICE_MARKER: &str = "0190f5d2-7c1e-7abc-8def-0123456789ab";
const BOB_MARKER: &str = "b0b0b0b0-7c1e-7abc-8def-0123456789ab";

/// Every user row of the fixture: the four good ones, and dave (phone under another key), eve
/// (a phone the original's rules refuse), frank (bob's phone without `+`: a duplicate once
/// normalized), grace (a name under another key: imported without it).
struct Fixture {
    key: OriginalKey,
    ids: std::collections::HashMap<&'static str, i64>,
    edges: std::collections::HashMap<&'static str, i64>,
    members: std::collections::HashMap<&'static str, i64>,
    markers: std::collections::HashMap<&'static str, i64>,
}

fn hash(pw: &str) -> String {
    bcrypt::hash(pw, 10).expect("bcrypt")
}

async fn fill(db: &OriginalDb) -> Fixture {
    let key = OriginalKey::random();
    let other = OriginalKey::random();
    let mut ids = std::collections::HashMap::new();
    let person = |p: &Person, key: &OriginalKey| UserRow {
        unique_id: p.uid.into(),
        hashed_phone: Some(hex_sha256(p.melo_phone)),
        phone: Some(key.encrypt(p.phone.as_bytes())),
        name: Some(key.encrypt(p.name.as_bytes())),
        nickname: Some(key.encrypt(p.nickname.as_bytes())),
        password_hash: hash(p.password),
        public_key: Some(key.encrypt(user_pem().as_bytes())),
        ..UserRow::default()
    };
    let mut alice = person(&ALICE, &key);
    alice.username = Some(key.encrypt(b"alicia_o"));
    alice.bio = Some(key.encrypt(ALICE_BIO.as_bytes()));
    alice.avatar = Some(key.encrypt_latin1(&avatar_png()));
    alice.secret_backup = Some(SECRET_BACKUP.into());
    ids.insert("alice", db.user(&alice).await);
    ids.insert("bob", db.user(&person(&BOB, &key)).await);
    ids.insert("carol", db.user(&person(&CAROL, &key)).await);
    let mut dave = person(
        &Person {
            uid: "14142135",
            phone: "+79161230004",
            melo_phone: "+79161230004",
            name: "Davide Originale",
            nickname: "davide_orig",
            password: "dave-password-4",
        },
        &key,
    );
    dave.phone = Some(other.encrypt(b"+79161230004"));
    ids.insert("dave", db.user(&dave).await);
    let mut eve = person(
        &Person {
            uid: "17320508",
            phone: "+79161230005",
            melo_phone: "+79161230005",
            name: "Evelina Originale",
            nickname: "evelina_orig",
            password: "eve-password-55",
        },
        &key,
    );
    eve.phone = Some(key.encrypt(b"12ab-notaphone"));
    eve.hashed_phone = None;
    ids.insert("eve", db.user(&eve).await);
    let mut frank = person(
        &Person {
            uid: "22360679",
            phone: "79161230002",
            melo_phone: "+79161230002",
            name: "Franco Originale",
            nickname: "franco_orig",
            password: "frank-password-6",
        },
        &key,
    );
    frank.hashed_phone = Some(hex_sha256("79161230002"));
    ids.insert("frank", db.user(&frank).await);
    let mut grace = person(&GRACE, &key);
    grace.name = Some(other.encrypt(GRACE.name.as_bytes()));
    ids.insert("grace", db.user(&grace).await);

    let (a, b, c, d) = (ids["alice"], ids["bob"], ids["carol"], ids["dave"]);
    let mut edges = std::collections::HashMap::new();
    // alice–bob: both directions, one accepted, and a repeated row: one accepted relationship.
    edges.insert("ab1", db.edge(a, b, "accepted").await);
    edges.insert("ba", db.edge(b, a, "pending").await);
    edges.insert("ab2", db.edge(a, b, "accepted").await);
    // alice→carol pending twice: one pending request by alice.
    edges.insert("ac1", db.edge(a, c, "pending").await);
    edges.insert("ac2", db.edge(a, c, "pending").await);
    // carol→bob pending, bob→carol accepted: accepted.
    edges.insert("cb", db.edge(c, b, "pending").await);
    edges.insert("bc", db.edge(b, c, "accepted").await);
    // A user that does not exist, and one that is not imported.
    edges.insert("a999", db.edge(a, 999, "pending").await);
    edges.insert("bd", db.edge(b, d, "accepted").await);

    db.chat(7, CHAT_NAME, "chat", a, true, Some(INVITE), 30)
        .await;
    db.chat(12, CHANNEL_NAME, "channel", b, false, None, 0)
        .await;
    db.chat(15, "Orphaned Chat", "chat", 999, false, None, 0)
        .await;
    db.chat(20, "Chat Of Dave", "chat", d, false, None, 0).await;
    let mut members = std::collections::HashMap::new();
    members.insert("7a", db.member(7, a, "owner").await);
    members.insert("7b1", db.member(7, b, "member").await);
    members.insert("7b2", db.member(7, b, "admin").await);
    members.insert("7c", db.member(7, c, "member").await);
    // Channel 12: the owner's own row is missing; alice is a member.
    members.insert("12a", db.member(12, a, "member").await);
    members.insert("12x", db.member(12, 999, "member").await);
    members.insert("77a", db.member(77, a, "member").await);
    members.insert("20a", db.member(20, a, "member").await);
    let mut markers = std::collections::HashMap::new();
    // alice in chat 7: an older row and the newest (written later): the newest wins.
    markers.insert("a7old", db.read_marker(a, 7, OLD_MARKER).await);
    markers.insert("a7", db.read_marker(a, 7, ALICE_MARKER).await);
    // bob in channel 12: its owner, without a member row.
    markers.insert("b12", db.read_marker(b, 12, BOB_MARKER).await);
    // carol is not a member of channel 12; chat 15 was not imported; dave was not imported.
    markers.insert("c12", db.read_marker(c, 12, "c-12").await);
    markers.insert("a15", db.read_marker(a, 15, "a-15").await);
    markers.insert("d7", db.read_marker(d, 7, "d-7").await);
    Fixture {
        key,
        ids,
        edges,
        members,
        markers,
    }
}

async fn fill_redis(r: &OriginalRedis, key: &OriginalKey) {
    const MONTH: u64 = 2_592_000;
    r.set(
        &format!("device:{}:{ALICE_DEVICE}", ALICE.uid),
        ALICE_TOKEN,
        Some(MONTH - 3600),
    )
    .await;
    // `migrate_encrypt_data.py` encrypted this one in place.
    r.set(
        &format!("device:{}:{BOB_DEVICE}", BOB.uid),
        &key.encrypt(BOB_TOKEN.as_bytes()),
        Some(MONTH),
    )
    .await;
    r.set(
        &format!("device:{}:{CAROL_DEVICE}", CAROL.uid),
        "gAAAAABnot-a-fernet-token-at-all",
        Some(MONTH),
    )
    .await;
    r.set(
        &format!("device:14142135:{DAVE_DEVICE}"),
        DAVE_TOKEN,
        Some(MONTH),
    )
    .await;
    // Not a string: the original never wrote such a key.
    r.rpush(
        &format!("device:{}:1111111111111111", ALICE.uid),
        &["not", "a", "token"],
    )
    .await;
    // What is not imported.
    r.rpush(
        &format!("history:{}:{}", ALICE.uid, BOB.uid),
        &["{\"ciphertext\":\"old\"}"],
    )
    .await;
    r.rpush(&format!("ws_message:{}", BOB.uid), &["{\"type\":\"x\"}"])
        .await;
    r.set(
        &format!("push:{}", ALICE.uid),
        "{\"platform\":\"web\"}",
        None,
    )
    .await;
}

/// `melo import-original ARGS` with the original's settings in the environment.
fn import(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut all = vec!["import-original"];
    all.extend_from_slice(args);
    run_melo(dir, &all, env)
}

fn json_report(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "import-original failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "a JSON report: {e}\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn counts(r: &Value, kind: &str) -> (u64, u64, u64, u64, u64) {
    let k = &r["kinds"][kind];
    let n = |f: &str| k[f].as_u64().unwrap_or_else(|| panic!("{kind}.{f}: {r}"));
    (
        n("read"),
        n("imported"),
        n("already"),
        n("merged_duplicates"),
        n("skipped"),
    )
}

/// The problem rows as (table, id, reason).
fn problems(r: &Value) -> Vec<(String, String, String)> {
    r["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            (
                p["table"].as_str().expect("table").to_owned(),
                p["id"].as_str().expect("id").to_owned(),
                p["reason"].as_str().expect("reason").to_owned(),
            )
        })
        .collect()
}

fn has(p: &[(String, String, String)], table: &str, id: impl ToString, reason: &str) -> bool {
    let id = id.to_string();
    p.iter()
        .any(|(t, i, r)| t == table && *i == id && r == reason)
}

fn needles(f: &Fixture) -> Needles {
    let mut n = Needles::default();
    for p in [&ALICE, &BOB, &CAROL, &GRACE] {
        n.phone(p.name, p.melo_phone);
        n.add(format!("{} name", p.name), p.name);
        n.add(format!("{} nickname", p.name), p.nickname);
        n.add(format!("{} password", p.name), p.password);
    }
    for (label, text) in [
        ("Dave's phone", "+79161230004"),
        ("Dave's name", "Davide Originale"),
        ("Eve's name", "Evelina Originale"),
        ("Frank's name", "Franco Originale"),
        ("chat name", CHAT_NAME),
        ("channel name", CHANNEL_NAME),
        ("invite code", INVITE),
        ("alice's device token", ALICE_TOKEN),
        ("bob's device token", BOB_TOKEN),
        ("dave's device token", DAVE_TOKEN),
        ("alice's username", "alicia_o"),
        ("alice's bio", ALICE_BIO),
        ("alice's secret-key backup", SECRET_BACKUP),
        ("the original's key", f.key.text().as_str()),
    ] {
        n.add(label, text);
    }
    // The public key's body, line by line.
    let pem = user_pem();
    for line in pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
    {
        n.add("E2E public key (a PEM line)", line);
    }
    n
}

fn no_personal_values(what: &str, out: &std::process::Output, n: &Needles) {
    let entries = vec![
        dump::Entry::new(format!("{what} stdout"), out.stdout.clone()),
        dump::Entry::new(format!("{what} stderr"), out.stderr.clone()),
    ];
    search::assert_clean(what, &entries, n);
}

async fn login(c: &Client, body: Value) -> common::Resp {
    c.post("/login", None, &body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_moves_to_melo_once_and_clients_keep_working() {
    let Some((mysql_url, redis_url)) = backends::mysql_and_redis("MELO_TEST_REDIS_URL") else {
        return;
    };
    let db = OriginalDb::create(&mysql_url, false).await;
    let redis = OriginalRedis::create(&redis_url).await;
    let f = fill(&db).await;
    fill_redis(&redis, &f.key).await;

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".env"), FIXTURE).expect(".env");
    let data = dir.path().join("data");
    let data_s = data.display().to_string();
    let key_text = f.key.text();
    let env = [
        ("MELO_DATA_DIR", data_s.as_str()),
        ("ORIGINAL_DB_URL", db.url.as_str()),
        ("ORIGINAL_REDIS_URL", redis.url.as_str()),
        ("ORIGINAL_ENCRYPTION_KEY_STR", key_text.as_str()),
        // Shorter than the original's 30 days: imported tokens live no longer than Melo's own.
        ("DEVICE_TOKEN_TTL", "86400"),
    ];
    let n = needles(&f);

    // A dry run: counts and problem rows, nothing written.
    let text = import(dir.path(), &["--dry-run"], &env);
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let out = String::from_utf8_lossy(&text.stdout);
    assert!(out.contains("dry run"), "{out}");
    assert!(
        out.contains("message history"),
        "says what is not imported: {out}"
    );
    assert!(
        out.contains(&format!("users {}: phone_undecryptable", f.ids["dave"])),
        "{out}"
    );
    no_personal_values("the dry run's text report", &text, &n);
    let dry = import(dir.path(), &["--dry-run", "--report", "json"], &env);
    no_personal_values("the dry run's JSON report", &dry, &n);
    let dry = json_report(&dry);
    assert!(
        !data.exists() || std::fs::read_dir(&data).expect("data dir").next().is_none(),
        "a dry run writes nothing: {:?}",
        std::fs::read_dir(&data).map(|d| d.map(|e| e.map(|e| e.path())).collect::<Vec<_>>())
    );
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["uid_column"], "text");
    assert_eq!(counts(&dry, "users"), (7, 4, 0, 0, 3), "{dry}");
    let p = problems(&dry);
    assert!(
        has(&p, "users", f.ids["dave"], "phone_undecryptable"),
        "{p:?}"
    );
    assert!(has(&p, "users", f.ids["eve"], "phone_invalid"), "{p:?}");
    assert!(has(&p, "users", f.ids["frank"], "duplicate_phone"), "{p:?}");
    assert!(
        has(&p, "users", f.ids["grace"], "name_undecryptable"),
        "{p:?}"
    );
    assert!(
        has(&p, "subscriptions", f.edges["a999"], "dangling_reference"),
        "{p:?}"
    );
    assert!(
        has(&p, "subscriptions", f.edges["bd"], "user_not_imported"),
        "{p:?}"
    );
    // 9 edges: 2 skipped; ab1+ba+ab2, ac1+ac2, cb+bc → 3 relationships, 4 rows merged.
    assert_eq!(counts(&dry, "contacts"), (9, 3, 0, 4, 2), "{dry}");
    assert!(has(&p, "chats", 15, "dangling_reference"), "{p:?}");
    assert!(has(&p, "chats", 20, "owner_not_imported"), "{p:?}");
    assert_eq!(counts(&dry, "chats"), (4, 2, 0, 0, 2), "{dry}");
    assert!(
        has(&p, "chat_members", f.members["12x"], "dangling_reference"),
        "{p:?}"
    );
    assert!(
        has(&p, "chat_members", f.members["77a"], "dangling_reference"),
        "{p:?}"
    );
    assert!(
        has(&p, "chat_members", f.members["20a"], "chat_not_imported"),
        "{p:?}"
    );
    // 8 rows: 3 skipped; 7a is the owner's (already there with the chat); 7b1+7b2 merge.
    assert_eq!(counts(&dry, "members"), (8, 3, 1, 1, 3), "{dry}");
    assert!(
        has(
            &p,
            "message_read_statuses",
            f.markers["c12"],
            "not_a_member"
        ),
        "{p:?}"
    );
    assert!(
        has(
            &p,
            "message_read_statuses",
            f.markers["a15"],
            "chat_not_imported"
        ),
        "{p:?}"
    );
    assert!(
        has(
            &p,
            "message_read_statuses",
            f.markers["d7"],
            "user_not_imported"
        ),
        "{p:?}"
    );
    // 6 rows: 3 skipped; a7old folds into a7.
    assert_eq!(counts(&dry, "read_markers"), (6, 2, 0, 1, 3), "{dry}");
    let carol_key = format!("device:{}:{CAROL_DEVICE}", CAROL.uid);
    let dave_key = format!("device:14142135:{DAVE_DEVICE}");
    assert!(has(&p, "redis", &carol_key, "token_unusable"), "{p:?}");
    assert!(has(&p, "redis", &dave_key, "user_not_imported"), "{p:?}");
    assert!(
        has(
            &p,
            "redis",
            format!("device:{}:1111111111111111", ALICE.uid),
            "value_not_a_string"
        ),
        "{p:?}"
    );
    assert_eq!(counts(&dry, "device_tokens"), (5, 2, 0, 0, 3), "{dry}");
    assert_eq!(counts(&dry, "avatars").1, 1);
    assert_eq!(counts(&dry, "secret_key_backups").1, 1);
    assert_eq!(counts(&dry, "public_keys").1, 4);

    // The run.
    let run = import(dir.path(), &["--report", "json"], &env);
    no_personal_values("the run's report", &run, &n);
    let first = json_report(&run);
    assert_eq!(first["dry_run"], false);
    {
        let conn = rusqlite::Connection::open(data.join("melo.db")).expect("open");
        let latest: i64 = conn
            .query_row("SELECT MAX(device_token_expires) FROM sessions", [], |r| {
                r.get(0)
            })
            .expect("sessions");
        let cap = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64)
            + 86_400_000;
        assert!(
            latest <= cap,
            "an imported token outlives DEVICE_TOKEN_TTL: {latest} > {cap}"
        );
    }
    for kind in [
        "users",
        "contacts",
        "chats",
        "members",
        "read_markers",
        "device_tokens",
    ] {
        assert_eq!(
            counts(&first, kind),
            counts(&dry, kind),
            "the run did what the dry run said ({kind})"
        );
    }
    assert_eq!(first["problems"], dry["problems"]);

    // Again: nothing twice.
    let again = json_report(&import(dir.path(), &["--report", "json"], &env));
    assert_eq!(counts(&again, "users"), (7, 0, 4, 0, 3), "{again}");
    assert_eq!(counts(&again, "contacts"), (9, 0, 3, 4, 2), "{again}");
    assert_eq!(counts(&again, "chats"), (4, 0, 2, 0, 2), "{again}");
    assert_eq!(counts(&again, "members"), (8, 0, 4, 1, 3), "{again}");
    assert_eq!(counts(&again, "read_markers"), (6, 0, 2, 1, 3), "{again}");
    assert_eq!(counts(&again, "device_tokens"), (5, 0, 2, 0, 3), "{again}");
    assert_eq!(counts(&again, "avatars").1, 0);

    // A run that stopped between creating alice and writing her avatar and secret-key backup
    // (and so marked nothing done): the next run writes them.
    {
        let conn = rusqlite::Connection::open(data.join("melo.db")).expect("open");
        let alice_uid = ALICE.uid.parse::<i64>().expect("uid");
        for sql in [
            "DELETE FROM avatars WHERE uid = ?1",
            "DELETE FROM secret_keys WHERE uid = ?1",
            "UPDATE imported_users SET graph_done = 0, tokens_done = 0 WHERE uid = ?1",
        ] {
            assert_eq!(conn.execute(sql, [alice_uid]).expect(sql), 1, "{sql}");
        }
    }
    let resumed = json_report(&import(dir.path(), &["--report", "json"], &env));
    assert_eq!(counts(&resumed, "users"), (7, 0, 4, 0, 3), "{resumed}");
    assert_eq!(counts(&resumed, "avatars").1, 1, "{resumed}");
    assert_eq!(counts(&resumed, "secret_key_backups").1, 1, "{resumed}");
    assert_eq!(
        counts(&resumed, "contacts").1,
        0,
        "merged, not new: {resumed}"
    );

    // Melo on the result.
    let server = start_with(dir.path(), &[("MELO_DATA_DIR", data_s.as_str())]);
    let c = server.client.clone();
    let http = server.http_addr();

    // The old password, by uid and by phone (as the original's clients typed it).
    let r = login(
        &c,
        json!({"identifier": ALICE.uid, "password": ALICE.password, "device_id": "00000000000000a1"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["unique_id"], ALICE.uid);
    assert_eq!(r.body["phone"], ALICE.melo_phone);
    assert_eq!(r.body["name"], ALICE.name);
    assert_eq!(r.body["nickname"], ALICE.nickname);
    assert_eq!(r.body["public_e2e_key"], user_pem().trim());
    let r = login(
        &c,
        json!({"identifier": "8 916 123-00-01", "password": ALICE.password, "device_id": "00000000000000a2"}),
    )
    .await;
    assert_eq!(r.status, 200, "by phone: {}", r.body);
    let r = login(
        &c,
        json!({"identifier": ALICE.uid, "password": "wrong-password", "device_id": "00000000000000a3"}),
    )
    .await;
    r.assert_error(401, "invalid_credentials");

    // The installed apps' automatic login: the old device token and device id.
    let r = login(
        &c,
        json!({"identifier": ALICE.uid, "device_id": ALICE_DEVICE, "device_token": ALICE_TOKEN}),
    )
    .await;
    assert_eq!(r.status, 200, "alice's device token: {}", r.body);
    let alice = r.body["access_token"].as_str().expect("token").to_owned();
    let r = login(
        &c,
        json!({"identifier": BOB.phone, "device_id": BOB_DEVICE, "device_token": BOB_TOKEN}),
    )
    .await;
    assert_eq!(
        r.status, 200,
        "bob's (once encrypted) device token: {}",
        r.body
    );
    let bob = r.body["access_token"].as_str().expect("token").to_owned();
    let r = login(
        &c,
        json!({"identifier": CAROL.uid, "device_id": CAROL_DEVICE, "device_token": "gAAAAABnot-a-fernet-token-at-all"}),
    )
    .await;
    r.assert_error(401, "invalid_credentials");
    let r = login(
        &c,
        json!({"identifier": CAROL.uid, "password": CAROL.password, "device_id": CAROL_DEVICE}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let carol = r.body["access_token"].as_str().expect("token").to_owned();
    // The rotated token works; the old one no longer does (Melo rotates on each login).
    let r = login(
        &c,
        json!({"identifier": ALICE.uid, "device_id": ALICE_DEVICE, "device_token": ALICE_TOKEN}),
    )
    .await;
    r.assert_error(401, "invalid_credentials");
    // Dave, eve and frank were not imported.
    for uid in ["14142135", "17320508", "22360679"] {
        let r = login(
            &c,
            json!({"identifier": uid, "password": "whatever-password", "device_id": "00000000000000d1"}),
        )
        .await;
        r.assert_error(401, "invalid_credentials");
    }

    // Profile, avatar and secret-key backup.
    let me = c.get("/profile", Some(&alice)).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["username"], "alicia_o");
    assert_eq!(me.body["bio"], ALICE_BIO);
    let backup = c.get("/e2e/secret_key", Some(&alice)).await;
    assert_eq!(backup.body["ciphertext"], SECRET_BACKUP, "{}", backup.body);
    let avatar = c.get(&format!("/avatar/{}", ALICE.uid), Some(&bob)).await;
    assert_eq!(avatar.status, 200);
    assert_eq!(avatar.header("content-type"), Some("image/png"));
    assert_eq!(
        avatar.raw.as_ref(),
        avatar_png().as_slice(),
        "the avatar's bytes"
    );

    // Contacts: alice–bob and bob–carol accepted; alice→carol pending.
    let uids = |v: &Value| -> Vec<String> {
        v["contacts"]
            .as_array()
            .expect("contacts")
            .iter()
            .map(|x| x["unique_id"].as_str().expect("uid").to_owned())
            .collect()
    };
    let list = c.get("/contacts", Some(&alice)).await;
    assert_eq!(uids(&list.body), vec![BOB.uid.to_owned()], "{}", list.body);
    let list = c.get("/contacts", Some(&bob)).await;
    assert_eq!(
        uids(&list.body),
        vec![CAROL.uid.to_owned(), ALICE.uid.to_owned()],
        "{}",
        list.body
    );
    let reqs = c.get("/contacts/requests", Some(&carol)).await;
    assert!(
        reqs.body.to_string().contains(ALICE.uid),
        "alice's pending request reaches carol: {}",
        reqs.body
    );

    // Chats with their original ids, names, roles, code and slow mode.
    let chats = c.get("/chats/list?per_page=100", Some(&alice)).await;
    assert_eq!(chats.status, 200, "{}", chats.body);
    let find = |v: &Value, id: i64| -> Value {
        v["chats"]
            .as_array()
            .expect("chats")
            .iter()
            .find(|x| x["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("chat {id} in {v}"))
    };
    let seven = find(&chats.body, 7);
    assert_eq!(seven["name"], CHAT_NAME);
    assert_eq!(seven["role"], "owner");
    assert_eq!(seven["type"], "chat");
    assert_eq!(seven["is_public"], true);
    assert_eq!(seven["invite_code"], INVITE);
    assert_eq!(seven["slow_mode_seconds"], 30);
    let twelve = find(&chats.body, 12);
    assert_eq!(twelve["name"], CHANNEL_NAME);
    assert_eq!(twelve["type"], "channel");
    assert_eq!(twelve["role"], "member");
    assert_eq!(twelve["owner_id"], BOB.uid);
    assert_eq!(chats.body["chats"].as_array().map(Vec::len), Some(2));
    let bobs = c.get("/chats/list?per_page=100", Some(&bob)).await.body;
    assert_eq!(find(&bobs, 7)["role"], "admin", "the highest of bob's rows");
    assert_eq!(
        find(&bobs, 12)["role"],
        "owner",
        "owner without a member row"
    );
    // A chat created now gets an id past the imported ones.
    let made = c
        .post(
            "/chats/create",
            Some(&carol),
            &json!({"name": "Brand New", "type": "chat"}),
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    let new_id = made.body["chat_id"]
        .as_i64()
        .or_else(|| made.body["id"].as_i64())
        .unwrap_or_else(|| panic!("chat id in {}", made.body));
    assert!(
        new_id > 20,
        "past every chat id of the original, imported or not: {new_id}"
    );

    // A message to a contact arrives on their socket.
    let mut wb = WsClient::open(http, &bob).await;
    wb.sync().await;
    let r = c
        .post(
            "/messages/send",
            Some(&alice),
            &json!({"target_id": BOB.uid, "data": "hello from the old days", "client_id": "m-1"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = wb.recv_type("relay_delivery", WAIT).await;
    assert!(is(&got, "relay_delivery"));
    assert_eq!(got["from"], ALICE.uid);
    assert_eq!(got["payload"], "hello from the old days");
    drop(wb);
    stop(server);

    // Zero knowledge: nothing of the imported plaintexts in Melo's files.
    let db_path = data.join("melo.db");
    let mut entries = dump::sqlite_tables(&db_path);
    for name in ["melo.db", "melo.db-wal", "melo.db-shm"] {
        if let Ok(bytes) = std::fs::read(data.join(name)) {
            entries.push(dump::Entry::new(format!("file {name}"), bytes));
        }
    }
    search::assert_clean("Melo's SQLite files after the import", &entries, &n);

    // The imported hashes are the original's until the first login, then Melo's own.
    let conn = rusqlite::Connection::open(&db_path).expect("open");
    let hash_of = |uid: &str| -> String {
        conn.query_row(
            "SELECT password_hash FROM users WHERE uid = ?1",
            [uid.parse::<i64>().expect("uid")],
            |r| r.get(0),
        )
        .expect("user row")
    };
    assert!(
        !hash_of(ALICE.uid).starts_with("original:"),
        "rehashed at login"
    );
    assert!(
        !hash_of(CAROL.uid).starts_with("original:"),
        "rehashed at login"
    );
    assert!(
        hash_of(GRACE.uid).starts_with("original:$2b$"),
        "not logged in yet"
    );
    // Read markers with the original's message ids and time 0.
    let mut markers: Vec<(i64, i64, String, i64)> = conn
        .prepare("SELECT uid, chat_id, message_id, at FROM read_markers")
        .and_then(|mut st| {
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect()
        })
        .expect("read markers");
    markers.sort();
    let uid = |p: &Person| p.uid.parse::<i64>().expect("uid");
    assert_eq!(
        markers,
        vec![
            (uid(&BOB), 12, BOB_MARKER.to_owned(), 0),
            (uid(&ALICE), 7, ALICE_MARKER.to_owned(), 0),
        ]
    );
    drop(conn);

    // What users undo in Melo stays undone by a later run: a removed contact, a chat left, a
    // revoked imported device session (its old token stays refused), a read marker of a chat
    // left (even one the original gained since).
    let server = start_with(dir.path(), &[("MELO_DATA_DIR", data_s.as_str())]);
    let c = &server.client;
    let r = login(
        c,
        json!({"identifier": ALICE.uid, "password": ALICE.password, "device_id": "00000000000000a9"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let alice = r.body["access_token"].as_str().expect("token").to_owned();
    let alice_csrf = r.body["csrf_token"].as_str().unwrap_or_default().to_owned();
    let r = login(
        c,
        json!({"identifier": BOB.uid, "password": BOB.password, "device_id": "00000000000000b9"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let bob = r.body["access_token"].as_str().expect("token").to_owned();
    let r = c
        .post(
            "/unsubscribe",
            Some(&alice),
            &json!({"target_id": BOB.uid, "csrf_token": alice_csrf}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .post("/chats/leave", Some(&bob), &json!({"chat_id": 7}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sessions = c.get("/sessions", Some(&alice)).await;
    assert_eq!(sessions.status, 200, "{}", sessions.body);
    let imported = sessions.body["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|s| s["device_id"] == ALICE_DEVICE)
        .and_then(|s| s["id"].as_i64())
        .unwrap_or_else(|| panic!("alice's imported session in {}", sessions.body));
    let r = c
        .call(
            hyper::Method::DELETE,
            &format!("/sessions/{imported}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    stop(server);
    db.read_marker(f.ids["bob"], 7, BOB_MARKER).await;

    let third = json_report(&import(dir.path(), &["--report", "json"], &env));
    assert_eq!(counts(&third, "contacts").1, 0, "{third}");
    assert_eq!(counts(&third, "members").1, 0, "{third}");
    assert_eq!(counts(&third, "read_markers").1, 0, "{third}");
    assert_eq!(counts(&third, "device_tokens").1, 0, "{third}");
    let server = start_with(dir.path(), &[("MELO_DATA_DIR", data_s.as_str())]);
    let c = &server.client;
    let list = c.get("/contacts", Some(&alice)).await;
    assert_eq!(uids(&list.body), Vec::<String>::new(), "{}", list.body);
    let bobs = c.get("/chats/list?per_page=100", Some(&bob)).await.body;
    assert!(
        !bobs["chats"]
            .as_array()
            .expect("chats")
            .iter()
            .any(|x| x["id"] == 7),
        "bob left chat 7: {bobs}"
    );
    let r = login(
        c,
        json!({"identifier": ALICE.uid, "device_id": ALICE_DEVICE, "device_token": ALICE_TOKEN}),
    )
    .await;
    r.assert_error(401, "invalid_credentials");
    stop(server);
    let conn = rusqlite::Connection::open(&db_path).expect("open");
    let bob_in_7: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM read_markers WHERE uid = ?1 AND chat_id = 7",
            [uid(&BOB)],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(bob_in_7, 0, "no marker for a chat bob left");
    drop(conn);

    db.drop_now().await;
}

/// Older deployments typed `unique_id` as INT: leading zeros were lost there, and the importer
/// pads them back. A uid that then starts with 0 keeps it: its owner logs in with it and its
/// contacts still know it by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integer_uids_are_padded_and_keep_a_leading_zero() {
    let Some(mysql_url) = backends::env_url("MELO_TEST_MYSQL_URL") else {
        eprintln!("MELO_TEST_MYSQL_URL is unset: skipping");
        return;
    };
    let db = OriginalDb::create(&mysql_url, true).await;
    let key = OriginalKey::random();
    let row = |uid: &str, phone: &str| UserRow {
        unique_id: uid.into(),
        phone: Some(key.encrypt(phone.as_bytes())),
        name: Some(key.encrypt(b"Integer Person")),
        nickname: Some(key.encrypt(b"integer_person")),
        password_hash: bcrypt::hash("integer-password", 4).expect("bcrypt"),
        ..UserRow::default()
    };
    let ok = db.user(&row("31415926", "+79161239001")).await;
    // `01234567` as an INT column keeps it: 1234567.
    let padded = db.user(&row("1234567", "+79161239002")).await;
    db.edge(ok, padded, "accepted").await;
    // Names Melo's own rules refuse: cleaned like /register would want them, or dropped.
    let mut bad = row("27182818", "+79161239003");
    bad.name = Some(key.encrypt("<b>Mallory</b>\u{202e}\u{7} Q\n<script>x</script>".as_bytes()));
    bad.nickname = Some(key.encrypt("\u{202e}\u{7}<i></i>".as_bytes()));
    let bad = db.user(&bad).await;
    db.chat(3, "\u{7}", "chat", bad, false, None, 0).await;
    db.chat(4, "  Fine\u{202e}Chat\u{0}  ", "chat", bad, false, None, 0)
        .await;

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".env"), FIXTURE).expect(".env");
    let data = dir.path().join("data");
    let data_s = data.display().to_string();
    let key_text = key.text();
    let env = [
        ("MELO_DATA_DIR", data_s.as_str()),
        ("ORIGINAL_DB_URL", db.url.as_str()),
        ("ORIGINAL_ENCRYPTION_KEY_STR", key_text.as_str()),
    ];
    let r = json_report(&import(dir.path(), &["--report", "json"], &env));
    assert_eq!(r["uid_column"], "integer");
    assert_eq!(counts(&r, "users"), (3, 3, 0, 0, 0), "{r}");
    assert_eq!(counts(&r, "chats"), (2, 2, 0, 0, 0), "{r}");
    let p = problems(&r);
    assert!(has(&p, "users", bad, "name_cleaned"), "{r}");
    assert!(has(&p, "users", bad, "nickname_invalid"), "{r}");
    assert!(has(&p, "chats", 3, "name_replaced"), "{r}");
    assert!(has(&p, "chats", 4, "name_cleaned"), "{r}");
    assert_eq!(p.len(), 4, "{r}");
    assert_eq!(counts(&r, "contacts"), (1, 1, 0, 0, 0), "{r}");
    assert!(
        r["notes"]
            .to_string()
            .contains("device tokens not imported"),
        "{r}"
    );

    let server = start_with(dir.path(), &[("MELO_DATA_DIR", data_s.as_str())]);
    let r = login(
        &server.client,
        json!({"identifier": "31415926", "password": "integer-password", "device_id": "00000000000000b1"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.body["access_token"].as_str().expect("token").to_owned();
    let contacts = server.client.get("/contacts", Some(&token)).await;
    assert_eq!(contacts.status, 200, "{}", contacts.body);
    assert!(
        contacts.body.to_string().contains("\"01234567\""),
        "the padded uid is the contact's uid: {}",
        contacts.body
    );
    let r = login(
        &server.client,
        json!({"identifier": "01234567", "password": "integer-password", "device_id": "00000000000000b2"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["unique_id"], "01234567", "{}", r.body);
    let r = login(
        &server.client,
        json!({"identifier": "27182818", "password": "integer-password", "device_id": "00000000000000b3"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mallory = r.body["access_token"].as_str().expect("token").to_owned();
    let me = server.client.get("/profile", Some(&mallory)).await;
    assert_eq!(me.body["name"], "Mallory Q x", "{}", me.body);
    assert_eq!(me.body["nickname"], "", "{}", me.body);
    let chats = server
        .client
        .get("/chats/list?per_page=100", Some(&mallory))
        .await;
    let names: Vec<(i64, String)> = chats.body["chats"]
        .as_array()
        .expect("chats")
        .iter()
        .map(|c| {
            (
                c["id"].as_i64().expect("id"),
                c["name"].as_str().expect("name").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        names.iter().find(|c| c.0 == 4).map(|c| c.1.as_str()),
        Some("FineChat"),
        "{}",
        chats.body
    );
    let three = names.iter().find(|c| c.0 == 3).expect("chat 3");
    assert!(
        (2..=128).contains(&three.1.chars().count()) && three.1.chars().all(|c| !c.is_control()),
        "{three:?}"
    );
    stop(server);

    // Key rotation and the backup key check bind the leading-zero uid's values (its user row
    // and its session) as the server sealed them.
    let env = [("MELO_DATA_DIR", data_s.as_str())];
    let out = run_melo(
        dir.path(),
        &["rotate-keys", "--new-key", "--activate-in", "0"],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_melo(dir.path(), &["rotate-keys"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let sum = |field: &str| -> u64 {
        rotated["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .map(|t| t[field].as_u64().expect("count"))
            .sum()
    };
    assert_eq!(sum("unreadable"), 0, "{rotated}");
    assert!(sum("rewritten") >= 8, "{rotated}");
    let backup_dir = dir.path().join("backup");
    let out = run_melo(
        dir.path(),
        &["backup", backup_dir.to_str().expect("path")],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = start_with(dir.path(), &[("MELO_DATA_DIR", data_s.as_str())]);
    let r = login(
        &server.client,
        json!({"identifier": "01234567", "password": "integer-password", "device_id": "00000000000000b2"}),
    )
    .await;
    assert_eq!(r.status, 200, "after the rotation: {}", r.body);
    stop(server);
    db.drop_now().await;
}

/// Usage errors exit 2, failures 1, each with one line that names the setting and no secret.
#[test]
fn bad_settings_fail_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_melo(dir.path(), &["import-original"], &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "missing settings are a usage error"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--from-db-url") || err.contains("ORIGINAL_DB_URL"),
        "{err}"
    );

    let out = run_melo(
        dir.path(),
        &["import-original", "--dry-run"],
        &[
            ("ORIGINAL_DB_URL", "mysql://root:hunter2@127.0.0.1:1/none"),
            ("ORIGINAL_ENCRYPTION_KEY_STR", "c2VjcmV0LWh1bnRlcjI="),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("ORIGINAL_ENCRYPTION_KEY_STR"), "{err}");
    assert!(!err.contains("c2VjcmV0LWh1bnRlcjI"), "{err}");

    let key = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE, [3u8; 32]);
    let out = run_melo(
        dir.path(),
        &["import-original", "--dry-run"],
        &[
            ("ORIGINAL_DB_URL", "mysql://root:hunter2@127.0.0.1:1/none"),
            ("ORIGINAL_ENCRYPTION_KEY_STR", key.as_str()),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("ORIGINAL_DB_URL"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    let help = run_melo(
        dir.path(),
        &["import-original", "--help"],
        &[("ORIGINAL_ENCRYPTION_KEY_STR", key.as_str())],
    );
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("ORIGINAL_ENCRYPTION_KEY_STR"), "{help}");
    assert!(!help.contains(&key), "the key is hidden in --help");
}

/// The same import into a MySQL store (Melo's `DB_URL`): the counts of the SQLite run, nothing
/// twice, and the server on it logs the old password in and lists the chats by their ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn into_a_mysql_store_as_well() {
    let Some(mysql_url) = backends::env_url("MELO_TEST_MYSQL_URL") else {
        eprintln!("MELO_TEST_MYSQL_URL is unset: skipping");
        return;
    };
    let db = OriginalDb::create(&mysql_url, false).await;
    let f = fill(&db).await;
    let (melo_db, melo_url) = backends::MysqlDb::create_empty(&mysql_url).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".env"), FIXTURE).expect(".env");
    let data_s = dir.path().join("data").display().to_string();
    let key_text = f.key.text();
    let env = [
        ("MELO_DATA_DIR", data_s.as_str()),
        ("DB_URL", melo_url.as_str()),
        ("ORIGINAL_DB_URL", db.url.as_str()),
        ("ORIGINAL_ENCRYPTION_KEY_STR", key_text.as_str()),
    ];
    let first = json_report(&import(dir.path(), &["--report", "json"], &env));
    assert_eq!(counts(&first, "users"), (7, 4, 0, 0, 3), "{first}");
    assert_eq!(counts(&first, "contacts"), (9, 3, 0, 4, 2), "{first}");
    assert_eq!(counts(&first, "chats"), (4, 2, 0, 0, 2), "{first}");
    assert_eq!(counts(&first, "members"), (8, 3, 1, 1, 3), "{first}");
    assert_eq!(counts(&first, "read_markers"), (6, 2, 0, 1, 3), "{first}");
    // A dry run now sees everything there already.
    let dry = json_report(&import(
        dir.path(),
        &["--dry-run", "--report", "json"],
        &env,
    ));
    assert_eq!(counts(&dry, "users"), (7, 0, 4, 0, 3), "{dry}");
    assert_eq!(counts(&dry, "contacts"), (9, 0, 3, 4, 2), "{dry}");
    assert_eq!(counts(&dry, "chats"), (4, 0, 2, 0, 2), "{dry}");
    assert_eq!(counts(&dry, "members"), (8, 0, 4, 1, 3), "{dry}");
    let again = json_report(&import(dir.path(), &["--report", "json"], &env));
    assert_eq!(counts(&again, "users"), (7, 0, 4, 0, 3), "{again}");
    assert_eq!(counts(&again, "chats"), (4, 0, 2, 0, 2), "{again}");
    assert_eq!(counts(&again, "members"), (8, 0, 4, 1, 3), "{again}");
    assert_eq!(counts(&again, "read_markers"), (6, 0, 2, 1, 3), "{again}");

    let server = start_with(
        dir.path(),
        &[
            ("MELO_DATA_DIR", data_s.as_str()),
            ("DB_URL", melo_url.as_str()),
        ],
    );
    let c = server.client.clone();
    let r = login(
        &c,
        json!({"identifier": BOB.phone, "password": BOB.password, "device_id": "00000000000000c1"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let bob = r.body["access_token"].as_str().expect("token").to_owned();
    let chats = c.get("/chats/list?per_page=100", Some(&bob)).await.body;
    let mut ids: Vec<(i64, String, String)> = chats["chats"]
        .as_array()
        .expect("chats")
        .iter()
        .map(|x| {
            (
                x["id"].as_i64().expect("id"),
                x["name"].as_str().expect("name").to_owned(),
                x["role"].as_str().expect("role").to_owned(),
            )
        })
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        vec![
            (7, CHAT_NAME.to_owned(), "admin".to_owned()),
            (12, CHANNEL_NAME.to_owned(), "owner".to_owned()),
        ]
    );
    let made = c
        .post(
            "/chats/create",
            Some(&bob),
            &json!({"name": "Brand New", "type": "channel"}),
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    assert!(
        made.body["chat_id"].as_i64().expect("id") > 20,
        "{}",
        made.body
    );
    stop(server);
    melo_db.drop_database().await;
    db.drop_now().await;
}
