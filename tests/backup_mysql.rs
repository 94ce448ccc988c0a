//! The MySQL backup procedure of docs/operations-backup.md, run for real when
//! `MELO_TEST_MYSQL_URL` is set (and `mariadb-dump` and `mariadb` are on `PATH`): a server on
//! MySQL serves a workload and keeps writing while `backup` dumps the database with
//! `mariadb-dump --single-transaction` and copies the keys; the dump is loaded into a fresh
//! database with the `mariadb` client; `restore` checks the backup's keys against the loaded data
//! and installs them; a server on the new database with those keys shows every user their data.
//! Unset: the test prints a note and passes without running; set but unusable: it fails.

// The fresh-database guard of the audit test; this file uses only part of it.
#[allow(dead_code, unreachable_pub)]
#[path = "zk_audit/backends.rs"]
mod backends;
mod common;

use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::Arc;

use backends::MysqlDb;
use common::backup::{check_restored, serve, workload, Sender};
use common::realtime::Target;
use melo::backup::{
    backup, restore, BackupError, BackupOptions, Database, DatabaseKind, Layout, RestoreOptions,
};
use melo::config::Secret;
use melo::MysqlStore;
use sqlx::mysql::MySqlConnectOptions;

/// Loads `dump` into the database of `url` as the operator does:
/// `mariadb --host=H --port=P --user=U <database> < database.sql`.
fn load_dump(url: &str, dump: &std::path::Path) {
    let opts = MySqlConnectOptions::from_str(url).expect("URL");
    let db = opts.get_database().expect("a database").to_owned();
    let status = Command::new("mariadb")
        .arg("--protocol=TCP")
        .arg(format!("--host={}", opts.get_host()))
        .arg(format!("--port={}", opts.get_port()))
        .arg(format!("--user={}", opts.get_username()))
        .arg(&db)
        .stdin(Stdio::from(
            std::fs::File::open(dump).expect("open the dump"),
        ))
        .status()
        .expect("run the mariadb client (is it on PATH?)");
    assert!(status.success(), "loading the dump: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_dump_while_serving_restores_every_user() {
    let Some(url) = backends::env_url("MELO_TEST_MYSQL_URL") else {
        eprintln!("MELO_TEST_MYSQL_URL is unset: MySQL backup test not run");
        return;
    };
    let (live_db, live_url) = MysqlDb::create_empty(&url).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let live_keys = tmp.path().join("live").join("keys");
    let store = Arc::new(MysqlStore::connect(&live_url).await.expect("MySQL store"));
    let server = serve(store.clone(), &live_keys).await;
    let t = Target::of(&server);
    let w = workload(&t).await;

    let sender = Sender::start(&t, &w.b, &w.c);
    sender.wait_for(5).await;
    let started = sender.acked();
    let bk = tmp.path().join("backup");
    let source = Layout {
        database: Database::Mysql(Secret::new(live_url.clone())),
        keys_dir: live_keys.clone(),
        data_secret: None,
    };
    let report = backup(&source, &bk, &BackupOptions::default())
        .await
        .expect("backup while serving (mariadb-dump must be on PATH)");
    let ended = sender.acked();
    sender.wait_for(ended + 3).await;
    sender.stop().await;
    eprintln!("live messages acknowledged: {started} before the backup, {ended} after it");

    let m = &report.manifest;
    assert_eq!(m.database.kind, DatabaseKind::Mysql);
    assert_eq!(
        m.database.file.as_deref(),
        Some("database.sql"),
        "dumped by backup"
    );
    assert_eq!(report.dump_command, None);
    let recorded = m
        .database
        .dump_command
        .as_deref()
        .expect("the dump command");
    assert!(recorded.contains("--single-transaction"), "{recorded}");
    assert!(recorded.contains("--hex-blob"), "{recorded}");
    assert!(m.database.schema_version >= 3, "{m:?}");
    assert!(m.files.contains_key("database.sql"));
    assert!(m.files.contains_key("keys/data-keys.json"));
    assert!(
        m.key_check.opened() >= 12,
        "checked against the live data: {:?}",
        m.key_check
    );
    let dump = std::fs::read_to_string(bk.join("database.sql")).expect("the dump");
    assert!(dump.contains("CREATE TABLE `users`"), "a full dump");
    assert!(
        !dump.contains("CREATE DATABASE"),
        "loads into a database of any name"
    );
    server.stop().await;
    store.pool().close().await;

    // A fresh database. Before the dump is loaded into it, restore refuses and writes nothing.
    let (new_db, new_url) = MysqlDb::create_empty(&url).await;
    let restored_keys = tmp.path().join("restored").join("keys");
    let target = Layout {
        database: Database::Mysql(Secret::new(new_url.clone())),
        keys_dir: restored_keys.clone(),
        data_secret: None,
    };
    let err = restore(&bk, &target, &RestoreOptions::default())
        .await
        .expect_err("the dump is not loaded yet");
    assert!(matches!(err, BackupError::Database(_)), "{err:?}");
    assert!(
        err.to_string().contains("load the backup's database.sql"),
        "{err}"
    );
    assert!(!restored_keys.exists(), "nothing written");

    load_dump(&new_url, &bk.join("database.sql"));
    let rr = restore(&bk, &target, &RestoreOptions::default())
        .await
        .expect("restore into the loaded database");
    assert_eq!(rr.database, None, "MySQL: only the keys are installed");
    assert!(rr.key_check.opened() >= 12, "{:?}", rr.key_check);
    assert!(restored_keys.join("data-keys.json").is_file());

    let store = Arc::new(MysqlStore::connect(&new_url).await.expect("restored store"));
    let server = serve(store.clone(), &restored_keys).await;
    check_restored(&Target::of(&server), &w, started, ended + 1).await;
    server.stop().await;
    store.pool().close().await;
    new_db.drop_database().await;
    live_db.drop_database().await;
}
