//! VAPID application-server keys (RFC 8292).
//!
//! A [`VapidKey`] is a P-256 key pair. Its public half (base64url of the 65-byte uncompressed
//! point) is what browsers pass as `applicationServerKey` when subscribing and what the server
//! serves at `GET /vapid_public_key`; its private half signs the short-lived ES256 JWT that goes
//! into every push request's `Authorization: vapid t=…, k=…` header.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::{PublicKey, SecretKey};

/// Lifetime of a VAPID JWT: 12 hours (RFC 8292 caps it at 24).
pub(crate) const JWT_LIFETIME_SECS: u64 = 12 * 60 * 60;

/// Base64url decoding that accepts input with or without `=` padding.
const B64URL_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes base64url, padded or not.
pub(crate) fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    B64URL_LENIENT.decode(s.trim()).ok()
}

/// Encodes base64url without padding.
pub(crate) fn b64url_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Errors of VAPID key handling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VapidError {
    /// The private key is not base64url of a 32-byte non-zero P-256 scalar.
    #[error("VAPID private key must be base64url of a 32-byte P-256 scalar")]
    InvalidPrivateKey,
    /// The public key is not base64url of a 65-byte uncompressed P-256 point.
    #[error("VAPID public key must be base64url of a 65-byte uncompressed P-256 point")]
    InvalidPublicKey,
    /// The configured public key is not the one of the configured private key.
    #[error("VAPID public key does not match the private key")]
    KeyMismatch,
    /// The push endpoint is not an absolute `http(s)://` URI (the URI itself is never included:
    /// endpoints identify a device).
    #[error("push endpoint is not an absolute http(s) URI")]
    InvalidEndpoint,
}

/// A VAPID key pair (P-256). `Debug` shows only the public key.
#[derive(Clone)]
pub struct VapidKey {
    secret: SecretKey,
    public: [u8; 65],
}

impl VapidKey {
    /// A fresh random key pair.
    pub fn generate() -> Self {
        Self::from_secret(SecretKey::random(&mut rand::rngs::OsRng))
    }

    /// Loads the private key: base64url (padding optional) of the 32-byte big-endian scalar.
    pub fn from_private_base64url(private: &str) -> Result<Self, VapidError> {
        let bytes = b64url_decode(private).ok_or(VapidError::InvalidPrivateKey)?;
        if bytes.len() != 32 {
            return Err(VapidError::InvalidPrivateKey);
        }
        let secret = SecretKey::from_slice(&bytes).map_err(|_| VapidError::InvalidPrivateKey)?;
        Ok(Self::from_secret(secret))
    }

    /// Loads a configured pair, checking that `public` (base64url of the uncompressed point,
    /// padding optional) belongs to `private`.
    pub fn from_pair(public: &str, private: &str) -> Result<Self, VapidError> {
        let key = Self::from_private_base64url(private)?;
        let given = b64url_decode(public).ok_or(VapidError::InvalidPublicKey)?;
        if given.len() != 65 || PublicKey::from_sec1_bytes(&given).is_err() {
            return Err(VapidError::InvalidPublicKey);
        }
        if given.as_slice() != key.public.as_slice() {
            return Err(VapidError::KeyMismatch);
        }
        Ok(key)
    }

    fn from_secret(secret: SecretKey) -> Self {
        let point = secret.public_key().to_encoded_point(false);
        let mut public = [0u8; 65];
        // An uncompressed P-256 point is always 65 bytes.
        public.copy_from_slice(point.as_bytes());
        Self { secret, public }
    }

    /// The private scalar, base64url without padding (for writing a generated key to config).
    pub fn private_base64url(&self) -> String {
        b64url_encode(&self.secret.to_bytes())
    }

    /// The public key, base64url without padding of the 65-byte uncompressed point: the
    /// `applicationServerKey` browsers subscribe with.
    pub fn public_base64url(&self) -> String {
        b64url_encode(&self.public)
    }

    /// The 65-byte uncompressed public point.
    pub fn public_bytes(&self) -> [u8; 65] {
        self.public
    }

    /// The `Authorization` header value for a push to `endpoint` (RFC 8292 §3):
    /// `vapid t=<JWT>, k=<public key>`, the JWT (ES256) claiming `aud` = the endpoint's origin,
    /// `exp` = now + 12 h and `sub` = `subject` (e.g. `mailto:admin@example.org`).
    pub fn authorization(&self, endpoint: &str, subject: &str) -> Result<String, VapidError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.authorization_at(endpoint, subject, now)
    }

    /// [`Self::authorization`] at a given Unix time.
    pub(crate) fn authorization_at(
        &self,
        endpoint: &str,
        subject: &str,
        now_unix: u64,
    ) -> Result<String, VapidError> {
        let aud = endpoint_origin(endpoint)?;
        let header = b64url_encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({
            "aud": aud,
            "exp": now_unix + JWT_LIFETIME_SECS,
            "sub": subject,
        });
        let claims = b64url_encode(claims.to_string().as_bytes());
        let signing_input = format!("{header}.{claims}");
        let signature: Signature = SigningKey::from(&self.secret).sign(signing_input.as_bytes());
        let jwt = format!("{signing_input}.{}", b64url_encode(&signature.to_bytes()));
        Ok(format!("vapid t={jwt}, k={}", self.public_base64url()))
    }
}

impl fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VapidKey")
            .field("public", &self.public_base64url())
            .finish_non_exhaustive()
    }
}

/// The origin (`scheme://host[:port]`, default port omitted) of an absolute `http(s)` URI: the
/// VAPID `aud` claim.
pub(crate) fn endpoint_origin(endpoint: &str) -> Result<String, VapidError> {
    let uri: http::Uri = endpoint.parse().map_err(|_| VapidError::InvalidEndpoint)?;
    let scheme = uri
        .scheme_str()
        .ok_or(VapidError::InvalidEndpoint)?
        .to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return Err(VapidError::InvalidEndpoint),
    };
    let authority = uri.authority().ok_or(VapidError::InvalidEndpoint)?;
    let host = authority.host().to_ascii_lowercase();
    if host.is_empty() {
        return Err(VapidError::InvalidEndpoint);
    }
    Ok(match authority.port_u16() {
        Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier as _;
    use p256::ecdsa::VerifyingKey;

    #[test]
    fn private_key_round_trips_padded_or_not() {
        let key = VapidKey::generate();
        let private = key.private_base64url();
        assert_eq!(private.len(), 43);
        let again = VapidKey::from_private_base64url(&private).expect("load");
        assert_eq!(again.public_base64url(), key.public_base64url());
        let padded = format!("{private}=");
        let again = VapidKey::from_private_base64url(&padded).expect("padded");
        assert_eq!(again.public_base64url(), key.public_base64url());
        assert_eq!(key.public_base64url().len(), 87);
        assert_eq!(key.public_bytes()[0], 4);
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(
            VapidKey::from_private_base64url("not base64!").expect_err("must fail"),
            VapidError::InvalidPrivateKey
        );
        assert_eq!(
            VapidKey::from_private_base64url(&b64url_encode(&[1u8; 31])).expect_err("must fail"),
            VapidError::InvalidPrivateKey
        );
        assert_eq!(
            VapidKey::from_private_base64url(&b64url_encode(&[0u8; 32])).expect_err("must fail"),
            VapidError::InvalidPrivateKey
        );
        let a = VapidKey::generate();
        let b = VapidKey::generate();
        let ok = VapidKey::from_pair(&a.public_base64url(), &a.private_base64url()).expect("pair");
        assert_eq!(ok.public_base64url(), a.public_base64url());
        assert_eq!(
            VapidKey::from_pair(&b.public_base64url(), &a.private_base64url())
                .expect_err("must fail"),
            VapidError::KeyMismatch
        );
        assert_eq!(
            VapidKey::from_pair("AAAA", &a.private_base64url()).expect_err("must fail"),
            VapidError::InvalidPublicKey
        );
    }

    #[test]
    fn debug_hides_the_private_key() {
        let key = VapidKey::generate();
        let shown = format!("{key:?}");
        assert!(shown.contains(&key.public_base64url()));
        assert!(!shown.contains(&key.private_base64url()));
    }

    #[test]
    fn origins() {
        for (endpoint, origin) in [
            (
                "https://fcm.googleapis.com/fcm/send/abc",
                "https://fcm.googleapis.com",
            ),
            ("https://Push.Example:443/x", "https://push.example"),
            (
                "https://push.example:8443/x?y=1",
                "https://push.example:8443",
            ),
            ("http://127.0.0.1:9000/p", "http://127.0.0.1:9000"),
            ("http://[::1]:80/p", "http://[::1]"),
            ("https://user@push.example/p", "https://push.example"),
        ] {
            assert_eq!(endpoint_origin(endpoint).expect(endpoint), origin);
        }
        for bad in [
            "/relative",
            "push.example/x",
            "ftp://push.example/x",
            "",
            "https://",
        ] {
            assert_eq!(
                endpoint_origin(bad).expect_err("must fail"),
                VapidError::InvalidEndpoint,
                "{bad}"
            );
        }
    }

    #[test]
    fn authorization_header_is_a_valid_es256_jwt() {
        let key = VapidKey::generate();
        let header = key
            .authorization_at(
                "https://push.example:8443/send/1",
                "mailto:admin@localhost",
                1_000,
            )
            .expect("header");
        let rest = header.strip_prefix("vapid t=").expect("scheme");
        let (jwt, k) = rest.split_once(", k=").expect("k");
        assert_eq!(k, key.public_base64url());
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let head: serde_json::Value =
            serde_json::from_slice(&b64url_decode(parts[0]).expect("b64")).expect("json");
        assert_eq!(head, serde_json::json!({"typ": "JWT", "alg": "ES256"}));
        let claims: serde_json::Value =
            serde_json::from_slice(&b64url_decode(parts[1]).expect("b64")).expect("json");
        assert_eq!(
            claims,
            serde_json::json!({
                "aud": "https://push.example:8443",
                "exp": 1_000 + 12 * 3600,
                "sub": "mailto:admin@localhost",
            })
        );
        let sig = b64url_decode(parts[2]).expect("b64");
        assert_eq!(sig.len(), 64);
        let sig = Signature::from_slice(&sig).expect("sig");
        let vk = VerifyingKey::from_sec1_bytes(&key.public_bytes()).expect("vk");
        vk.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .expect("verifies");
        assert_eq!(
            key.authorization("not a uri", "mailto:a@b")
                .expect_err("must fail"),
            VapidError::InvalidEndpoint
        );
    }
}
