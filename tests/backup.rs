//! Backup and restore of a SQLite server (issue 17), over real sockets: a backup taken while
//! the server keeps serving and writing restores into a fresh data directory where every user
//! logs in and finds their contacts, chats and queued messages; restore refuses keys of another
//! server, altered files and occupied targets, leaving the target untouched.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::backup::{check_restored, serve, workload, Sender, PRE};
use common::realtime::{make_contacts, Target};
use common::{new_user, TestServer};
use melo::backup::{
    backup, restore, verify, BackupError, BackupOptions, DataKeysSource, DatabaseKind, Layout,
    Manifest, RestoreOptions, MANIFEST_FILE,
};
use melo::config::Secret;
use melo::crypto::KeyPolicy;
use melo::{FileKeyProvider, SqliteStore};

/// A server on `<dir>/melo.db` and `<dir>/keys`, as the binary lays out a data directory.
async fn sqlite_server(dir: &Path) -> TestServer {
    let store = SqliteStore::open(dir.join("melo.db"))
        .await
        .expect("open SQLite");
    serve(Arc::new(store), &dir.join("keys")).await
}

/// Every directory under `dir` (itself included) is 0700 and every file 0600.
fn assert_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{} is 0700", dir.display());
    for e in std::fs::read_dir(dir).expect("list") {
        let path = e.expect("entry").path();
        if path.is_dir() {
            assert_private(&path);
        } else {
            let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is 0600", path.display());
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("list") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).expect("copy");
        }
    }
}

fn read_manifest(dir: &Path) -> Manifest {
    serde_json::from_slice(&std::fs::read(dir.join(MANIFEST_FILE)).expect("read manifest"))
        .expect("manifest JSON")
}

fn write_manifest(dir: &Path, m: &Manifest) {
    std::fs::write(
        dir.join(MANIFEST_FILE),
        serde_json::to_vec_pretty(m).expect("JSON"),
    )
    .expect("write manifest");
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_restores_every_user() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let live = tmp.path().join("live");
    std::fs::create_dir(&live).expect("mkdir");
    let server = sqlite_server(&live).await;
    let t = Target::of(&server);
    let w = workload(&t).await;

    // The backup is taken while B keeps sending to C (each send a durable write).
    let sender = Sender::start(&t, &w.b, &w.c);
    sender.wait_for(5).await;
    let started = sender.acked();
    let bk = tmp.path().join("backup");
    let report = backup(&Layout::sqlite_in(&live), &bk, &BackupOptions::default())
        .await
        .expect("backup while serving");
    let ended = sender.acked();
    sender.wait_for(ended + 3).await;
    let total = sender.stop().await;
    assert!(
        total >= ended + 3,
        "the server kept serving after the backup"
    );
    eprintln!("live messages acknowledged: {started} before the backup, {ended} after it");

    let m = &report.manifest;
    assert_eq!(m.database.kind, DatabaseKind::Sqlite);
    assert_eq!(m.database.file.as_deref(), Some("melo.db"));
    assert!(m.database.schema_version >= 8, "{m:?}");
    assert_eq!(m.melo_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(m.keys.versions, vec![1]);
    assert_eq!(m.keys.jwt_keys, 1);
    assert!(m.keys.vapid_public_key.is_some());
    for f in ["melo.db", "keys/data-keys.json", "keys/vapid.json"] {
        assert_eq!(m.files[f].sha256.len(), 64, "{f} is hashed");
    }
    assert!(m.files.keys().any(|f| f.starts_with("keys/jwt/")));
    // Users, sessions, chats and queued events were sampled and opened; the three phone
    // indexes and the chat's matched.
    assert!(m.key_check.opened() >= 12, "{:?}", m.key_check);
    assert!(m.key_check.blind_indexes_matched >= 3, "{:?}", m.key_check);
    assert!(m.key_check.rows["queue"] >= 1, "{:?}", m.key_check);
    assert_eq!(report.dump_command, None);
    assert_eq!(&read_manifest(&bk), m, "the manifest on disk");
    assert_private(&bk);
    let v = verify(&bk, None).await.expect("verify");
    assert_eq!(v.key_check.as_ref(), Some(&m.key_check));
    server.stop().await;

    // A fresh data directory: restore creates it.
    let restored = tmp.path().join("restored");
    let rr = restore(
        &bk,
        &Layout::sqlite_in(&restored),
        &RestoreOptions::default(),
    )
    .await
    .expect("restore");
    assert!(rr.moved_aside.is_empty());
    assert_eq!(
        rr.database.as_deref(),
        Some(restored.join("melo.db").as_path())
    );
    assert_eq!(entries(&restored), ["keys", "melo.db"], "nothing else left");
    assert_private(&restored);
    // The restored key directory's JWT key kept its publication time.
    let jwt = m
        .files
        .iter()
        .find(|(f, _)| f.starts_with("keys/jwt/"))
        .expect("a JWT key");
    let mtime = std::fs::metadata(restored.join(jwt.0))
        .expect("stat")
        .modified()
        .expect("mtime")
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    assert_eq!(Some(mtime), jwt.1.modified);

    let server = sqlite_server(&restored).await;
    assert!(w.queued.len() == PRE + 1);
    check_restored(&Target::of(&server), &w, started, ended + 1).await;
    server.stop().await;
}

/// A small backup of a running server: two users who are contacts.
async fn small_backup(root: &Path) -> PathBuf {
    let live = root.join("live");
    std::fs::create_dir(&live).expect("mkdir");
    let server = sqlite_server(&live).await;
    let t = Target::of(&server);
    let a = new_user(&t.client, "Ann").await;
    let b = new_user(&t.client, "Ben").await;
    make_contacts(&t, &a, &b).await;
    let bk = root.join("backup");
    backup(&Layout::sqlite_in(&live), &bk, &BackupOptions::default())
        .await
        .expect("backup");
    server.stop().await;
    bk
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_foreign_keys() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bk = small_backup(tmp.path()).await;
    // Another server: its own keys, an empty database.
    let other = tmp.path().join("other");
    FileKeyProvider::open(other.join("keys"), KeyPolicy::default(), None)
        .await
        .expect("other keys");
    drop(
        SqliteStore::open(other.join("melo.db"))
            .await
            .expect("other db"),
    );
    let obk = tmp.path().join("other-backup");
    let other_report = backup(&Layout::sqlite_in(&other), &obk, &BackupOptions::default())
        .await
        .expect("backup of the other server");
    assert_eq!(
        other_report.manifest.key_check.opened(),
        0,
        "nothing sealed"
    );

    // The other server's data keys put in, their hash entered in the manifest.
    let forged = tmp.path().join("forged");
    copy_dir(&bk, &forged);
    std::fs::copy(
        obk.join("keys/data-keys.json"),
        forged.join("keys/data-keys.json"),
    )
    .expect("swap keys");
    let mut m = read_manifest(&forged);
    let theirs = other_report.manifest.files["keys/data-keys.json"].clone();
    m.files.insert("keys/data-keys.json".into(), theirs);
    write_manifest(&forged, &m);
    let target = tmp.path().join("target");
    let err = restore(
        &forged,
        &Layout::sqlite_in(&target),
        &RestoreOptions::default(),
    )
    .await
    .expect_err("keys of another server");
    assert!(matches!(err, BackupError::KeyCheck(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("key check failed:"), "{msg}");
    assert!(msg.contains("fingerprint"), "{msg}");
    assert!(!target.exists(), "nothing written");

    // Their fingerprints entered too: the sealed values themselves refuse the keys.
    m.keys.fingerprints = other_report.manifest.keys.fingerprints.clone();
    write_manifest(&forged, &m);
    let err = restore(
        &forged,
        &Layout::sqlite_in(&target),
        &RestoreOptions::default(),
    )
    .await
    .expect_err("keys that do not open the data");
    let msg = err.to_string();
    assert!(matches!(err, BackupError::KeyCheck(_)), "{err:?}");
    assert!(msg.starts_with("key check failed:"), "{msg}");
    assert!(
        msg.contains("users.phone") && msg.contains("does not open"),
        "{msg}"
    );
    assert!(!target.exists(), "nothing written");
    let err = verify(&forged, None).await.expect_err("verify agrees");
    assert!(matches!(err, BackupError::KeyCheck(_)), "{err:?}");

    // The untouched backup restores.
    restore(&bk, &Layout::sqlite_in(&target), &RestoreOptions::default())
        .await
        .expect("the real backup restores");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_altered_backups_and_occupied_targets() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bk = small_backup(tmp.path()).await;
    let target = tmp.path().join("target");

    // Backups go into new or empty directories only.
    let busy = tmp.path().join("busy");
    std::fs::create_dir(&busy).expect("mkdir");
    std::fs::write(busy.join("keep.txt"), "mine").expect("write");
    let live = Layout::sqlite_in(&tmp.path().join("live"));
    let err = backup(&live, &busy, &BackupOptions::default())
        .await
        .expect_err("a non-empty target");
    assert!(matches!(err, BackupError::TargetNotEmpty(_)), "{err:?}");
    assert_eq!(entries(&busy), ["keep.txt"]);

    // One byte of the database changed.
    let tampered = tmp.path().join("tampered");
    copy_dir(&bk, &tampered);
    let db = tampered.join("melo.db");
    let mut bytes = std::fs::read(&db).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&db, bytes).expect("write");
    let err = restore(
        &tampered,
        &Layout::sqlite_in(&target),
        &RestoreOptions::default(),
    )
    .await
    .expect_err("an altered file");
    assert!(
        matches!(&err, BackupError::HashMismatch(f) if f == "melo.db"),
        "{err:?}"
    );
    assert!(err.to_string().contains("SHA-256"), "{err}");
    assert!(!target.exists(), "nothing written");

    // A JWT key slipped in that the manifest does not list.
    let extra = tmp.path().join("extra");
    copy_dir(&bk, &extra);
    let jwt = std::fs::read_dir(extra.join("keys/jwt"))
        .expect("list")
        .next()
        .expect("a key")
        .expect("entry")
        .path();
    std::fs::copy(&jwt, extra.join("keys/jwt/99.pem")).expect("copy");
    let err = verify(&extra, None).await.expect_err("an unlisted key");
    assert!(matches!(err, BackupError::Invalid(_)), "{err:?}");
    assert!(err.to_string().contains("keys/jwt/99.pem"), "{err}");

    // An interrupted backup (no manifest).
    std::fs::remove_file(tampered.join(MANIFEST_FILE)).expect("rm");
    let err = verify(&tampered, None).await.expect_err("no manifest");
    assert!(err.to_string().contains("manifest.json"), "{err}");

    // A target with a database, then one with keys: refused without force.
    std::fs::create_dir_all(target.join("keys")).expect("mkdir");
    std::fs::write(target.join("melo.db"), "old database").expect("write");
    let err = restore(&bk, &Layout::sqlite_in(&target), &RestoreOptions::default())
        .await
        .expect_err("a database in place");
    assert!(
        matches!(&err, BackupError::Occupied(p) if p.ends_with("melo.db")),
        "{err:?}"
    );
    std::fs::remove_file(target.join("melo.db")).expect("rm");
    std::fs::write(target.join("keys/data-keys.json"), "old keys").expect("write");
    let err = restore(&bk, &Layout::sqlite_in(&target), &RestoreOptions::default())
        .await
        .expect_err("keys in place");
    assert!(
        matches!(&err, BackupError::Occupied(p) if p.ends_with("keys")),
        "{err:?}"
    );
    assert_eq!(entries(&target), ["keys"], "nothing written");
    assert_eq!(entries(&target.join("keys")), ["data-keys.json"]);

    // With force, what was there is moved aside, not deleted.
    std::fs::write(target.join("melo.db"), "old database").expect("write");
    let rr = restore(
        &bk,
        &Layout::sqlite_in(&target),
        &RestoreOptions { force: true },
    )
    .await
    .expect("forced restore");
    assert_eq!(rr.moved_aside.len(), 2, "{:?}", rr.moved_aside);
    let aside_db = rr
        .moved_aside
        .iter()
        .find(|p| p.to_string_lossy().contains("melo.db.before-restore-"))
        .expect("the old database, aside");
    assert_eq!(std::fs::read(aside_db).expect("read"), b"old database");
    let aside_keys = rr
        .moved_aside
        .iter()
        .find(|p| p.to_string_lossy().contains("keys.before-restore-"))
        .expect("the old keys, aside");
    assert_eq!(
        std::fs::read(aside_keys.join("data-keys.json")).expect("read"),
        b"old keys"
    );
    assert_eq!(
        std::fs::read(target.join("keys/data-keys.json")).expect("read"),
        std::fs::read(bk.join("keys/data-keys.json")).expect("read"),
    );
    // The restored data directory serves.
    let server = sqlite_server(&target).await;
    assert_eq!(server.client.get("/status", None).await.status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_data_keys_need_the_secret_to_restore() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let live = tmp.path().join("live");
    std::fs::create_dir(&live).expect("mkdir");
    let secret = "correct horse battery staple";
    let server = derived_server(&live, secret).await;
    let a = new_user(&server.client, "Dee").await;
    let layout = |dir: &Path, s: Option<&str>| Layout {
        data_secret: s.map(Secret::new),
        ..Layout::sqlite_in(dir)
    };
    let bk = tmp.path().join("backup");
    let report = backup(&layout(&live, Some(secret)), &bk, &BackupOptions::default())
        .await
        .expect("backup");
    server.stop().await;
    let m = &report.manifest;
    assert_eq!(m.keys.data_keys, DataKeysSource::Derived);
    assert!(!m.files.contains_key("keys/data-keys.json"), "no key file");
    assert!(!bk.join("keys/data-keys.json").exists());
    assert!(m.key_check.opened() >= 3, "{:?}", m.key_check);

    let err = verify(&bk, None).await.expect_err("the secret is needed");
    assert!(err.to_string().contains("ENCRYPTION_KEY_STR"), "{err}");
    let target = tmp.path().join("target");
    let err = restore(
        &bk,
        &layout(&target, Some("wrong")),
        &RestoreOptions::default(),
    )
    .await
    .expect_err("another secret");
    assert!(matches!(err, BackupError::KeyCheck(_)), "{err:?}");
    assert!(!target.exists(), "nothing written");
    // A backup with a key file, restored where ENCRYPTION_KEY_STR is set, would not be read.
    let other = tmp.path().join("file");
    std::fs::create_dir(&other).expect("mkdir");
    let file_bk = small_backup(&other).await;
    let err = restore(
        &file_bk,
        &layout(&target, Some(secret)),
        &RestoreOptions::default(),
    )
    .await
    .expect_err("a key-file backup under ENCRYPTION_KEY_STR");
    assert!(err.to_string().contains("unset it"), "{err}");
    assert!(!target.exists(), "nothing written");

    restore(
        &bk,
        &layout(&target, Some(secret)),
        &RestoreOptions::default(),
    )
    .await
    .expect("restore with the secret");
    let server = derived_server(&target, secret).await;
    let r = common::login(&server.client, &a.phone, &a.password, &a.device).await;
    assert_eq!(r.status, 200, "{}", r.body);
    server.stop().await;
}

/// A server whose data keys are derived from `secret` (`ENCRYPTION_KEY_STR`).
async fn derived_server(dir: &Path, secret: &str) -> TestServer {
    let keys = FileKeyProvider::open(dir.join("keys"), KeyPolicy::default(), Some(secret))
        .await
        .expect("keys");
    let store: Arc<dyn melo::Store> = Arc::new(
        SqliteStore::open(dir.join("melo.db"))
            .await
            .expect("open SQLite"),
    );
    let melo = melo::Melo::builder(store.clone(), Arc::new(keys))
        .config(common::test_config())
        .build()
        .expect("build");
    TestServer::serve(melo, store).await
}
