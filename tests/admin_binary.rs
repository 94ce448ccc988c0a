//! `melo admin …` as processes against a running `melo serve` on the same SQLite data directory
//! (the library calls behind them are tested on every backend in tests/admin.rs): a lock closes
//! the user's socket and refuses logins with 403 `account_locked`, unlock lets them in again;
//! sessions lists, revoke ends one session and leaves the other; stats counts; delete erases the
//! account; invites open an invite-only registration once; a closed registration answers 403
//! `registration_closed`; bad arguments exit 2 and unknown users 1.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::admin::{closed_revoked, register_body};
use common::binary::{run_melo, start_with, stop};
use common::ws::WsClient;
use common::{login, login_user, new_user, random_device, random_phone};
use serde_json::Value;

const FIXTURE: &str = "HTTP_PORT=0\nWS_PORT=0\nBCRYPT_COST=4\nRATE_LIMIT_CALLS=100000\n\
                       FAILED_LOGIN_LIMIT=1000\nFAILED_LOGIN_IP_LIMIT=100000\n";

fn melo(dir: &Path, args: &[&str]) -> Output {
    run_melo(dir, args, &[])
}

/// `melo admin ARGS` off the async threads; its JSON output.
async fn admin(dir: &Path, args: &[&str]) -> Value {
    let out = admin_raw(dir, args).await;
    assert!(
        out.status.success(),
        "melo admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

async fn admin_raw(dir: &Path, args: &[&str]) -> Output {
    let dir = dir.to_owned();
    let mut all = vec!["admin".to_owned()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = all.iter().map(String::as_str).collect();
        melo(&dir, &args)
    })
    .await
    .expect("admin process")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_against_a_running_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join(".env"), FIXTURE).expect(".env");
    let server = start_with(d, &[]);
    let c = server.client.clone();
    let http = server.http_addr();
    let a = new_user(&c, "Ada").await;
    let b = new_user(&c, "Bo").await;
    let a2 = login_user(&c, &a.uid, &a.phone, &a.password, &random_device()).await;

    // Two sessions listed; revoking one closes its socket only.
    let listed = admin(d, &["user", "sessions", &a.uid]).await;
    let sessions = listed["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 2, "{listed}");
    let mut ws1 = WsClient::open(http, &a.token).await;
    let mut ws2 = WsClient::open(http, &a2.token).await;
    ws1.sync().await;
    ws2.sync().await;
    let sid = a2.session_id.to_string();
    let revoked = admin(d, &["user", "revoke", &a.uid, "--session", &sid]).await;
    assert_eq!(
        revoked["sessions_revoked"],
        serde_json::json!([a2.session_id])
    );
    closed_revoked(&mut ws2, "revoked by melo admin").await;
    ws1.expect_silence(Duration::from_millis(500)).await;

    // Lock: the remaining socket closes, logins answer 403; unlock lets the user in again.
    let locked = admin(d, &["user", "lock", &a.uid]).await;
    assert_eq!(locked["locked"], true);
    closed_revoked(&mut ws1, "locked by melo admin").await;
    login(&c, &a.phone, &a.password, &random_device())
        .await
        .assert_error(403, "account_locked");
    admin(d, &["user", "unlock", &a.uid]).await;
    let r = login(&c, &a.phone, &a.password, &random_device()).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Counts only.
    let stats = admin(d, &["stats"]).await;
    let text = stats.to_string();
    assert!(!text.contains(&a.phone) && !text.contains(&a.uid), "{text}");
    assert!(stats.as_object().is_some_and(|o| !o.is_empty()), "{stats}");

    // Delete needs --yes; then B's socket closes and B cannot log in.
    let mut wsb = WsClient::open(http, &b.token).await;
    wsb.sync().await;
    let out = admin_raw(d, &["user", "delete", &b.uid]).await;
    assert!(!out.status.success(), "delete without --yes");
    let r = login(&c, &b.phone, &b.password, &random_device()).await;
    assert_eq!(r.status, 200, "nothing deleted: {}", r.body);
    let deleted = admin(d, &["user", "delete", &b.uid, "--yes"]).await;
    assert_eq!(
        deleted["deleted"]["user_id"].to_string().trim_matches('"'),
        b.uid
    );
    closed_revoked(&mut wsb, "deleted by melo admin").await;
    let r = login(&c, &b.phone, &b.password, &random_device()).await;
    assert_eq!(r.status, 401, "{}", r.body);

    // Run with the wrong data directory, a tool refuses instead of making keys and a database.
    let out = run_melo(d, &["admin", "stats"], &[("MELO_DATA_DIR", "./elsewhere")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no data keys"));
    assert!(!d.join("elsewhere").exists(), "nothing created");

    // An unknown user exits 1 with one line; a malformed uid is a usage error.
    let out = admin_raw(d, &["user", "lock", &b.uid]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such user"));
    let out = admin_raw(d, &["user", "lock", "not-a-uid"]).await;
    assert_eq!(out.status.code(), Some(2));
    stop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_closed_and_by_invite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join(".env"), FIXTURE).expect(".env");

    let (p1, p2, p3) = (random_phone(), random_phone(), random_phone());
    let server = start_with(d, &[("REGISTRATION", "closed")]);
    server
        .client
        .post("/register", None, &register_body(&p1, None))
        .await
        .assert_error(403, "registration_closed");
    stop(server);

    let server = start_with(d, &[("REGISTRATION", "invite")]);
    let c = server.client.clone();
    c.post("/register", None, &register_body(&p2, None))
        .await
        .assert_error(403, "invite_required");
    let invite = admin(d, &["invite", "--ttl", "3600"]).await;
    let code = invite["code"].as_str().expect("code").to_owned();
    let r = c
        .post("/register", None, &register_body(&p2, Some(&code)))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    c.post("/register", None, &register_body(&p3, Some(&code)))
        .await
        .assert_error(403, "registration_invite_invalid");
    // Without a valid code nobody learns whether a phone is registered.
    c.post("/register", None, &register_body(&p2, Some(&code)))
        .await
        .assert_error(403, "registration_invite_invalid");
    // The code is never stored as it is.
    stop(server);
    let db = std::fs::read(d.join("melo-data/melo.db")).expect("database");
    let needle = code.replace('-', "");
    assert!(
        !db.windows(needle.len()).any(|w| w == needle.as_bytes())
            && !db.windows(code.len()).any(|w| w == code.as_bytes()),
        "the invite code is in the database"
    );
    let out = admin_raw(d, &["invite", "--ttl", "5"]).await;
    assert!(!out.status.success(), "a lifetime under 60 s is refused");
}
