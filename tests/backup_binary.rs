//! `melo backup`, `melo verify-backup` and `melo restore` as an operator runs them: a `melo
//! serve` process on SQLite under a workload, a backup taken by a second process while it
//! serves and writes, the server stopped, the backup restored into a fresh data directory by a
//! third, and a server started there on which every user logs in and sees contacts, chats and
//! the messages queued before the backup.

mod common;

use std::path::Path;
use std::process::Output;

use common::backup::{check_restored, workload, Sender, PRE};
use common::binary::{run_melo, start_with, stop};
use common::realtime::Target;
use serde_json::Value;

const FIXTURE: &str = "HTTP_PORT=0\nWS_PORT=0\nBCRYPT_COST=4\nRATE_LIMIT_CALLS=100000\n\
                       FAILED_LOGIN_LIMIT=1000\nFAILED_LOGIN_IP_LIMIT=100000\n\
                       WS_RATE_LIMIT_MESSAGES=100000\n";

fn melo(dir: &Path, args: &[&str]) -> Output {
    run_melo(dir, args, &[])
}

fn ok_json(out: &Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: JSON report: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_serving_then_restore_into_a_fresh_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let live = tmp.path().join("live");
    let fresh = tmp.path().join("fresh");
    let backup_dir = tmp.path().join("backup");
    for dir in [&live, &fresh] {
        std::fs::create_dir(dir).expect("mkdir");
        std::fs::write(dir.join(".env"), FIXTURE).expect(".env");
    }

    let server = start_with(&live, &[]);
    let http = server.http_addr();
    let t = Target::new(server.client.clone(), http, http);
    let w = workload(&t).await;

    // The backup process runs while B keeps sending to C (each send a durable write).
    let sender = Sender::start(&t, &w.b, &w.c);
    sender.wait_for(5).await;
    let started = sender.acked();
    let (live_dir, target) = (live.clone(), backup_dir.clone());
    let out = tokio::task::spawn_blocking(move || {
        melo(&live_dir, &["backup", target.to_str().expect("utf-8 path")])
    })
    .await
    .expect("backup process");
    let ended = sender.acked();
    let report = ok_json(&out, "melo backup");
    sender.wait_for(ended + 3).await;
    sender.stop().await;
    assert_eq!(report["manifest"]["database"]["kind"], "sqlite");
    assert!(report["manifest"]["files"]["melo.db"]["sha256"].is_string());
    assert!(report["manifest"]["files"]["keys/data-keys.json"].is_object());
    stop(server);

    // A damaged backup is refused by verify and by restore, naming the file.
    let copy = tmp.path().join("damaged");
    std::fs::create_dir(&copy).expect("mkdir");
    for entry in walk(&backup_dir) {
        let rel = entry.strip_prefix(&backup_dir).expect("inside");
        let to = copy.join(rel);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&entry, &to).expect("copy");
    }
    let vapid = copy.join("keys/vapid.json");
    let mut bytes = std::fs::read(&vapid).expect("read");
    bytes.push(b' ');
    std::fs::write(&vapid, bytes).expect("write");
    let out = melo(&fresh, &["verify-backup", copy.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("vapid.json"), "{err}");
    let out = melo(&fresh, &["restore", copy.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    assert!(
        !fresh.join("melo-data/melo.db").exists(),
        "nothing restored"
    );

    let verified = ok_json(
        &melo(
            &fresh,
            &["verify-backup", backup_dir.to_str().expect("utf-8")],
        ),
        "melo verify-backup",
    );
    assert_eq!(verified["manifest"], report["manifest"]);
    ok_json(
        &melo(&fresh, &["restore", backup_dir.to_str().expect("utf-8")]),
        "melo restore",
    );
    // Restoring again over what is now there is refused without --force.
    let out = melo(&fresh, &["restore", backup_dir.to_str().expect("utf-8")]);
    assert!(
        !out.status.success(),
        "an occupied data directory is refused"
    );

    let server = start_with(&fresh, &[]);
    let http = server.http_addr();
    let t = Target::new(server.client.clone(), http, http);
    assert_eq!(w.queued.len(), PRE + 1);
    check_restored(&t, &w, started, ended + 1).await;
    stop(server);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
