use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use super::keys::{random_key, DataKeys, JwtKey, KeyPolicy, KeyProvider};
use super::CryptoError;
use crate::model::Timestamp;
use crate::push::VapidKey;

mod jwt_set;

use jwt_set::{key_file_name, secs, JwtSet};

/// Keys kept in a directory, created on first start with mode 0600:
/// `jwt/<slot>.pem` (PKCS#8 RSA keys), `data-keys.json` (AES-256-GCM keys by version and the
/// blind-index keys) and `vapid.json`.
///
/// Several nodes share one directory (a shared volume): every file is published atomically and
/// created exclusively, so nodes starting together agree on one set of keys, and
/// [`KeyProvider::maintain`] re-reads the directory, so every node sees the keys any node made or
/// retired.
///
/// - A JWT key's name is its slot, the Unix second from which it may sign. When the newest key's
///   slot plus [`KeyPolicy::rotation`] comes within [`KeyPolicy::publish_delay`], `maintain`
///   makes the key for that slot; of several nodes racing, one creates the file and the others
///   load it. A key verifies (and is in the JWKS) from the start, but signs only from its slot,
///   and not before it has been published for the publish delay, so every node has loaded it
///   before any token it signed exists.
/// - A key is deleted once every token it signed has expired: token lifetime + 10 minutes after
///   its successor started signing.
/// - `data-keys.json` is re-read too, so a data key added by [`FileKeyProvider::add_data_key`]
///   (the example's `rotate-keys --new-key`) reaches a running server before its activation
///   time.
pub struct FileKeyProvider {
    dir: PathBuf,
    policy: KeyPolicy,
    jwt: ArcSwap<JwtSet>,
    data: ArcSwap<DataKeys>,
    /// Data keys come from `ENCRYPTION_KEY_STR`, not from `data-keys.json`.
    derived: bool,
    vapid: Arc<VapidKey>,
    rotating: Mutex<()>,
    clock: Clock,
}

impl fmt::Debug for FileKeyProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileKeyProvider")
            .field("dir", &self.dir)
            .field("jwt_keys", &self.jwt.load().len())
            .finish_non_exhaustive()
    }
}

/// The provider's time: the system clock, or a settable one in unit tests.
#[derive(Clone, Default)]
struct Clock {
    #[cfg(test)]
    fixed: Option<Arc<std::sync::atomic::AtomicI64>>,
}

impl Clock {
    fn now(&self) -> i64 {
        #[cfg(test)]
        if let Some(t) = &self.fixed {
            return t.load(std::sync::atomic::Ordering::SeqCst);
        }
        Timestamp::now().secs()
    }
}

#[derive(Serialize, Deserialize)]
struct VapidFile {
    public: String,
    private: String,
}

/// `data-keys.json`. `blind` is the blind-index key of every version without its own entry in
/// `blind_keys` (files written before rotation existed have only `blind`).
#[derive(Serialize, Deserialize)]
struct DataKeysFile {
    current: u8,
    keys: BTreeMap<u8, String>,
    blind: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    blind_keys: BTreeMap<u8, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next: Option<NextKey>,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
struct NextKey {
    version: u8,
    /// Unix seconds.
    activates_at: i64,
}

/// A data key added by [`FileKeyProvider::add_data_key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddedDataKey {
    /// The new version.
    pub version: u8,
    /// Unix second from which new values are sealed with it.
    pub activates_at: i64,
}

impl FileKeyProvider {
    /// Opens (creating when missing) the key directory. When `data_secret` is given
    /// (`ENCRYPTION_KEY_STR`), the data keys are derived from it instead of `data-keys.json`.
    pub async fn open(
        dir: impl Into<PathBuf>,
        policy: KeyPolicy,
        data_secret: Option<&str>,
    ) -> Result<Self, CryptoError> {
        Self::open_with(dir.into(), policy, data_secret, Clock::default()).await
    }

    async fn open_with(
        dir: PathBuf,
        policy: KeyPolicy,
        data_secret: Option<&str>,
        clock: Clock,
    ) -> Result<Self, CryptoError> {
        let jwt_dir = dir.join("jwt");
        create_private_dir(&dir).await?;
        create_private_dir(&jwt_dir).await?;
        let data = match data_secret {
            Some(s) => DataKeys::derive_from_secret(s),
            None => load_or_create_data_keys(&dir.join(DATA_KEYS_FILE)).await?,
        };
        let vapid = load_or_create_vapid(&dir.join("vapid.json")).await?;
        let keys = load_jwt_set(&jwt_dir, None, &clock).await?;
        let provider = Self {
            dir,
            policy,
            jwt: ArcSwap::from_pointee(keys),
            data: ArcSwap::from_pointee(data),
            derived: data_secret.is_some(),
            vapid: Arc::new(vapid),
            rotating: Mutex::new(()),
            clock,
        };
        provider.maintain().await?;
        Ok(provider)
    }

    /// The key directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds a new data-key version (fresh AES-256-GCM and blind-index keys) to
    /// `<dir>/data-keys.json`, to become current at `activates_at` (Unix seconds).
    ///
    /// Running servers load it at their next key maintenance (every minute), so the activation
    /// time should leave them that long: until then they only gain the ability to read it. A
    /// pending activation that is already due is folded in first; one still in the future is an
    /// error (one rotation at a time).
    pub async fn add_data_key(dir: &Path, activates_at: i64) -> Result<AddedDataKey, CryptoError> {
        let path = dir.join(DATA_KEYS_FILE);
        let mut file = read_data_keys_file(&path)
            .await?
            .ok_or_else(|| CryptoError::Keys(format!("{} does not exist yet", path.display())))?;
        let now = Timestamp::now().secs();
        if let Some(next) = file.next {
            if next.activates_at > now {
                return Err(CryptoError::Keys(format!(
                    "data key version {} is still pending (activates in {} s)",
                    next.version,
                    next.activates_at - now
                )));
            }
            file.current = next.version;
            file.next = None;
        }
        let version = file
            .keys
            .keys()
            .max()
            .copied()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| CryptoError::Keys("no data key version left (255 used)".into()))?;
        file.keys.insert(version, STANDARD.encode(random_key()));
        file.blind_keys
            .insert(version, STANDARD.encode(random_key()));
        file.next = Some(NextKey {
            version,
            activates_at,
        });
        // Refuse to write a file this provider could not read back.
        data_keys_from_file(&file, &path)?;
        write_data_keys_file(&path, &file).await?;
        tracing::info!(target: "melo::audit", event = "data_key_added", version, activates_at, "added a data key version");
        Ok(AddedDataKey {
            version,
            activates_at,
        })
    }

    /// Re-reads `data-keys.json` when it changed (a key added by another process).
    async fn reload_data_keys(&self) -> Result<(), CryptoError> {
        if self.derived {
            return Ok(());
        }
        let path = self.dir.join(DATA_KEYS_FILE);
        let Some(file) = read_data_keys_file(&path).await? else {
            return Ok(());
        };
        let fresh = data_keys_from_file(&file, &path)?;
        let old = self.data.load();
        let known: Vec<u8> = old.versions().map(|(v, ..)| v).collect();
        let added: Vec<u8> = fresh.versions().map(|(v, ..)| v).collect();
        if known != added || old.next_version() != fresh.next_version() {
            // Never forget a version this process may have written with.
            if let Some(v) = known.iter().find(|v| !added.contains(v)) {
                return Err(CryptoError::Keys(format!(
                    "{} no longer holds data key version {v}; keeping the loaded keys",
                    path.display()
                )));
            }
            tracing::info!(target: "melo::audit", event = "data_keys_reloaded", versions = ?added, "reloaded data keys");
            self.data.store(Arc::new(fresh));
        }
        Ok(())
    }

    /// Re-reads `jwt/`, makes the next key when one is due (unless another node did), and
    /// deletes retired keys.
    async fn refresh_jwt(&self) -> Result<(), CryptoError> {
        let jwt_dir = self.dir.join("jwt");
        let before = self.jwt.load_full();
        let mut set = load_jwt_set(&jwt_dir, Some(before.clone()), &self.clock).await?;
        if let Some(slot) = set.due_slot(self.clock.now(), &self.policy) {
            if let Some(kid) = create_key(&jwt_dir, slot, &self.clock).await? {
                tracing::info!(target: "melo::audit", event = "key_rotated", kid, slot, "made the next JWT signing key");
            }
            // Made here or by another node first: either way it is on disk now.
            set = load_jwt_set(&jwt_dir, Some(Arc::new(set)), &self.clock).await?;
        }
        let now = self.clock.now();
        let delay = secs(self.policy.publish_delay);
        let keep_for = secs(self.policy.token_ttl).saturating_add(600);
        let retired = set.retired(now, delay, keep_for);
        for slot in &retired {
            let Some(k) = set.iter().find(|k| k.key.created_at() == *slot) else {
                continue;
            };
            match tokio::fs::remove_file(jwt_dir.join(key_file_name(*slot))).await {
                Ok(()) => {}
                // Another node deleted it first.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(error = %e, "could not delete retired JWT key file"),
            }
            tracing::info!(target: "melo::audit", event = "key_retired", kid = k.key.kid(), "retired JWT key");
        }
        let kept: Vec<_> = set
            .iter()
            .filter(|k| !retired.contains(&k.key.created_at()))
            .cloned()
            .collect();
        // The newest key is never retired, so `kept` is never empty.
        let set = JwtSet::new(kept).unwrap_or(set);
        for k in set.iter() {
            if !before.iter().any(|b| b.key.kid() == k.key.kid()) {
                tracing::info!(
                    kid = k.key.kid(),
                    slot = k.key.created_at(),
                    "loaded a JWT key"
                );
            }
        }
        for b in before.iter() {
            if !set.iter().any(|k| k.key.kid() == b.key.kid())
                && !retired.contains(&b.key.created_at())
            {
                tracing::info!(
                    kid = b.key.kid(),
                    "dropped a JWT key deleted from the key directory"
                );
            }
        }
        self.jwt.store(Arc::new(set));
        Ok(())
    }
}

const DATA_KEYS_FILE: &str = "data-keys.json";

/// Reads `jwt/` into a key set. With nothing loaded yet (start-up) and no key on disk, makes the
/// first key. A directory without a readable key while keys are loaded is an error: the loaded
/// set stays (an unmounted volume must not replace every key).
async fn load_jwt_set(
    dir: &Path,
    loaded: Option<Arc<JwtSet>>,
    clock: &Clock,
) -> Result<JwtSet, CryptoError> {
    let scan = |loaded: Option<Arc<JwtSet>>| {
        let dir = dir.to_owned();
        async move {
            tokio::task::spawn_blocking(move || jwt_set::scan(&dir, loaded.as_deref()))
                .await
                .map_err(|e| CryptoError::Keys(e.to_string()))?
        }
    };
    let first_start = loaded.is_none();
    if let Some(set) = JwtSet::new(scan(loaded).await?) {
        return Ok(set);
    }
    if !first_start {
        return Err(CryptoError::Keys(format!(
            "{} holds no readable JWT key; keeping the loaded keys",
            dir.display()
        )));
    }
    if let Some(kid) = create_key(dir, clock.now(), clock).await? {
        tracing::info!(target: "melo::audit", event = "key_generated", kid, "made the first JWT signing key");
    }
    JwtSet::new(scan(None).await?)
        .ok_or_else(|| CryptoError::Keys(format!("{} holds no readable JWT key", dir.display())))
}

/// Generates a key for `slot` and publishes it as `jwt/<slot>.pem` unless that file exists.
/// Returns the new key's `kid`, or `None` when another process made the slot's key first.
async fn create_key(dir: &Path, slot: i64, clock: &Clock) -> Result<Option<String>, CryptoError> {
    let path = dir.join(key_file_name(slot));
    if tokio::fs::try_exists(&path).await? {
        return Ok(None);
    }
    let key = tokio::task::spawn_blocking(move || JwtKey::generate(slot))
        .await
        .map_err(|e| CryptoError::Keys(e.to_string()))??;
    // Published now, after the (slow) generation: the publish delay counts from here.
    let published = UNIX_EPOCH + Duration::from_secs(u64::try_from(clock.now()).unwrap_or(0));
    let created = publish_exclusive(&path, key.private_pem().as_bytes(), Some(published)).await?;
    Ok(created.then(|| key.kid().to_owned()))
}

#[async_trait::async_trait]
impl KeyProvider for FileKeyProvider {
    fn signing_key(&self) -> Arc<JwtKey> {
        let delay = secs(self.policy.publish_delay);
        self.jwt.load().signing(self.clock.now(), delay).key.clone()
    }

    fn verifying_keys(&self) -> Vec<Arc<JwtKey>> {
        self.jwt.load().keys()
    }

    fn data_keys(&self) -> Arc<DataKeys> {
        self.data.load_full()
    }

    fn vapid_key(&self) -> Option<Arc<VapidKey>> {
        Some(self.vapid.clone())
    }

    async fn maintain(&self) -> Result<(), CryptoError> {
        let _guard = self.rotating.lock().await;
        // A bad key file must not stop JWT rotation: keep the loaded keys and say so.
        if let Err(e) = self.reload_data_keys().await {
            tracing::error!(error = %e, "data-key file not reloaded; keeping the loaded keys");
        }
        self.refresh_jwt().await
    }
}

async fn create_private_dir(dir: &Path) -> Result<(), CryptoError> {
    tokio::fs::create_dir_all(dir).await?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).await?;
    }
    Ok(())
}

/// Writes `contents` to a new temporary file (0600, synced) beside `path`, named
/// `.<name>.<random>.tmp` so concurrent writers never share one. `mtime` sets its modification
/// time.
fn write_temp(path: &Path, contents: &[u8], mtime: Option<SystemTime>) -> std::io::Result<PathBuf> {
    use std::io::Write;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("key");
    let tmp = path.with_file_name(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    let written = (|| {
        f.write_all(contents)?;
        if let Some(t) = mtime {
            f.set_modified(t)?;
        }
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

/// Flushes a directory entry change to disk (best effort: not every platform can).
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Replaces `path` atomically: readers see the old file or the new one, never a part.
async fn write_private(path: &Path, contents: &[u8]) -> Result<(), CryptoError> {
    let path = path.to_owned();
    let contents = Zeroizing::new(contents.to_vec());
    tokio::task::spawn_blocking(move || -> Result<(), std::io::Error> {
        let tmp = write_temp(&path, &contents, None)?;
        let renamed = std::fs::rename(&tmp, &path);
        if renamed.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        renamed?;
        sync_dir(&path);
        Ok(())
    })
    .await
    .map_err(|e| CryptoError::Keys(e.to_string()))??;
    Ok(())
}

/// Creates `path` atomically and only if it does not exist: the contents go to a temporary file
/// that is then hard-linked to `path`, which fails when `path` exists. Of several processes
/// racing for one name, exactly one gets `true`; the others get `false` and read the winner's
/// file, which is complete by then. The filesystem must support hard links (local filesystems,
/// NFS, CephFS and EFS do).
async fn publish_exclusive(
    path: &Path,
    contents: &[u8],
    mtime: Option<SystemTime>,
) -> Result<bool, CryptoError> {
    let path = path.to_owned();
    let contents = Zeroizing::new(contents.to_vec());
    let created = tokio::task::spawn_blocking(move || -> Result<bool, std::io::Error> {
        let tmp = write_temp(&path, &contents, mtime)?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_dir(&path);
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    })
    .await
    .map_err(|e| CryptoError::Keys(e.to_string()))??;
    Ok(created)
}

async fn read_data_keys_file(path: &Path) -> Result<Option<DataKeysFile>, CryptoError> {
    match tokio::fs::read(path).await {
        Ok(bytes) => {
            let bytes = zeroize::Zeroizing::new(bytes);
            serde_json::from_slice(&bytes).map(Some).map_err(|_| {
                CryptoError::Keys(format!("{} is not a data-key file", path.display()))
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn data_keys_from_file(file: &DataKeysFile, path: &Path) -> Result<DataKeys, CryptoError> {
    let decode = |s: &str| -> Result<[u8; 32], CryptoError> {
        STANDARD
            .decode(s)
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
            .ok_or_else(|| {
                CryptoError::Keys(format!("{}: a key is not 32 base64 bytes", path.display()))
            })
    };
    let mut keys = BTreeMap::new();
    for (v, k) in &file.keys {
        keys.insert(*v, decode(k)?);
    }
    let mut data = DataKeys::new(file.current, keys, decode(&file.blind)?)?;
    for (v, k) in &file.blind_keys {
        data = data.with_blind_key(*v, decode(k)?)?;
    }
    if let Some(next) = file.next {
        data = data.with_next(next.version, next.activates_at)?;
    }
    Ok(data)
}

async fn write_data_keys_file(path: &Path, file: &DataKeysFile) -> Result<(), CryptoError> {
    let json = zeroize::Zeroizing::new(
        serde_json::to_vec_pretty(file).map_err(|e| CryptoError::Keys(e.to_string()))?,
    );
    write_private(path, &json).await
}

async fn load_or_create_data_keys(path: &Path) -> Result<DataKeys, CryptoError> {
    if let Some(file) = read_data_keys_file(path).await? {
        return data_keys_from_file(&file, path);
    }
    let keys = DataKeys::generate();
    let file = DataKeysFile {
        current: keys.stored_current(),
        keys: keys
            .versions()
            .map(|(v, k, _)| (v, STANDARD.encode(k)))
            .collect(),
        blind: STANDARD.encode(keys.blind_key()),
        blind_keys: BTreeMap::new(),
        next: None,
    };
    let json = Zeroizing::new(
        serde_json::to_vec_pretty(&file).map_err(|e| CryptoError::Keys(e.to_string()))?,
    );
    // Nodes starting together on an empty shared directory: one file wins, everyone uses it.
    if !publish_exclusive(path, &json, None).await? {
        let file = read_data_keys_file(path).await?.ok_or_else(|| {
            CryptoError::Keys(format!("{} vanished while being created", path.display()))
        })?;
        return data_keys_from_file(&file, path);
    }
    tracing::info!(target: "melo::audit", event = "data_keys_generated", "generated data keys");
    Ok(keys)
}

async fn read_vapid(path: &Path) -> Result<Option<VapidKey>, CryptoError> {
    match tokio::fs::read(path).await {
        Ok(bytes) => {
            let bytes = Zeroizing::new(bytes);
            let file: VapidFile = serde_json::from_slice(&bytes).map_err(|_| {
                CryptoError::Keys(format!("{} is not a VAPID key file", path.display()))
            })?;
            VapidKey::from_pair(&file.public, &file.private)
                .map(Some)
                .map_err(|e| CryptoError::Keys(format!("{}: {e}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn load_or_create_vapid(path: &Path) -> Result<VapidKey, CryptoError> {
    if let Some(key) = read_vapid(path).await? {
        return Ok(key);
    }
    let key = VapidKey::generate();
    let file = VapidFile {
        public: key.public_base64url(),
        private: key.private_base64url(),
    };
    let json = Zeroizing::new(
        serde_json::to_vec_pretty(&file).map_err(|e| CryptoError::Keys(e.to_string()))?,
    );
    // As with the data keys: of nodes starting together, one pair wins.
    if !publish_exclusive(path, &json, None).await? {
        return read_vapid(path).await?.ok_or_else(|| {
            CryptoError::Keys(format!("{} vanished while being created", path.display()))
        });
    }
    tracing::info!("generated the VAPID key pair");
    Ok(key)
}

#[cfg(test)]
mod tests {
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
}
