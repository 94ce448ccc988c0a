use std::sync::Arc;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use super::{CryptoError, KeyProvider};

/// Format byte of sealed values; bumps if the layout ever changes.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 2 + NONCE_LEN;

/// Seals and opens PII at rest and computes blind indexes.
///
/// Layout of a sealed value: `[format = 1][data-key version][96-bit random nonce][ciphertext + tag]`.
/// The AAD is `melo/v1|<table>|<column>|<row>`, so a ciphertext copied into another row or
/// column fails to open.
#[derive(Clone, Debug)]
pub struct Pii {
    keys: Arc<dyn KeyProvider>,
}

impl Pii {
    /// Uses the provider's current data keys (re-read on each call, so rotation applies at once).
    pub fn new(keys: Arc<dyn KeyProvider>) -> Self {
        Self { keys }
    }

    /// Encrypts `plaintext` bound to (table, column, row).
    pub fn seal(
        &self,
        table: &str,
        column: &str,
        row: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let data = self.keys.data_keys();
        let version = data.current_version();
        let key = data
            .key(version)
            .ok_or(CryptoError::UnknownKeyVersion(version))?;
        let cipher =
            Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError::Keys("bad AES key".into()))?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = aad(table, column, row);
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Keys("encryption failed".into()))?;
        let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
        out.push(FORMAT_V1);
        out.push(version);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Seals UTF-8 text.
    pub fn seal_str(
        &self,
        table: &str,
        column: &str,
        row: &str,
        text: &str,
    ) -> Result<Vec<u8>, CryptoError> {
        self.seal(table, column, row, text.as_bytes())
    }

    /// Decrypts a value sealed for (table, column, row).
    pub fn open(
        &self,
        table: &str,
        column: &str,
        row: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < HEADER_LEN + 16 || sealed[0] != FORMAT_V1 {
            return Err(CryptoError::Open);
        }
        let version = sealed[1];
        let data = self.keys.data_keys();
        let key = data
            .key(version)
            .ok_or(CryptoError::UnknownKeyVersion(version))?;
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError::Open)?;
        let aad = aad(table, column, row);
        cipher
            .decrypt(
                Nonce::from_slice(&sealed[2..HEADER_LEN]),
                Payload {
                    msg: &sealed[HEADER_LEN..],
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Open)
    }

    /// Decrypts a value sealed for (table, column, row), or — written before values of this
    /// column were bound to their row — for (table, column, ""). The data-key rotation job
    /// re-seals such legacy values bound to their row.
    pub fn open_bound(
        &self,
        table: &str,
        column: &str,
        row: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.open(table, column, row, sealed)
            .or_else(|_| self.open(table, column, "", sealed))
    }

    /// Decrypts UTF-8 text.
    pub fn open_string(
        &self,
        table: &str,
        column: &str,
        row: &str,
        sealed: &[u8],
    ) -> Result<String, CryptoError> {
        String::from_utf8(self.open(table, column, row, sealed)?).map_err(|_| CryptoError::Open)
    }

    /// Data-key version a sealed value was written with (for the re-encryption job).
    pub fn key_version(sealed: &[u8]) -> Option<u8> {
        (sealed.len() >= 2 && sealed[0] == FORMAT_V1).then(|| sealed[1])
    }

    /// Keyed HMAC-SHA256 blind index of `value` in a `domain` (e.g. `"phone"`), for equality lookups.
    ///
    /// Computed with the current version's blind key: new rows store this one.
    pub fn blind_index(&self, domain: &str, value: &[u8]) -> Vec<u8> {
        hmac_index(self.keys.data_keys().blind_key(), domain, value)
    }

    /// The blind index of `value` under every blind key the key set holds, current first. A
    /// lookup tries each, so rows that a key rotation has not moved yet are still found.
    pub fn blind_indexes(&self, domain: &str, value: &[u8]) -> Vec<Vec<u8>> {
        self.keys
            .data_keys()
            .blind_keys()
            .into_iter()
            .map(|k| hmac_index(k, domain, value))
            .collect()
    }

    /// Short hex blind index, for keys in ephemeral state (e.g. IP-based rate limits).
    pub fn blind_tag(&self, domain: &str, value: &[u8]) -> String {
        self.blind_index(domain, value)[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

fn hmac_index(key: &[u8; 32], domain: &str, value: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts 32-byte keys");
    mac.update(domain.as_bytes());
    mac.update(&[0]);
    mac.update(value);
    mac.finalize().into_bytes().to_vec()
}

fn aad(table: &str, column: &str, row: &str) -> String {
    format!("melo/v1|{table}|{column}|{row}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{DataKeys, JwtKey, StaticKeys};
    use std::sync::OnceLock;

    fn keys() -> Arc<StaticKeys> {
        static JWT: OnceLock<Arc<StaticKeys>> = OnceLock::new();
        JWT.get_or_init(|| {
            Arc::new(StaticKeys::new(
                JwtKey::generate(0).expect("key"),
                DataKeys::generate(),
            ))
        })
        .clone()
    }

    #[test]
    fn round_trip_and_row_binding() {
        let pii = Pii::new(keys());
        let sealed = pii
            .seal_str("users", "phone", "12345678", "+79990000001")
            .expect("seal");
        assert!(!sealed.windows(12).any(|w| w == b"+79990000001"));
        assert_eq!(
            pii.open_string("users", "phone", "12345678", &sealed)
                .expect("open"),
            "+79990000001"
        );
        assert!(
            pii.open("users", "phone", "87654321", &sealed).is_err(),
            "moved to another row"
        );
        assert!(
            pii.open("users", "name", "12345678", &sealed).is_err(),
            "moved to another column"
        );
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(pii.open("users", "phone", "12345678", &tampered).is_err());
        assert!(pii.open("users", "phone", "12345678", b"short").is_err());
        assert_eq!(Pii::key_version(&sealed), Some(1));
    }

    #[test]
    fn nonces_differ_and_blind_index_is_keyed() {
        let a = Pii::new(keys());
        let s1 = a.seal_str("t", "c", "r", "x").expect("seal");
        let s2 = a.seal_str("t", "c", "r", "x").expect("seal");
        assert_ne!(s1, s2);
        assert_eq!(a.blind_index("phone", b"+1"), a.blind_index("phone", b"+1"));
        assert_ne!(a.blind_index("phone", b"+1"), a.blind_index("ip", b"+1"));
        let other = Pii::new(Arc::new(keys().with_data_keys(DataKeys::generate())));
        assert_ne!(
            a.blind_index("phone", b"+1"),
            other.blind_index("phone", b"+1")
        );
    }
}
