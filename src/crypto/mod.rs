//! Keys, PII sealing, blind indexes, JWT and passwords.
//!
//! - [`KeyProvider`]: the JWT signing key set and the data keys. [`FileKeyProvider`] generates and
//!   persists them (0600) and rotates the signing key; [`StaticKeys`] keeps them in memory.
//! - [`Pii`]: AES-256-GCM sealing with a versioned header and AAD = table/column/row, plus
//!   HMAC-SHA256 blind indexes under a separate key.
//! - [`jwt`]: RS256 tokens with `kid`, verified against every live key.
//! - [`password`]: bcrypt on the blocking pool.

mod file_keys;
pub mod jwt;
mod keys;
pub mod password;
mod pii;

#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub(crate) use file_keys::{parse_jwt_key, read_data_keys, read_vapid_key};
pub use file_keys::{AddedDataKey, FileKeyProvider};
pub use keys::{DataKeys, JwtKey, KeyPolicy, KeyProvider, StaticKeys};
pub use pii::Pii;

/// Errors of key handling and sealing. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// A sealed value could not be opened (wrong key, tampered, moved between rows).
    #[error("sealed value could not be opened")]
    Open,
    /// A sealed value names a data-key version this provider does not have.
    #[error("unknown data key version {0}")]
    UnknownKeyVersion(u8),
    /// Key generation, parsing or persistence failed.
    #[error("key material: {0}")]
    Keys(String),
    /// Password hashing capacity stayed saturated.
    #[error("password hashing is saturated")]
    Busy,
    /// Reading or writing key files failed.
    #[error("key storage: {0}")]
    Io(#[from] std::io::Error),
}
