//! The key part of a backup: copying a key directory, and loading a copy (without creating,
//! rotating or deleting anything) to check it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::files::{self, create_private_dir, modified_secs};
use super::keycheck::fingerprints;
use super::manifest::{
    is_jwt_file_name, DataKeysSource, FileEntry, KeysEntry, DATA_KEYS_FILE, JWT_DIR, KEYS_DIR,
    VAPID_FILE,
};
use super::BackupError;
use crate::config::Secret;
use crate::crypto::{
    parse_jwt_key, read_data_keys, read_vapid_key, DataKeys, JwtKey, KeyProvider, StaticKeys,
};

/// Copies the key files of `from` into the new directory `to` (`<backup>/keys`): the data keys
/// (unless they are derived from `secret`), the VAPID pair and every JWT key, each 0600, JWT
/// keys with their modification time. Returns the manifest entries, by backup path.
pub(crate) fn copy(
    from: &Path,
    to: &Path,
    secret: Option<&Secret>,
) -> Result<BTreeMap<String, FileEntry>, BackupError> {
    if !from.is_dir() {
        return Err(BackupError::Invalid(format!(
            "the key directory {} does not exist",
            from.display()
        )));
    }
    create_private_dir(to)?;
    create_private_dir(&to.join(JWT_DIR))?;
    let mut out = BTreeMap::new();
    if secret.is_none() {
        let src = from.join(DATA_KEYS_FILE);
        if !src.is_file() {
            return Err(BackupError::Invalid(format!(
                "{} does not exist: without the data keys the sealed data cannot be read (set \
                 ENCRYPTION_KEY_STR if the server derives its keys from it)",
                src.display()
            )));
        }
        let entry = files::copy_new(&src, &to.join(DATA_KEYS_FILE))?;
        out.insert(format!("{KEYS_DIR}/{DATA_KEYS_FILE}"), entry);
    }
    let vapid = from.join(VAPID_FILE);
    if vapid.is_file() {
        let entry = files::copy_new(&vapid, &to.join(VAPID_FILE))?;
        out.insert(format!("{KEYS_DIR}/{VAPID_FILE}"), entry);
    }
    let jwt_dir = from.join(JWT_DIR);
    let listing = std::fs::read_dir(&jwt_dir).map_err(BackupError::io(&jwt_dir))?;
    for entry in listing {
        let entry = entry.map_err(BackupError::io(&jwt_dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_jwt_file_name(&name) {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(JWT_DIR).join(&name));
        let modified = match modified_secs(&src) {
            Ok(m) => m,
            // Retired (deleted) by a running server since the listing.
            Err(BackupError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        let mut copied = match files::copy_new(&src, &dst) {
            Ok(c) => c,
            Err(BackupError::Io { source, path })
                if source.kind() == std::io::ErrorKind::NotFound && path == src =>
            {
                files::remove_all(&dst);
                continue;
            }
            Err(e) => return Err(e),
        };
        files::set_modified(&dst, modified)?;
        copied.modified = Some(modified);
        out.insert(format!("{KEYS_DIR}/{JWT_DIR}/{name}"), copied);
    }
    files::sync_dir(&to.join(JWT_DIR));
    files::sync_dir(to);
    Ok(out)
}

/// A key directory loaded for checking.
pub(crate) struct Loaded {
    /// The data keys (and a JWT key of the directory) as a provider, for [`crate::crypto::Pii`].
    pub(crate) provider: Arc<dyn KeyProvider>,
    /// What the manifest records about them.
    pub(crate) entry: KeysEntry,
}

/// Loads the key directory `dir` (a backup's `keys/`): the data keys from `data-keys.json`, or
/// derived from `secret` for [`DataKeysSource::Derived`]; every JWT key and the VAPID pair must
/// parse, and one JWT key at least must be there.
pub(crate) async fn load(
    dir: &Path,
    source: DataKeysSource,
    secret: Option<&Secret>,
) -> Result<Loaded, BackupError> {
    let data = match (source, secret) {
        (DataKeysSource::File, _) => read_data_keys(dir).await?.ok_or_else(|| {
            BackupError::Invalid(format!("{KEYS_DIR}/{DATA_KEYS_FILE} is missing"))
        })?,
        (DataKeysSource::Derived, Some(s)) => DataKeys::derive_from_secret(s.expose()),
        (DataKeysSource::Derived, None) => {
            return Err(BackupError::KeyCheck(
                "the backup's data keys are derived from ENCRYPTION_KEY_STR: set it".into(),
            ))
        }
    };
    let vapid = read_vapid_key(dir).await?;
    let jwt = {
        let dir = dir.join(JWT_DIR);
        super::blocking(move || read_jwt_keys(&dir)).await?
    };
    let jwt_keys = jwt.len();
    let Some(signing) = jwt.into_iter().next() else {
        return Err(BackupError::Invalid(format!(
            "{KEYS_DIR}/{JWT_DIR} holds no JWT key"
        )));
    };
    let entry = KeysEntry {
        data_keys: source,
        versions: data.versions().map(|(v, ..)| v).collect(),
        current: data.stored_current(),
        pending: data.next_version(),
        fingerprints: fingerprints(&data),
        jwt_keys,
        vapid_public_key: vapid.as_ref().map(|v| v.public_base64url()),
    };
    Ok(Loaded {
        provider: Arc::new(StaticKeys::new(signing, data)),
        entry,
    })
}

/// Parses every `<slot>.pem` of `dir`, oldest first; any other file is refused.
fn read_jwt_keys(dir: &Path) -> Result<Vec<JwtKey>, BackupError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(BackupError::io(dir))? {
        let name = entry
            .map_err(BackupError::io(dir))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if !is_jwt_file_name(&name) {
            return Err(BackupError::Invalid(format!(
                "{KEYS_DIR}/{JWT_DIR}/{name} is not a JWT key file"
            )));
        }
        names.push(name);
    }
    names.sort_by_key(|n| n.trim_end_matches(".pem").parse::<i64>().unwrap_or(0));
    names
        .iter()
        .map(|name| {
            let path = dir.join(name);
            let pem = zeroize::Zeroizing::new(
                std::fs::read_to_string(&path).map_err(BackupError::io(&path))?,
            );
            parse_jwt_key(name, &pem).map_err(BackupError::from)
        })
        .collect()
}
