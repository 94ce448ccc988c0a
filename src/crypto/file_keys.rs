use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::keys::{DataKeys, JwtKey, KeyPolicy, KeyProvider};
use super::CryptoError;
use crate::model::Timestamp;
use crate::push::VapidKey;

/// Keys kept in a directory, created on first start with mode 0600:
/// `jwt/<unix-seconds>.pem` (PKCS#8 RSA keys, the newest signs) and `data-keys.json`
/// (AES-256-GCM keys by version and the blind-index key).
///
/// [`KeyProvider::maintain`] generates a new signing key when the current one is older than
/// [`KeyPolicy::rotation`] and deletes retired keys once every token they signed has expired
/// (token lifetime + 10 minutes after they stopped signing).
pub struct FileKeyProvider {
    dir: PathBuf,
    policy: KeyPolicy,
    jwt: ArcSwap<Vec<Arc<JwtKey>>>,
    data: Arc<DataKeys>,
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

#[derive(Serialize, Deserialize)]
struct DataKeysFile {
    current: u8,
    keys: BTreeMap<u8, String>,
    blind: String,
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
            None => load_or_create_data_keys(&dir.join("data-keys.json")).await?,
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
            data: Arc::new(data),
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
}

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
        self.data.clone()
    }

    fn vapid_key(&self) -> Option<Arc<VapidKey>> {
        Some(self.vapid.clone())
    }

    async fn maintain(&self) -> Result<(), CryptoError> {
        let _guard = self.rotating.lock().await;
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

async fn load_or_create_data_keys(path: &Path) -> Result<DataKeys, CryptoError> {
    match tokio::fs::read(path).await {
        Ok(bytes) => {
            let file: DataKeysFile = serde_json::from_slice(&bytes).map_err(|_| {
                CryptoError::Keys(format!("{} is not a data-key file", path.display()))
            })?;
            let decode = |s: &str| -> Result<[u8; 32], CryptoError> {
                STANDARD
                    .decode(s)
                    .ok()
                    .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
                    .ok_or_else(|| CryptoError::Keys("data key is not 32 base64 bytes".into()))
            };
            let mut keys = BTreeMap::new();
            for (v, k) in &file.keys {
                keys.insert(*v, decode(k)?);
            }
            DataKeys::new(file.current, keys, decode(&file.blind)?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keys = DataKeys::generate();
            let file = DataKeysFile {
                current: keys.current_version(),
                keys: keys
                    .versions()
                    .map(|(v, k)| (v, STANDARD.encode(k)))
                    .collect(),
                blind: STANDARD.encode(keys.blind_key()),
            };
            let json = zeroize::Zeroizing::new(
                serde_json::to_vec_pretty(&file).map_err(|e| CryptoError::Keys(e.to_string()))?,
            );
            write_private(path, &json).await?;
            tracing::info!(target: "melo::audit", event = "data_keys_generated", "generated data keys");
            Ok(keys)
        }
        Err(e) => Err(e.into()),
    }
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
}
