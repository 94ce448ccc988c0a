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
#[cfg(any(feature = "sqlite", feature = "mysql"))]
mod read_only;

use jwt_set::{key_file_name, secs, JwtSet};
#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub(crate) use read_only::{parse_jwt_key, read_data_keys, read_vapid_key};

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
///   (`melo rotate-keys --new-key`) reaches a running server before its activation
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
mod tests;
