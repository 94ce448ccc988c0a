//! The original server's field encryption, for reading its data: AES-256-GCM with a 96-bit
//! nonce and no AAD, stored as URL-safe base64 (with padding) of `nonce || ciphertext || tag`,
//! under a key given as URL-safe base64 of 32 bytes. Its one-off `migrate_encrypt_data.py`
//! also wrapped some Redis values in Fernet under the same key (sometimes twice); those are
//! opened too.

use aes::cipher::{BlockDecrypt, KeyInit as BlockKeyInit};
use aes_gcm::aead::Aead;
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// URL-safe base64 that accepts the padding or its absence (Python writes it; people trim it).
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The original server's `ENCRYPTION_KEY_STR`, parsed. Its `Debug` shows nothing of it.
pub struct OriginalKey {
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for OriginalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OriginalKey([redacted])")
    }
}

/// The key is not URL-safe base64 of exactly 32 bytes. The message never quotes it.
#[derive(Debug, thiserror::Error)]
#[error("the original server's key must be URL-safe base64 of exactly 32 bytes (its ENCRYPTION_KEY_STR)")]
pub struct BadOriginalKey;

impl OriginalKey {
    /// Parses the URL-safe base64 text of 32 bytes (padding optional, whitespace trimmed).
    pub fn parse(text: &str) -> Result<Self, BadOriginalKey> {
        let bytes = Zeroizing::new(
            URL_SAFE_LENIENT
                .decode(text.trim())
                .map_err(|_| BadOriginalKey)?,
        );
        let mut key = Zeroizing::new([0u8; 32]);
        if bytes.len() != key.len() {
            return Err(BadOriginalKey);
        }
        key.copy_from_slice(&bytes);
        Ok(Self { key })
    }

    /// Decrypts one stored value; `None` when it does not decrypt (as the original treated it:
    /// missing).
    pub fn decrypt(&self, stored: &str) -> Option<Zeroizing<Vec<u8>>> {
        let raw = URL_SAFE_LENIENT.decode(stored.trim()).ok()?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let cipher = Aes256Gcm::new_from_slice(self.key.as_slice()).ok()?;
        cipher
            .decrypt(Nonce::from_slice(&raw[..NONCE_LEN]), &raw[NONCE_LEN..])
            .ok()
            .map(Zeroizing::new)
    }

    /// Decrypts one stored value to text; `None` unless it decrypts to UTF-8.
    pub fn decrypt_text(&self, stored: &str) -> Option<Zeroizing<String>> {
        let plain = self.decrypt(stored)?;
        std::str::from_utf8(&plain)
            .ok()
            .map(|s| Zeroizing::new(s.to_owned()))
    }

    /// Opens a Fernet token made with this key (`migrate_encrypt_data.py`): signing key = the
    /// first 16 bytes, AES-128-CBC key = the last 16; `None` unless the HMAC matches and the
    /// padding is right.
    pub fn fernet_decrypt(&self, token: &str) -> Option<Zeroizing<Vec<u8>>> {
        let raw = URL_SAFE_LENIENT.decode(token.trim()).ok()?;
        // version (1) | timestamp (8) | iv (16) | ciphertext (16·n, n ≥ 1) | hmac (32)
        if raw.len() < 1 + 8 + 16 + 16 + 32 || raw[0] != 0x80 {
            return None;
        }
        let (signed, mac) = raw.split_at(raw.len() - 32);
        let mut check = <Hmac<Sha256> as Mac>::new_from_slice(&self.key[..16]).ok()?;
        check.update(signed);
        check.verify_slice(mac).ok()?;
        let iv = &signed[9..25];
        let body = &signed[25..];
        if body.len() % 16 != 0 {
            return None;
        }
        let cipher = aes::Aes128::new_from_slice(&self.key[16..]).ok()?;
        let mut out = Zeroizing::new(Vec::with_capacity(body.len()));
        let mut prev = [0u8; 16];
        prev.copy_from_slice(iv);
        for chunk in body.chunks_exact(16) {
            let mut block = aes::Block::clone_from_slice(chunk);
            cipher.decrypt_block(&mut block);
            out.extend(block.iter().zip(prev.iter()).map(|(b, p)| b ^ p));
            prev.copy_from_slice(chunk);
        }
        let pad = usize::from(*out.last()?);
        if pad == 0
            || pad > 16
            || out[out.len() - pad..]
                .iter()
                .any(|b| usize::from(*b) != pad)
        {
            return None;
        }
        let keep = out.len() - pad;
        out.truncate(keep);
        Some(out)
    }
}

/// Text stored as Latin-1-decoded bytes (the original's avatars): each character U+0000–U+00FF
/// is one byte; `None` when a character is outside that range.
pub fn latin1_bytes(text: &str) -> Option<Vec<u8>> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm::aead::OsRng;
    use aes_gcm::AeadCore;

    fn key() -> (OriginalKey, [u8; 32]) {
        let raw = [7u8; 32];
        let text = base64::engine::general_purpose::URL_SAFE.encode(raw);
        (OriginalKey::parse(&text).expect("key"), raw)
    }

    fn encrypt(raw: &[u8; 32], plain: &[u8]) -> String {
        let cipher = Aes256Gcm::new_from_slice(raw).expect("key");
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        out.extend(cipher.encrypt(&nonce, plain).expect("encrypt"));
        base64::engine::general_purpose::URL_SAFE.encode(out)
    }

    #[test]
    fn keys_must_be_32_bytes_of_url_safe_base64() {
        assert!(
            OriginalKey::parse(&base64::engine::general_purpose::URL_SAFE.encode([1u8; 31]))
                .is_err()
        );
        assert!(OriginalKey::parse("not base64 at all!").is_err());
        let unpadded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([1u8; 32]);
        assert!(OriginalKey::parse(&unpadded).is_ok());
        let err = OriginalKey::parse("hunter2").expect_err("short");
        assert!(!err.to_string().contains("hunter2"));
        assert_eq!(format!("{:?}", key().0), "OriginalKey([redacted])");
    }

    #[test]
    fn values_decrypt_as_the_original_wrote_them() {
        let (key, raw) = key();
        let stored = encrypt(&raw, "+79990000001".as_bytes());
        assert_eq!(
            key.decrypt_text(&stored).as_deref().map(String::as_str),
            Some("+79990000001")
        );
        let other =
            OriginalKey::parse(&base64::engine::general_purpose::URL_SAFE.encode([8u8; 32]))
                .expect("key");
        assert!(other.decrypt(&stored).is_none(), "another key");
        let mut tampered = base64::engine::general_purpose::URL_SAFE
            .decode(&stored)
            .expect("b64");
        tampered[14] ^= 1;
        let tampered = base64::engine::general_purpose::URL_SAFE.encode(tampered);
        assert!(key.decrypt(&tampered).is_none());
        assert!(key.decrypt("c2hvcnQ=").is_none());
        assert!(key.decrypt("plain chat name").is_none());
    }

    #[test]
    fn fernet_tokens_of_the_spec_open() {
        // The Fernet specification's test vector (github.com/fernet/spec, generate.json).
        let spec = OriginalKey::parse("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=").expect("key");
        let token = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";
        assert_eq!(
            spec.fernet_decrypt(token).as_deref().map(Vec::as_slice),
            Some(&b"hello"[..])
        );
        let mut bad = token.as_bytes().to_vec();
        bad[60] = if bad[60] == b'A' { b'B' } else { b'A' };
        assert!(spec
            .fernet_decrypt(std::str::from_utf8(&bad).expect("ascii"))
            .is_none());
        assert!(key().0.fernet_decrypt(token).is_none(), "another key");
    }

    #[test]
    fn latin1_round_trip() {
        let bytes: Vec<u8> = (0..=255).collect();
        let text: String = bytes.iter().map(|b| char::from(*b)).collect();
        assert_eq!(latin1_bytes(&text), Some(bytes));
        assert_eq!(latin1_bytes("€"), None);
    }
}
