//! Data-key rotation against the example binary, while it serves: `rotate-keys --new-key` adds a
//! version the running server loads; `--dry-run` changes nothing and reports; the real run moves
//! every sealed value and blind index; afterwards the server reads everything, even once the old
//! key version is deleted from the key file.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::binary::{melo_binary, start, stop};
use common::{avatars, Client, User};
use melo::crypto::Pii;
use melo::store::{SealedStore, SealedTable};
use melo::SqliteStore;
use serde_json::{json, Value};

/// Runs `server rotate-keys ARGS` in `dir`; returns its JSON stdout.
fn rotate_keys(dir: &Path, args: &[&str]) -> Value {
    let out = Command::new(melo_binary())
        .current_dir(dir)
        .env_remove("DB_URL")
        .env_remove("REDIS_URL")
        .env("RUST_LOG", "warn")
        .arg("rotate-keys")
        .args(args)
        .output()
        .expect("run rotate-keys");
    assert!(
        out.status.success(),
        "rotate-keys {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

fn total(report: &Value, field: &str) -> u64 {
    report["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| t[field].as_u64().expect("count"))
        .sum()
}

/// Data-key versions of every sealed value in the database, read beside the running server.
async fn versions_in_db(db: &Path) -> std::collections::BTreeMap<u8, u64> {
    let store = SqliteStore::open(db).await.expect("open db");
    let mut seen = std::collections::BTreeMap::new();
    for table in SealedTable::ALL {
        let mut after = None;
        loop {
            let rows = store
                .sealed_rows(table, after.as_ref(), 500)
                .await
                .expect("rows");
            let Some(last) = rows.last() else { break };
            after = Some(last.key.clone());
            for row in &rows {
                for (col, v) in table.columns().iter().zip(&row.values) {
                    if col.ends_with("_index") {
                        continue;
                    }
                    if let Some(v) = v {
                        *seen
                            .entry(Pii::key_version(v).expect("sealed"))
                            .or_insert(0) += 1;
                    }
                }
            }
        }
    }
    seen
}

/// A's login by phone from the user agent the test looks for in `/sessions`.
async fn login_as_agent(c: &Client, a: &User) -> common::Resp {
    let req = c
        .request(http::Method::POST, "/login", None)
        .header("user-agent", "RotationAgent/1.0")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            json!({"identifier": a.phone, "password": a.password, "device_id": a.device})
                .to_string(),
        )))
        .expect("request");
    c.send(req).await
}

/// Everything the workload stored, read back through the API.
async fn reads_everything(c: &Client, a: &User, b: &User, chat: i64, codes: (&str, &str)) {
    // Phone lookup goes through the blind index.
    let r = login_as_agent(c, a).await;
    assert_eq!(r.status, 200, "login by phone: {}", r.body);
    let token = r.body["access_token"].as_str().expect("token").to_owned();
    let r = c.get("/profile", Some(&token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["phone"], a.phone.as_str());
    assert_eq!(r.body["nickname"], "rotator");
    assert_eq!(r.body["bio"], "bio before rotation");
    let r = c.get("/sessions", Some(&token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["sessions"][0]["device_name"], "RotationAgent/1.0");
    let r = c.get("/e2e/secret_key", Some(&token)).await;
    assert_eq!(r.body["ciphertext"], "BACKUP-CIPHERTEXT", "{}", r.body);
    let r = c.get("/chats/list", Some(&token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["chats"][0]["id"], chat);
    assert_eq!(r.body["chats"][0]["name"], "Rotation Club");
    assert_eq!(r.body["chats"][0]["invite_code"], codes.0);
    let r = c.get(&format!("/chats/by_invite/{}", codes.0), None).await;
    assert_eq!(r.status, 200, "public code after rotation: {}", r.body);
    let r = c
        .post("/invites/join", Some(&b.token), &json!({"code": codes.1}))
        .await;
    assert_eq!(r.status, 200, "temporary invite after rotation: {}", r.body);
    let r = avatars::fetch(c, b, a, None).await;
    assert_eq!(r.status, 200, "avatar after rotation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_keys_while_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(".env"),
        "HTTP_PORT=0\nWS_PORT=0\nRATE_LIMIT_CALLS=100000\nBCRYPT_COST=4\nKEY_CHECK_SECONDS=1\n",
    )
    .expect("write .env");
    let server = start(dir.path());
    let c = &server.client;

    // A workload touching every sealed table: users, sessions, backups, avatars, chats with a
    // public code, temporary invites and queued events.
    let a = common::new_user(c, "Rotator").await;
    let b = common::new_user(c, "Member").await;
    assert_eq!(login_as_agent(c, &a).await.status, 200);
    let r = c
        .put(
            "/profile",
            Some(&a.token),
            &json!({"bio": "bio before rotation", "username": "rot_user"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    c.post(
        "/e2e/secret_key",
        Some(&a.token),
        &json!({"ciphertext": "BACKUP-CIPHERTEXT"}),
    )
    .await;
    assert_eq!(
        avatars::upload(c, &a, &avatars::png(b"pixels"))
            .await
            .status,
        200
    );
    let r = c
        .post(
            "/chats/create",
            Some(&a.token),
            &json!({"name": "Rotation Club"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let chat = r.body["chat_id"].as_i64().expect("chat id");
    let r = c
        .post(
            "/chats/set_public",
            Some(&a.token),
            &json!({"chat_id": chat, "is_public": true}),
        )
        .await;
    let public_code = r.body["invite"].as_str().expect("code").to_owned();
    let r = c
        .post(
            "/invites/create",
            Some(&a.token),
            &json!({"chat_id": chat, "ttl_minutes": 60}),
        )
        .await;
    let invite = r.body["code"].as_str().expect("code").to_owned();
    // B joins (queueing a member event for A, who has no socket) and leaves again, so the
    // invite can admit B after the rotation.
    let r = c
        .post("/invites/join", Some(&b.token), &json!({"code": invite}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .post("/chats/leave", Some(&b.token), &json!({"chat_id": chat}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let db = dir.path().join("melo-data").join("melo.db");
    let before = versions_in_db(&db).await;
    assert_eq!(before.keys().copied().collect::<Vec<_>>(), vec![1]);

    // Before any new key: nothing is stale.
    let report = rotate_keys(dir.path(), &["--dry-run"]);
    assert_eq!(report["target_version"], 1);
    assert_eq!(total(&report, "stale"), 0, "{report}");

    // A new version, active in 2 s; the server (KEY_CHECK_SECONDS=1) loads it first.
    let added = rotate_keys(dir.path(), &["--new-key", "--activate-in", "2"]);
    assert_eq!(added["added_version"], 2, "{added}");
    let mut report = rotate_keys(dir.path(), &["--dry-run"]);
    for _ in 0..50 {
        if report["target_version"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        report = rotate_keys(dir.path(), &["--dry-run"]);
    }
    assert_eq!(report["target_version"], 2, "{report}");
    assert!(report["dry_run"].as_bool().expect("flag"));
    assert_eq!(total(&report, "rewritten"), 0);
    let stale = total(&report, "stale");
    assert!(stale > 20, "every sealed value is stale: {report}");
    assert_eq!(
        versions_in_db(&db).await,
        before,
        "a dry run writes nothing"
    );

    // The server seals new values with version 2 once it is active.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = c
        .put("/profile", Some(&a.token), &json!({"nickname": "rotator"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(versions_in_db(&db).await.contains_key(&2));

    let report = rotate_keys(dir.path(), &[]);
    assert_eq!(report["target_version"], 2);
    assert!(total(&report, "rewritten") > 20, "{report}");
    assert_eq!(total(&report, "unreadable"), 0, "{report}");
    let after = versions_in_db(&db).await;
    assert_eq!(
        after.keys().copied().collect::<Vec<_>>(),
        vec![2],
        "{after:?}"
    );
    // Resumable and idempotent: a second run finds nothing left.
    let again = rotate_keys(dir.path(), &["--dry-run"]);
    assert_eq!(total(&again, "stale"), 0, "{again}");

    reads_everything(c, &a, &b, chat, (&public_code, &invite)).await;
    stop(server);

    // Delete version 1 from the key file: the data no longer needs it.
    let path = dir.path().join("melo-data/keys/data-keys.json");
    let mut file: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    file["keys"].as_object_mut().expect("keys").remove("1");
    file["blind"] = file["blind_keys"]["2"].clone();
    file["current"] = json!(2);
    file.as_object_mut().expect("object").remove("next");
    std::fs::write(&path, serde_json::to_vec(&file).expect("json")).expect("write");

    let server = start(dir.path());
    let c = &server.client;
    let r = c
        .post("/chats/leave", Some(&b.token), &json!({"chat_id": chat}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    reads_everything(c, &a, &b, chat, (&public_code, &invite)).await;
    stop(server);
}
