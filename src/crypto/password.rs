//! bcrypt hashing on the blocking pool, never on the async threads.
//!
//! bcrypt reads only the first 72 bytes of its input, but every character of a Melo password
//! (up to 128) is significant: the password is first reduced to base64(SHA-256(password)),
//! 44 ASCII bytes without NULs, and that is what bcrypt hashes.
//!
//! Hashes imported from the original server (`melo import-original`) are bcrypt of the password
//! itself; they are stored behind [`ORIGINAL_HASH_PREFIX`], verified the original's way, and
//! replaced by a hash of Melo's form at the next successful login ([`needs_rehash`]).

use base64::Engine;
use sha2::{Digest, Sha256};

use std::sync::Arc;

use tokio::sync::OnceCell;

use super::CryptoError;

/// Marks a stored hash as the original server's: bcrypt of the password as typed (bcrypt reads
/// its first 72 bytes), not of Melo's SHA-256 reduction.
pub const ORIGINAL_HASH_PREFIX: &str = "original:";

/// True for a stored hash that a successful login should replace with one of Melo's form.
pub fn needs_rehash(hash: &str) -> bool {
    hash.starts_with(ORIGINAL_HASH_PREFIX)
}

/// Hashes and verifies passwords at a fixed bcrypt cost.
#[derive(Clone, Debug)]
pub struct PasswordHasher {
    cost: u32,
    /// Bounds concurrent bcrypt work to the core count, so a login burst cannot occupy every
    /// blocking thread (RSA signing shares that pool).
    permits: Arc<tokio::sync::Semaphore>,
    /// A hash of a random password, verified against when the account is unknown so that a
    /// failed login takes the same time whether or not the account exists.
    dummy: Arc<OnceCell<String>>,
}

impl PasswordHasher {
    /// A hasher at `cost` (4–31).
    pub fn new(cost: u32) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            cost,
            permits: Arc::new(tokio::sync::Semaphore::new(cores)),
            dummy: Arc::new(OnceCell::new()),
        }
    }

    async fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, CryptoError> {
        tokio::time::timeout(QUEUE_WAIT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| CryptoError::Busy)?
            .map_err(|_| CryptoError::Busy)
    }

    /// Hashes a password.
    pub async fn hash(&self, password: &str) -> Result<String, CryptoError> {
        let _permit = self.permit().await?;
        let password = prehash(password);
        let cost = self.cost;
        tokio::task::spawn_blocking(move || bcrypt::hash(password.as_bytes(), cost))
            .await
            .map_err(|e| CryptoError::Keys(e.to_string()))?
            .map_err(|e| CryptoError::Keys(e.to_string()))
    }

    /// True when `password` matches `hash`; a malformed hash is a mismatch. `Busy` when the
    /// hashing capacity stays saturated for too long.
    pub async fn verify(&self, password: &str, hash: &str) -> Result<bool, CryptoError> {
        let _permit = self.permit().await?;
        let (input, hash) = match hash.strip_prefix(ORIGINAL_HASH_PREFIX) {
            Some(original) => (
                zeroize::Zeroizing::new(password.to_owned()),
                original.to_owned(),
            ),
            None => (prehash(password), hash.to_owned()),
        };
        Ok(tokio::task::spawn_blocking(move || {
            bcrypt::verify(input.as_bytes(), &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false))
    }

    /// Spends the time of one verification without an account (timing equalization).
    pub async fn verify_dummy(&self, password: &str) {
        let dummy = self
            .dummy
            .get_or_try_init(|| async { self.hash("melo-dummy-password-never-matches").await })
            .await;
        if let Ok(hash) = dummy {
            let _ = self.verify(password, hash).await;
        }
    }
}

/// Longest wait for a hashing slot before answering "unavailable".
const QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn prehash(password: &str) -> zeroize::Zeroizing<String> {
    let digest = Sha256::digest(password.as_bytes());
    zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let h = PasswordHasher::new(4);
        let hash = h.hash("Passw0rd-A1").await.expect("hash");
        assert!(h.verify("Passw0rd-A1", &hash).await.expect("verify"));
        assert!(!h.verify("Passw0rd-A2", &hash).await.expect("verify"));
        assert!(!h.verify("x", "not a hash").await.expect("verify"));
        h.verify_dummy("x").await;
        let long_a = format!("{}a", "x".repeat(100));
        let long_b = format!("{}b", "x".repeat(100));
        let hash = h.hash(&long_a).await.expect("hash");
        assert!(
            !h.verify(&long_b, &hash).await.expect("verify"),
            "characters past 72 bytes count"
        );
    }

    #[tokio::test]
    async fn original_hashes_verify_the_originals_way() {
        let h = PasswordHasher::new(4);
        let raw = bcrypt::hash("original-pw-1", 4).expect("bcrypt");
        assert!(
            !h.verify("original-pw-1", &raw).await.expect("verify"),
            "without the prefix a hash is of Melo's form"
        );
        let stored = format!("{ORIGINAL_HASH_PREFIX}{raw}");
        assert!(needs_rehash(&stored));
        assert!(h.verify("original-pw-1", &stored).await.expect("verify"));
        assert!(!h.verify("original-pw-2", &stored).await.expect("verify"));
        let melo = h.hash("original-pw-1").await.expect("hash");
        assert!(!needs_rehash(&melo));
        assert!(!h
            .verify("original-pw-1", &format!("{ORIGINAL_HASH_PREFIX}{melo}"))
            .await
            .expect("verify"));
    }
}
