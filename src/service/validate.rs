//! Input rules of docs/protocol.md §1.2, §1.5 and §4.2, shared by HTTP and WebSocket paths.

use rsa::pkcs1::der::{Decode, Encode};
use rsa::pkcs8::spki::SubjectPublicKeyInfoRef;

use super::error::FieldError;
use crate::model::{DeviceId, UserId};

/// Collects field errors; `finish` turns them into one 422.
#[derive(Debug, Default)]
pub(crate) struct Checker(Vec<FieldError>);

impl Checker {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn fail(&mut self, field: &str, problem: &str) {
        self.0.push(FieldError::new(field, problem));
    }

    /// Runs a check; on failure records it and returns `None`.
    pub(crate) fn check<T>(&mut self, field: &str, r: Result<T, &'static str>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(p) => {
                self.fail(field, p);
                None
            }
        }
    }

    pub(crate) fn finish(self) -> super::Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(super::Error::Validation(self.0))
        }
    }
}

/// Normalizes a phone: trim; drop spaces, `-`, `(`, `)`; leading `8` → `+7`; prepend `+`;
/// then `^\+[1-9][0-9]{1,14}$`.
pub(crate) fn phone(raw: &str) -> Result<String, &'static str> {
    let mut s: String = raw
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    if let Some(rest) = s.strip_prefix('8') {
        s = format!("+7{rest}");
    }
    if !s.starts_with('+') {
        s.insert(0, '+');
    }
    let digits = &s[1..];
    let ok = (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(s)
    } else {
        Err("must be a phone number in E.164 form")
    }
}

/// Removes every `<…>` tag.
pub(crate) fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find('<') {
        match rest[start..].find('>') {
            Some(end) => {
                out.push_str(&rest[..start]);
                rest = &rest[start + end + 1..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out
}

/// A name or nickname: tags removed, trimmed, 1–50 letters, digits, `_`, space or `-`.
pub(crate) fn display_name(raw: &str) -> Result<String, &'static str> {
    let s = strip_tags(raw).trim().to_owned();
    let n = s.chars().count();
    if n == 0 {
        return Err("must not be empty after removing tags");
    }
    if n > 50 {
        return Err("must be at most 50 characters");
    }
    if !s
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == ' ' || c == '-')
    {
        return Err("may contain only letters, digits, '_', ' ' and '-'");
    }
    Ok(s)
}

/// 8–128 characters.
pub(crate) fn password(raw: &str) -> Result<(), &'static str> {
    let n = raw.chars().count();
    if (8..=128).contains(&n) {
        Ok(())
    } else {
        Err("must be 8 to 128 characters")
    }
}

/// 16 hex characters.
pub(crate) fn device_id(raw: &str) -> Result<DeviceId, &'static str> {
    DeviceId::parse(raw).ok_or("must be 16 hexadecimal characters")
}

/// 0–32 of `[A-Za-z0-9_]`.
pub(crate) fn username(raw: &str) -> Result<(), &'static str> {
    if raw.len() <= 32 && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(())
    } else {
        Err("must be at most 32 characters of A-Z, a-z, 0-9 and '_'")
    }
}

/// 0–500 characters.
pub(crate) fn bio(raw: &str) -> Result<(), &'static str> {
    if raw.chars().count() <= 500 {
        Ok(())
    } else {
        Err("must be at most 500 characters")
    }
}

/// Opaque secret-key backup: 16–65 536 characters.
pub(crate) fn backup_ciphertext(raw: &str) -> Result<(), &'static str> {
    if (16..=65_536).contains(&raw.chars().count()) {
        Ok(())
    } else {
        Err("must be 16 to 65536 characters")
    }
}

/// A uid string.
pub(crate) fn uid(raw: &str) -> Result<UserId, &'static str> {
    raw.parse().map_err(|()| "must be 8 digits")
}

/// The peer of a DM history read: a uid, or `00000000`, the sender of system messages (whose
/// conversation can be read back, never written to).
pub(crate) fn history_peer(raw: &str) -> Result<UserId, &'static str> {
    if raw == SYSTEM_UID {
        return Ok(UserId::SYSTEM);
    }
    uid(raw)
}

/// [`UserId::SYSTEM`] as it is written on the wire.
pub(crate) const SYSTEM_UID: &str = "00000000";

const RSA_ENCRYPTION_OID: &str = "1.2.840.113549.1.1.1";

/// A PEM RSA public key (SPKI `PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY`), 2048–8192 bits,
/// at most 16 KiB. Returns the trimmed PEM.
pub(crate) fn rsa_public_key_pem(raw: &str) -> Result<String, &'static str> {
    const BAD: &str = "must be a PEM RSA public key of 2048 to 8192 bits";
    let pem = raw.trim();
    if pem.is_empty() || pem.len() > 16 * 1024 {
        return Err(BAD);
    }
    let (label, der) = rsa::pkcs8::der::pem::decode_vec(pem.as_bytes()).map_err(|_| BAD)?;
    let pkcs1_der = match label {
        "PUBLIC KEY" => {
            let spki = SubjectPublicKeyInfoRef::from_der(&der).map_err(|_| BAD)?;
            if spki.algorithm.oid.to_string() != RSA_ENCRYPTION_OID {
                return Err(BAD);
            }
            spki.subject_public_key.raw_bytes().to_vec()
        }
        "RSA PUBLIC KEY" => der,
        _ => return Err(BAD),
    };
    let key = rsa::pkcs1::RsaPublicKey::from_der(&pkcs1_der).map_err(|_| BAD)?;
    // Round-trip check guards against trailing garbage being accepted silently.
    if key.to_der().map_err(|_| BAD)?.len() != pkcs1_der.len() {
        return Err(BAD);
    }
    let n = key.modulus.as_bytes();
    let n = &n[n.iter().take_while(|b| **b == 0).count()..];
    let bits = n
        .first()
        .map_or(0, |b| (n.len() - 1) * 8 + (8 - b.leading_zeros() as usize));
    let e = key.public_exponent.as_bytes();
    let e_ok = e.iter().any(|b| *b != 0) && e.last().is_some_and(|b| b & 1 == 1);
    if !(2048..=8192).contains(&bits) || !e_ok {
        return Err(BAD);
    }
    Ok(pem.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        assert_eq!(phone("8 (999) 000-00-04").as_deref(), Ok("+79990000004"));
        assert_eq!(phone(" +79990000001 ").as_deref(), Ok("+79990000001"));
        assert_eq!(phone("79990000001").as_deref(), Ok("+79990000001"));
        assert!(phone("abc").is_err());
        assert!(phone("+0123").is_err());
        assert!(phone("+1").is_err());
        assert!(phone("+1234567890123456").is_err());
        assert!(phone("").is_err());
    }

    #[test]
    fn names() {
        assert_eq!(display_name("<b>Alice</b>").as_deref(), Ok("Alice"));
        assert_eq!(display_name("Анна-Мария_2").as_deref(), Ok("Анна-Мария_2"));
        assert!(display_name("<b></b>").is_err());
        assert!(display_name("bad!char").is_err());
        assert!(display_name(&"x".repeat(51)).is_err());
        assert!(display_name("a < b").is_err());
    }

    #[test]
    fn small_fields() {
        assert!(password("short").is_err());
        assert!(password("12345678").is_ok());
        assert!(password(&"x".repeat(129)).is_err());
        assert!(username("al_1").is_ok() && username("").is_ok());
        assert!(username("a-b").is_err());
        assert!(bio(&"é".repeat(500)).is_ok() && bio(&"é".repeat(501)).is_err());
        assert!(
            backup_ciphertext(&"x".repeat(15)).is_err()
                && backup_ciphertext(&"x".repeat(32)).is_ok()
        );
        assert!(device_id("xyz").is_err());
    }

    #[test]
    fn rsa_keys() {
        use rsa::pkcs1::EncodeRsaPublicKey;
        use rsa::pkcs8::{EncodePublicKey, LineEnding};
        let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048)
            .expect("key")
            .to_public_key();
        let spki = key.to_public_key_pem(LineEnding::LF).expect("pem");
        let pkcs1 = key.to_pkcs1_pem(LineEnding::LF).expect("pem");
        assert!(rsa_public_key_pem(&spki).is_ok());
        assert!(rsa_public_key_pem(&pkcs1).is_ok());
        assert!(rsa_public_key_pem("garbage").is_err());
        let small = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024)
            .expect("key")
            .to_public_key();
        assert!(
            rsa_public_key_pem(&small.to_public_key_pem(LineEnding::LF).expect("pem")).is_err()
        );
        let ec = "-----BEGIN PUBLIC KEY-----\n\
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9\n\
q9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==\n\
-----END PUBLIC KEY-----";
        assert!(rsa_public_key_pem(ec).is_err());
    }
}
