use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::keys::{random_key, DataKeys, JwtKey, KeyPolicy, KeyProvider};
use super::CryptoError;
use crate::model::Timestamp;
use crate::push::VapidKey;

/// Keys kept in a directory, created on first start with mode 0600:
/// `jwt/<unix-seconds>.pem` (PKCS#8 RSA keys, the newest signs) and `data-keys.json`
/// (AES-256-GCM keys by version and the blind-index key).
///
/// [`KeyProvider::maintain`] generates a new signing key when the current one is older than
/// [`KeyPolicy::rotation`] and deletes retired keys once every token they signed has expired
/// (token lifetime + 10 minutes after they stopped signing). It also re-reads `data-keys.json`,
/// so a data key added by [`FileKeyProvider::add_data_key`] (the example's `rotate-keys
/// --new-key`) reaches a running server before its activation time.
pub struct FileKeyProvider {
    dir: PathBuf,
    policy: KeyPolicy,
    jwt: ArcSwap<Vec<Arc<JwtKey>>>,
    data: ArcSwap<DataKeys>,
    /// Data keys come from `ENCRYPTION_KEY_STR`, not from `data-keys.json`.
    derived: bool,
    vapid: Arc<VapidKey>,
    rotating: Mutex<()>,
}

impl fmt::Debug for FileKeyProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileKeyProvider")
            .field("dir", &self.dir)
            .field("jwt_keys", &self.jwt.load().len())
            .finish_non_exhaustive()
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
        let dir = dir.into();
        let jwt_dir = dir.join("jwt");
        create_private_dir(&dir).await?;
        create_private_dir(&jwt_dir).await?;
        let data = match data_secret {
            Some(s) => DataKeys::derive_from_secret(s),
            None => load_or_create_data_keys(&dir.join(DATA_KEYS_FILE)).await?,
        };
        let vapid = load_or_create_vapid(&dir.join("vapid.json")).await?;
        let mut keys = load_jwt_keys(&jwt_dir).await?;
        if keys.is_empty() {
            keys.push(generate_and_store(&jwt_dir).await?);
        }
        let provider = Self {
            dir,
            policy,
            jwt: ArcSwap::from_pointee(keys),
            data: ArcSwap::from_pointee(data),
            derived: data_secret.is_some(),
            vapid: Arc::new(vapid),
            rotating: Mutex::new(()),
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
}

const DATA_KEYS_FILE: &str = "data-keys.json";

#[async_trait::async_trait]
impl KeyProvider for FileKeyProvider {
    fn signing_key(&self) -> Arc<JwtKey> {
        // Keys are sorted oldest first; `open` guarantees at least one.
        self.jwt
            .load()
            .last()
            .cloned()
            .expect("FileKeyProvider always holds a key")
    }

    fn verifying_keys(&self) -> Vec<Arc<JwtKey>> {
        self.jwt.load().as_ref().clone()
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
        let now = Timestamp::now().secs();
        let jwt_dir = self.dir.join("jwt");
        let mut keys = self.jwt.load().as_ref().clone();
        let newest = keys.last().map(|k| k.created_at()).unwrap_or(i64::MIN);
        let rotation = self.policy.rotation.as_secs() as i64;
        if now.saturating_sub(newest) >= rotation {
            let key = generate_and_store(&jwt_dir).await?;
            tracing::info!(target: "melo::audit", event = "key_rotated", kid = key.kid(), "rotated JWT signing key");
            keys.push(key);
        }
        // A key retires when its successor starts signing; it verifies for ttl + 10 min more.
        let keep_for = self.policy.token_ttl.as_secs() as i64 + 600;
        let mut kept = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            let retired_at = keys.get(i + 1).map(|next| next.created_at());
            match retired_at {
                Some(at) if now > at.saturating_add(keep_for) => {
                    let path = jwt_dir.join(format!("{}.pem", key.created_at()));
                    if let Err(e) = tokio::fs::remove_file(&path).await {
                        tracing::warn!(error = %e, "could not delete retired JWT key file");
                    }
                    tracing::info!(target: "melo::audit", event = "key_retired", kid = key.kid(), "retired JWT key");
                }
                _ => kept.push(key.clone()),
            }
        }
        self.jwt.store(Arc::new(kept));
        Ok(())
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

async fn write_private(path: &Path, contents: &[u8]) -> Result<(), CryptoError> {
    let path = path.to_owned();
    let contents = contents.to_vec();
    tokio::task::spawn_blocking(move || -> Result<(), std::io::Error> {
        use std::io::Write;
        let tmp = path.with_extension("tmp");
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(&contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })
    .await
    .map_err(|e| CryptoError::Keys(e.to_string()))??;
    Ok(())
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
    write_data_keys_file(path, &file).await?;
    tracing::info!(target: "melo::audit", event = "data_keys_generated", "generated data keys");
    Ok(keys)
}

async fn load_or_create_vapid(path: &Path) -> Result<VapidKey, CryptoError> {
    match tokio::fs::read(path).await {
        Ok(bytes) => {
            let file: VapidFile = serde_json::from_slice(&bytes).map_err(|_| {
                CryptoError::Keys(format!("{} is not a VAPID key file", path.display()))
            })?;
            VapidKey::from_pair(&file.public, &file.private)
                .map_err(|e| CryptoError::Keys(format!("{}: {e}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = VapidKey::generate();
            let file = VapidFile {
                public: key.public_base64url(),
                private: key.private_base64url(),
            };
            let json = zeroize::Zeroizing::new(
                serde_json::to_vec_pretty(&file).map_err(|e| CryptoError::Keys(e.to_string()))?,
            );
            write_private(path, &json).await?;
            tracing::info!("generated the VAPID key pair");
            Ok(key)
        }
        Err(e) => Err(e.into()),
    }
}

async fn load_jwt_keys(dir: &Path) -> Result<Vec<Arc<JwtKey>>, CryptoError> {
    let mut entries = tokio::fs::read_dir(dir).await?;
    let mut found = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".pem")) else {
            continue;
        };
        let Ok(created) = stem.parse::<i64>() else {
            continue;
        };
        let pem = zeroize::Zeroizing::new(tokio::fs::read_to_string(entry.path()).await?);
        found.push(Arc::new(JwtKey::from_pkcs8_pem(&pem, created)?));
    }
    found.sort_by_key(|k| k.created_at());
    Ok(found)
}

async fn generate_and_store(dir: &Path) -> Result<Arc<JwtKey>, CryptoError> {
    let now = Timestamp::now().secs();
    let key = tokio::task::spawn_blocking(move || JwtKey::generate(now))
        .await
        .map_err(|e| CryptoError::Keys(e.to_string()))??;
    write_private(
        &dir.join(format!("{now}.pem")),
        key.private_pem().as_bytes(),
    )
    .await?;
    Ok(Arc::new(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
    async fn rotates_when_due_and_keeps_old_key_verifying() {
        let dir = tempfile::tempdir().expect("tempdir");
        let policy = KeyPolicy {
            rotation: Duration::from_secs(3600),
            token_ttl: Duration::from_secs(60),
        };
        let p = FileKeyProvider::open(dir.path(), policy, None)
            .await
            .expect("open");
        let first = p.signing_key().kid().to_owned();
        // Age the key file: rename it to an old timestamp and reopen.
        let jwt_dir = dir.path().join("jwt");
        let old = std::fs::read_dir(&jwt_dir)
            .expect("dir")
            .next()
            .expect("one")
            .expect("entry")
            .path();
        let aged = Timestamp::now().secs() - 7200;
        std::fs::rename(&old, jwt_dir.join(format!("{aged}.pem"))).expect("rename");
        let p = FileKeyProvider::open(dir.path(), policy, None)
            .await
            .expect("reopen");
        assert_ne!(
            p.signing_key().kid(),
            first,
            "a due key is rotated on start"
        );
        let kids: Vec<_> = p
            .verifying_keys()
            .iter()
            .map(|k| k.kid().to_owned())
            .collect();
        assert!(
            kids.contains(&first),
            "the retired key still verifies within ttl + 10 min"
        );
        assert_eq!(kids.len(), 2);
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

    #[tokio::test]
    async fn retired_key_leaves_the_set_after_ttl_plus_ten_minutes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let jwt_dir = dir.path().join("jwt");
        create_private_dir(dir.path()).await.expect("dir");
        create_private_dir(&jwt_dir).await.expect("jwt dir");
        let now = Timestamp::now().secs();
        // The first key signed until its successor started 2000 s ago; tokens live 60 s, so
        // the first key stopped verifying 2000 - 660 s ago.
        let mut kids = Vec::new();
        for age in [5000, 2000] {
            let fresh = generate_and_store(&jwt_dir).await.expect("key");
            kids.push(fresh.kid().to_owned());
            let created = fresh.created_at();
            std::fs::rename(
                jwt_dir.join(format!("{created}.pem")),
                jwt_dir.join(format!("{}.pem", now - age)),
            )
            .expect("age");
        }
        let policy = KeyPolicy {
            rotation: Duration::from_secs(3600),
            token_ttl: Duration::from_secs(60),
        };
        let p = FileKeyProvider::open(dir.path(), policy, None)
            .await
            .expect("open");
        let live: Vec<_> = p
            .verifying_keys()
            .iter()
            .map(|k| k.kid().to_owned())
            .collect();
        assert_eq!(live, vec![kids[1].clone()], "only the successor is live");
        assert_eq!(p.signing_key().kid(), kids[1]);
        assert!(
            !jwt_dir.join(format!("{}.pem", now - 5000)).exists(),
            "file deleted"
        );
    }
}
