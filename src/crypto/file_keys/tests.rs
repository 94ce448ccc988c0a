//! Tests of `FileKeyProvider`: a settable clock drives rotation and retirement.

use super::*;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

const HOUR: i64 = 3600;

fn policy() -> KeyPolicy {
    KeyPolicy {
        rotation: Duration::from_secs(HOUR as u64),
        token_ttl: Duration::from_secs(60),
        publish_delay: Duration::from_secs(120),
    }
}

/// A settable clock, starting at the real time (temporary files are judged by real time).
fn clock() -> (Clock, Arc<AtomicI64>) {
    let t = Arc::new(AtomicI64::new(Timestamp::now().secs()));
    (
        Clock {
            fixed: Some(t.clone()),
        },
        t,
    )
}

async fn open_at(dir: &Path, clock: &Clock) -> FileKeyProvider {
    FileKeyProvider::open_with(dir.to_owned(), policy(), None, clock.clone())
        .await
        .expect("open")
}

fn kids(p: &FileKeyProvider) -> Vec<String> {
    p.verifying_keys()
        .iter()
        .map(|k| k.kid().to_owned())
        .collect()
}

/// Names in `jwt/`, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("jwt"))
        .expect("jwt dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Writes a key file as an older release did: `jwt/<slot>.pem`, last modified at `slot`.
fn old_style_key(dir: &Path, slot: i64) -> String {
    let key = JwtKey::generate(slot).expect("key");
    let path = dir.join("jwt").join(format!("{slot}.pem"));
    std::fs::create_dir_all(dir.join("jwt")).expect("jwt dir");
    std::fs::write(&path, key.private_pem()).expect("write");
    let at = UNIX_EPOCH + Duration::from_secs(slot as u64);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(at))
        .expect("mtime");
    key.kid().to_owned()
}

#[tokio::test]
async fn creates_persists_and_reloads_with_0600() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = FileKeyProvider::open(dir.path(), KeyPolicy::default(), None)
        .await
        .expect("open");
    let kid = p.signing_key().kid().to_owned();
    let blind = *p.data_keys().blind_key();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("data-keys.json"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let jwt = std::fs::read_dir(dir.path().join("jwt"))
            .expect("dir")
            .next()
            .expect("one")
            .expect("entry");
        assert_eq!(
            jwt.metadata().expect("meta").permissions().mode() & 0o777,
            0o600
        );
    }
    drop(p);
    let p = FileKeyProvider::open(dir.path(), KeyPolicy::default(), None)
        .await
        .expect("reopen");
    assert_eq!(p.signing_key().kid(), kid);
    assert_eq!(p.data_keys().blind_key(), &blind);
}

#[tokio::test]
async fn a_new_key_is_published_before_it_signs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (c, t) = clock();
    let p = open_at(dir.path(), &c).await;
    let first = p.signing_key();
    let t0 = first.created_at();
    // Not due until the slot (t0 + 1 h) is within the publish delay (120 s).
    t.store(t0 + HOUR - 121, Ordering::SeqCst);
    p.maintain().await.expect("maintain");
    assert_eq!(files(dir.path()).len(), 1);
    t.store(t0 + HOUR - 120, Ordering::SeqCst);
    p.maintain().await.expect("maintain");
    assert_eq!(
        files(dir.path()),
        vec![format!("{t0}.pem"), format!("{}.pem", t0 + HOUR)],
        "the new key is named after its slot; no temporary file is left"
    );
    assert_eq!(p.verifying_keys().len(), 2, "it verifies at once");
    assert_eq!(p.signing_key().kid(), first.kid(), "but does not sign yet");
    t.store(t0 + HOUR - 1, Ordering::SeqCst);
    assert_eq!(p.signing_key().kid(), first.kid());
    t.store(t0 + HOUR, Ordering::SeqCst);
    let second = p.signing_key();
    assert_ne!(second.kid(), first.kid(), "it signs from its slot");
    assert_eq!(second.created_at(), t0 + HOUR);
    // A rotation that is late (all nodes were down) still waits for the publish delay.
    t.store(t0 + 5 * HOUR + 1000, Ordering::SeqCst);
    p.maintain().await.expect("maintain");
    let live = kids(&p);
    assert_eq!(
        live.len(),
        2,
        "one key for the missed periods; the first retired"
    );
    assert_eq!(live[0], second.kid());
    assert_eq!(p.signing_key().kid(), second.kid());
    t.store(t0 + 5 * HOUR + 1120, Ordering::SeqCst);
    let third = p.signing_key();
    assert_eq!(third.created_at(), t0 + 5 * HOUR);
    assert_ne!(third.kid(), second.kid());
}

#[tokio::test]
async fn racing_nodes_make_exactly_one_key_per_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (c, t) = clock();
    // Nodes starting together on an empty directory agree on every key.
    let nodes = futures_util::future::join_all((0..4).map(|_| open_at(dir.path(), &c))).await;
    assert_eq!(
        files(dir.path()).len(),
        1,
        "one first key: {:?}",
        files(dir.path())
    );
    let data = std::fs::read(dir.path().join(DATA_KEYS_FILE)).expect("data keys");
    for n in &nodes {
        assert_eq!(kids(n), kids(&nodes[0]));
        assert_eq!(n.data_keys().blind_key(), nodes[0].data_keys().blind_key());
        assert_eq!(
            n.vapid_key().expect("vapid").public_base64url(),
            nodes[0].vapid_key().expect("vapid").public_base64url()
        );
    }
    assert_eq!(
        nodes[0].data_keys().key(1).map(|k| STANDARD.encode(k)),
        serde_json::from_slice::<DataKeysFile>(&data)
            .expect("json")
            .keys
            .get(&1)
            .cloned(),
        "the file holds the keys every node uses"
    );
    // Rotation due on every node at once.
    let t0 = nodes[0].signing_key().created_at();
    t.store(t0 + HOUR - 60, Ordering::SeqCst);
    let results = futures_util::future::join_all(nodes.iter().map(|n| n.maintain())).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(
        files(dir.path()),
        vec![format!("{t0}.pem"), format!("{}.pem", t0 + HOUR)],
        "exactly one new key"
    );
    t.store(t0 + HOUR + 60, Ordering::SeqCst);
    for n in &nodes {
        assert_eq!(
            kids(n),
            kids(&nodes[0]),
            "every node holds the winner's key"
        );
        assert_eq!(n.signing_key().kid(), nodes[0].signing_key().kid());
        assert_eq!(n.signing_key().created_at(), t0 + HOUR);
    }
}

#[tokio::test]
async fn maintain_loads_keys_of_other_nodes_and_drops_deleted_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (c, t) = clock();
    let a = open_at(dir.path(), &c).await;
    let b = open_at(dir.path(), &c).await;
    let t0 = a.signing_key().created_at();
    t.store(t0 + HOUR, Ordering::SeqCst);
    a.maintain().await.expect("rotate on a");
    assert_eq!(kids(&b).len(), 1, "b has not looked yet");
    // A half-written or foreign file never stops maintenance.
    std::fs::write(dir.path().join("jwt").join("1.pem"), "-----BEGIN PRIV").expect("junk");
    std::fs::write(dir.path().join("jwt").join("notes.txt"), "x").expect("junk");
    b.maintain().await.expect("b loads it");
    assert_eq!(kids(&b), kids(&a));
    // Well after the new key started signing, a retires the old one and deletes its file;
    // b drops it too.
    std::fs::remove_file(dir.path().join("jwt").join("1.pem")).expect("rm");
    t.store(t0 + 2 * HOUR - 200, Ordering::SeqCst);
    a.maintain().await.expect("retire on a");
    assert_eq!(kids(&a).len(), 1);
    assert!(!dir.path().join("jwt").join(format!("{t0}.pem")).exists());
    b.maintain().await.expect("b drops it");
    assert_eq!(kids(&b), kids(&a));
    // An emptied (say, unmounted) directory keeps the loaded keys.
    for f in files(dir.path()) {
        std::fs::remove_file(dir.path().join("jwt").join(f)).expect("rm");
    }
    assert!(b.maintain().await.is_err());
    assert_eq!(kids(&b), kids(&a));
}

#[tokio::test]
async fn an_existing_key_directory_keeps_working() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (c, t) = clock();
    let now = t.load(Ordering::SeqCst);
    // A lone key from an older release, of any age, signs at once.
    let old = old_style_key(dir.path(), now - 10 * HOUR);
    let p = open_at(dir.path(), &c).await;
    assert_eq!(p.signing_key().kid(), old);
    // It was due long ago: the next key is made now and signs after the publish delay.
    assert_eq!(p.verifying_keys().len(), 2);
    t.store(now + 119, Ordering::SeqCst);
    assert_eq!(p.signing_key().kid(), old);
    t.store(now + 120, Ordering::SeqCst);
    assert_ne!(p.signing_key().kid(), old);
    assert_eq!(
        p.signing_key().created_at(),
        now,
        "the last period that begins within the publish delay"
    );
}

#[tokio::test]
async fn a_retired_key_leaves_the_set_ttl_plus_ten_minutes_after_its_successor_signs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (c, t) = clock();
    let now = t.load(Ordering::SeqCst);
    // The successor signed from 2000 s ago; tokens live 60 s, so the first key stopped
    // verifying 2000 - 660 s ago.
    let first = old_style_key(dir.path(), now - 5000);
    let second = old_style_key(dir.path(), now - 2000);
    let p = open_at(dir.path(), &c).await;
    assert_eq!(kids(&p), vec![second.clone()], "only the successor is live");
    assert_ne!(first, second);
    assert_eq!(p.signing_key().kid(), second);
    assert!(
        !dir.path()
            .join("jwt")
            .join(format!("{}.pem", now - 5000))
            .exists(),
        "file deleted"
    );
}

#[tokio::test]
async fn added_data_key_is_loaded_then_activates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = FileKeyProvider::open(dir.path(), KeyPolicy::default(), None)
        .await
        .expect("open");
    let v1_blind = *p.data_keys().blind_key();
    let later = Timestamp::now().secs() + 3600;
    let added = FileKeyProvider::add_data_key(dir.path(), later)
        .await
        .expect("add");
    assert_eq!(added.version, 2);
    assert!(
        FileKeyProvider::add_data_key(dir.path(), later)
            .await
            .is_err(),
        "one pending rotation at a time"
    );
    assert!(
        p.data_keys().key(2).is_none(),
        "not loaded before maintenance"
    );
    p.maintain().await.expect("maintain");
    let keys = p.data_keys();
    assert!(keys.key(2).is_some(), "loaded by maintenance");
    assert_eq!(keys.current_version(), 1, "still pending");
    assert_eq!(keys.blind_keys(), vec![&v1_blind, keys.blind_keys()[1]]);
    // Due now: the next add folds it in and stages version 3.
    let file = std::fs::read(dir.path().join(DATA_KEYS_FILE)).expect("read");
    let mut json: serde_json::Value = serde_json::from_slice(&file).expect("json");
    json["next"]["activates_at"] = serde_json::json!(0);
    std::fs::write(dir.path().join(DATA_KEYS_FILE), json.to_string()).expect("write");
    p.maintain().await.expect("maintain");
    let keys = p.data_keys();
    assert_eq!(keys.current_version(), 2, "active once due");
    assert_ne!(
        keys.blind_key(),
        &v1_blind,
        "version 2 has its own blind key"
    );
    assert_eq!(keys.blind_keys().len(), 2, "lookups try both");
    let reopened = FileKeyProvider::open(dir.path(), KeyPolicy::default(), None)
        .await
        .expect("reopen");
    assert_eq!(reopened.data_keys().current_version(), 2);
    assert_eq!(reopened.data_keys().blind_key(), keys.blind_key());
}
