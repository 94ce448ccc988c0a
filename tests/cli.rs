//! The `melo` binary as a process: `--help`, `--version`, usage errors, and each subcommand's
//! exit status and output (`serve` and its `--no-migrate`, `check-config`, `migrate`,
//! `rotate-keys`). The admin, backup and restore commands have tests of their own
//! (tests/admin_binary.rs, tests/backup_binary.rs).

// The fresh-database guard of the audit test; this file uses only part of it.
#[allow(dead_code, unreachable_pub)]
#[path = "zk_audit/backends.rs"]
mod backends;
mod common;

use std::path::Path;
use std::process::Output;

use common::binary::{run_melo, start_args, stop};

const FIXTURE: &str = "HTTP_PORT=0\nWS_PORT=0\nBCRYPT_COST=4\n";

fn melo(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    run_melo(dir, args, env)
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("utf-8")
}

#[test]
fn help_lists_every_command_and_setting_with_its_variable_and_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = melo(dir.path(), &["--help"], &[]);
    assert!(out.status.success());
    // Wrapped lines joined: one space between words.
    let help = text(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for command in [
        "serve",
        "check-config",
        "migrate",
        "rotate-keys",
        "backup",
        "restore",
        "verify-backup",
        "admin",
        "import-original",
    ] {
        assert!(help.contains(command), "{command} in --help:\n{help}");
    }
    for (var, default) in [
        ("BCRYPT_COST", "12"),
        ("HTTP_PORT", "8088"),
        ("METRICS_ADDR", "127.0.0.1:9090"),
        ("MELO_DATA_DIR", "./melo-data"),
        ("LOG_FORMAT", "auto"),
        ("QUEUE_MAX", "10000"),
    ] {
        let at = help
            .find(&format!("[env: {var}"))
            .unwrap_or_else(|| panic!("{var} in --help:\n{help}"));
        let rest = &help[at..];
        let end = rest.find(" --").unwrap_or(rest.len());
        assert!(
            rest[..end].contains(&format!("[default: {default}]")),
            "{var} shows its default {default}: {}",
            &rest[..end]
        );
    }
    let vars = help.matches("[env: ").count();
    assert!(vars >= 55, "every setting has its variable ({vars})");
    // Secrets never show their value, even when set.
    let out = melo(
        dir.path(),
        &["--help"],
        &[
            ("TURN_SECRET", "turn-4242"),
            ("DB_URL", "mysql://u:pw-77@h/db"),
        ],
    );
    let help = text(&out.stdout);
    assert!(
        !help.contains("turn-4242") && !help.contains("pw-77"),
        "{help}"
    );
    // A subcommand's help has its own flags.
    let out = melo(dir.path(), &["serve", "--help"], &[]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("--no-migrate"));
    let out = melo(dir.path(), &["admin", "user", "--help"], &[]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for command in ["lock", "unlock", "delete", "sessions", "revoke"] {
        assert!(
            help.contains(command),
            "{command} in admin user --help:\n{help}"
        );
    }
    let out = melo(dir.path(), &["rotate-keys", "--help"], &[]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(help.contains("--new-key") && help.contains("--dry-run"));
}

#[test]
fn version_prints_the_crate_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = melo(dir.path(), &["--version"], &[]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!("melo {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = melo(dir.path(), &["frobnicate"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("frobnicate") && err.lines().count() == 1,
        "{err}"
    );

    let out = melo(dir.path(), &["check-config"], &[("QUEUE_MAX", "lots")]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("QUEUE_MAX") && err.lines().count() == 1,
        "{err}"
    );

    let out = melo(dir.path(), &["rotate-keys", "--activate-in", "5"], &[]);
    assert_eq!(out.status.code(), Some(2), "--activate-in needs --new-key");
    assert!(!dir.path().join("melo-data").exists(), "nothing started");
}

#[test]
fn blank_variables_count_as_unset_and_flags_win_over_variables() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".env"), FIXTURE).expect(".env");
    let out = melo(
        dir.path(),
        &["check-config", "--typing-ttl", "9"],
        &[("WS_PORT", " "), ("TYPING_TTL", "7"), ("STUN_URLS", "")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["config"]["http"]["ws_port"], 8089, "blank: the default");
    assert_eq!(v["config"]["realtime"]["typing_ttl"], 9, "the flag wins");
    assert_eq!(v["config"]["auth"]["bcrypt_cost"], 4, "from .env");
    assert_eq!(
        v["config"]["realtime"]["stun_urls"],
        serde_json::json!([]),
        "an empty list is no STUN server"
    );
    assert_eq!(v["server"]["metrics_addr"], "127.0.0.1:9090");
    let out = melo(dir.path(), &["check-config"], &[("METRICS_ADDR", "same")]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["server"]["metrics_addr"], serde_json::Value::Null);
    assert_eq!(v["config"]["metrics_separate_listener"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_then_serve_without_migrating_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".env"), FIXTURE).expect(".env");
    // An empty database: --no-migrate refuses it and says what to run.
    let out = melo(dir.path(), &["serve", "--no-migrate"], &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("melo migrate"), "{err}");

    let out = melo(dir.path(), &["migrate"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("up to date"));
    assert!(dir.path().join("melo-data/melo.db").exists());
    // Again: nothing to do, same answer.
    let out = melo(dir.path(), &["migrate"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let server = start_args(dir.path(), &["serve", "--no-migrate"], &[]);
    assert_eq!(server.client.get("/status", None).await.status, 200);
    stop(server);

    // A database a newer release migrated: --no-migrate refuses it too.
    let db = rusqlite::Connection::open(dir.path().join("melo-data/melo.db")).expect("open");
    db.execute(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99999, 'from the future', TRUE, x'00', 0)",
        [],
    )
    .expect("insert");
    drop(db);
    let out = melo(dir.path(), &["serve", "--no-migrate"], &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("99999") && err.contains("newer release"),
        "{err}"
    );
}

/// The same on MySQL (CI sets MELO_TEST_MYSQL_URL; a fresh database per run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_then_serve_without_migrating_on_mysql() {
    let Some(url) = backends::env_url("MELO_TEST_MYSQL_URL") else {
        eprintln!("MELO_TEST_MYSQL_URL unset: MySQL part skipped");
        return;
    };
    let (db, db_url) = backends::MysqlDb::create_empty(&url).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".env"), FIXTURE).expect(".env");
    let env = [("DB_URL", db_url.as_str())];
    let out = melo(dir.path(), &["serve", "--no-migrate"], &env);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("melo migrate"), "{err}");
    assert!(!err.contains(&db_url), "no URL in errors: {err}");

    let out = melo(dir.path(), &["migrate"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let server = start_args(dir.path(), &["serve", "--no-migrate"], &env);
    assert_eq!(server.client.get("/status", None).await.status, 200);
    stop(server);
    db.drop_database().await;
}
