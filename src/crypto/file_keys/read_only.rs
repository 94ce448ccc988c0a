//! Reading a key directory without creating, rotating or deleting anything: for backups, which
//! check the keys they copy (and the keys of a backup before it is restored) with the same
//! parsers the provider uses.

use std::path::Path;

use super::super::keys::{DataKeys, JwtKey};
use super::super::CryptoError;
use super::{data_keys_from_file, read_data_keys_file, read_vapid, DATA_KEYS_FILE};
use crate::push::VapidKey;

/// `<dir>/data-keys.json` parsed, or `None` when the file does not exist.
pub(crate) async fn read_data_keys(dir: &Path) -> Result<Option<DataKeys>, CryptoError> {
    let path = dir.join(DATA_KEYS_FILE);
    match read_data_keys_file(&path).await? {
        Some(file) => data_keys_from_file(&file, &path).map(Some),
        None => Ok(None),
    }
}

/// `<dir>/vapid.json` parsed, or `None` when the file does not exist.
pub(crate) async fn read_vapid_key(dir: &Path) -> Result<Option<VapidKey>, CryptoError> {
    read_vapid(&dir.join("vapid.json")).await
}

/// A JWT key file (`jwt/<slot>.pem`) parsed; its slot comes from the name.
pub(crate) fn parse_jwt_key(name: &str, pem: &str) -> Result<JwtKey, CryptoError> {
    let slot = name
        .strip_suffix(".pem")
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| CryptoError::Keys(format!("{name} is not a JWT key file name")))?;
    JwtKey::from_pkcs8_pem(pem, slot)
}
