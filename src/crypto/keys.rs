use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{DecodingKey, EncodingKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;

use crate::push::VapidKey;
use rsa::RsaPrivateKey;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::CryptoError;

/// One RS256 key of the JWT key set.
pub struct JwtKey {
    kid: String,
    created_at: i64,
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_pem: String,
    n: String,
    e: String,
    private_pem: Zeroizing<String>,
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl JwtKey {
    /// Generates a fresh 2048-bit key. CPU-heavy: call it on a blocking thread.
    pub fn generate(created_at: i64) -> Result<Self, CryptoError> {
        let key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048)
            .map_err(|e| CryptoError::Keys(e.to_string()))?;
        Self::from_private(&key, created_at)
    }

    /// Loads a PKCS#8 PEM private key.
    pub fn from_pkcs8_pem(pem: &str, created_at: i64) -> Result<Self, CryptoError> {
        let key =
            RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| CryptoError::Keys(e.to_string()))?;
        Self::from_private(&key, created_at)
    }

    fn from_private(key: &RsaPrivateKey, created_at: i64) -> Result<Self, CryptoError> {
        let bad = |e: &dyn fmt::Display| CryptoError::Keys(e.to_string());
        let private_pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| bad(&e))?;
        let public_pem = key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| bad(&e))?;
        let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
        // RFC 7638 thumbprint: members in lexicographic order, no whitespace.
        let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        let encoding = EncodingKey::from_rsa_pem(private_pem.as_bytes()).map_err(|e| bad(&e))?;
        let decoding = DecodingKey::from_rsa_components(&n, &e).map_err(|e| bad(&e))?;
        Ok(Self {
            kid,
            created_at,
            encoding,
            decoding,
            public_pem,
            n,
            e,
            private_pem: Zeroizing::new(private_pem.to_string()),
        })
    }

    /// RFC 7638 thumbprint, used as the JWT `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key's slot, in Unix seconds: it signs from this second at the earliest (a
    /// [`FileKeyProvider`](crate::FileKeyProvider) key also waits for its
    /// [`publish_delay`](KeyPolicy::publish_delay)).
    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    /// SPKI PEM of the public key.
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// Base64url modulus (JWK `n`).
    pub fn modulus(&self) -> &str {
        &self.n
    }

    /// Base64url exponent (JWK `e`).
    pub fn exponent(&self) -> &str {
        &self.e
    }

    pub(crate) fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }

    pub(crate) fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }

    pub(crate) fn private_pem(&self) -> &str {
        &self.private_pem
    }
}

/// AES-256-GCM data keys and HMAC blind-index keys, by version.
///
/// New values are sealed (and new blind indexes computed) with the *current* version; values of
/// every version this set holds stay readable. A rotation adds a version that becomes current at
/// an activation time ([`with_next`](Self::with_next)), so every node of a cluster can load the
/// new key before any node writes with it. `melo rotate-keys` then moves old
/// values to the current version.
pub struct DataKeys {
    current: u8,
    /// A version that becomes current at this Unix second.
    next: Option<(u8, i64)>,
    keys: BTreeMap<u8, Zeroizing<[u8; 32]>>,
    blind: BTreeMap<u8, Zeroizing<[u8; 32]>>,
}

impl fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKeys")
            .field("current", &self.current)
            .field("next", &self.next)
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl DataKeys {
    /// Builds a key set whose versions all share one blind-index key. `current` must be one of
    /// `keys`.
    pub fn new(
        current: u8,
        keys: BTreeMap<u8, [u8; 32]>,
        blind: [u8; 32],
    ) -> Result<Self, CryptoError> {
        if !keys.contains_key(&current) {
            return Err(CryptoError::Keys("current data key version missing".into()));
        }
        Ok(Self {
            current,
            next: None,
            blind: keys.keys().map(|v| (*v, Zeroizing::new(blind))).collect(),
            keys: keys
                .into_iter()
                .map(|(v, k)| (v, Zeroizing::new(k)))
                .collect(),
        })
    }

    /// Gives `version` its own blind-index key (versions added by a rotation have one).
    pub fn with_blind_key(mut self, version: u8, blind: [u8; 32]) -> Result<Self, CryptoError> {
        if !self.keys.contains_key(&version) {
            return Err(CryptoError::Keys(format!(
                "blind key for unknown data key version {version}"
            )));
        }
        self.blind.insert(version, Zeroizing::new(blind));
        Ok(self)
    }

    /// Makes `version` current from Unix second `at` on (before that, it only reads).
    pub fn with_next(mut self, version: u8, at: i64) -> Result<Self, CryptoError> {
        if !self.keys.contains_key(&version) {
            return Err(CryptoError::Keys(format!(
                "activation of unknown data key version {version}"
            )));
        }
        self.next = Some((version, at));
        Ok(self)
    }

    /// Random keys, version 1.
    pub fn generate() -> Self {
        let (k, b) = (random_key(), random_key());
        Self {
            current: 1,
            next: None,
            keys: BTreeMap::from([(1, Zeroizing::new(k))]),
            blind: BTreeMap::from([(1, Zeroizing::new(b))]),
        }
    }

    /// Derives version-1 keys from an operator secret (`ENCRYPTION_KEY_STR`) with HMAC-SHA256
    /// under distinct labels, so the encryption and blind-index keys are independent.
    pub fn derive_from_secret(secret: &str) -> Self {
        use hmac::{Hmac, Mac};
        let derive = |label: &[u8]| -> [u8; 32] {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
                .expect("HMAC accepts keys of any length");
            mac.update(label);
            mac.finalize().into_bytes().into()
        };
        Self {
            current: 1,
            next: None,
            keys: BTreeMap::from([(1, Zeroizing::new(derive(b"melo/data-key/v1")))]),
            blind: BTreeMap::from([(1, Zeroizing::new(derive(b"melo/blind-index/v1")))]),
        }
    }

    /// Version new data is sealed with: the pending version once its activation time has come.
    pub fn current_version(&self) -> u8 {
        match self.next {
            Some((v, at)) if crate::model::Timestamp::now().secs() >= at => v,
            _ => self.current,
        }
    }

    /// The pending version and its activation time (Unix seconds), if one is set.
    pub fn next_version(&self) -> Option<(u8, i64)> {
        self.next
    }

    /// Key of a version.
    pub fn key(&self, version: u8) -> Option<&[u8; 32]> {
        self.keys.get(&version).map(|k| &**k)
    }

    /// Blind-index (HMAC) key of the current version.
    pub fn blind_key(&self) -> &[u8; 32] {
        self.blind_key_of(self.current_version())
    }

    /// Every distinct blind-index key, current first: a lookup tries each, so rows not yet moved
    /// to the current version are still found.
    pub fn blind_keys(&self) -> Vec<&[u8; 32]> {
        let current = self.blind_key();
        let mut out = vec![current];
        for k in self.blind.values().rev() {
            if !out.iter().any(|o| *o == &**k) {
                out.push(k);
            }
        }
        out
    }

    fn blind_key_of(&self, version: u8) -> &[u8; 32] {
        // Every version has a blind key (the constructors guarantee it); fall back to the
        // newest one below it defensively.
        self.blind
            .range(..=version)
            .next_back()
            .or_else(|| self.blind.iter().next())
            .map(|(_, k)| &**k)
            .expect("a key set holds at least one blind key")
    }

    /// Every version with its data key and blind key, oldest first.
    pub(crate) fn versions(&self) -> impl Iterator<Item = (u8, &[u8; 32], &[u8; 32])> {
        self.keys
            .iter()
            .map(|(v, k)| (*v, &**k, self.blind_key_of(*v)))
    }

    /// The stored current version (ignoring a pending activation).
    pub(crate) fn stored_current(&self) -> u8 {
        self.current
    }
}

pub(crate) fn random_key() -> [u8; 32] {
    use rand::RngCore;
    let mut k = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut k);
    k
}

/// When signing keys rotate and how long retired keys keep verifying.
#[derive(Clone, Copy, Debug)]
pub struct KeyPolicy {
    /// A signing key older than this is replaced (`JWT_KEY_ROTATION_DAYS`).
    pub rotation: Duration,
    /// Token lifetime: a retired key verifies for this long plus 10 minutes.
    pub token_ttl: Duration,
    /// How long a new signing key is published (it verifies, and the JWKS lists it) before it
    /// signs, so that every node sharing the key directory has loaded it before a token signed
    /// with it exists. At least twice the key-check interval (`KEY_CHECK_SECONDS`); default
    /// 5 minutes.
    pub publish_delay: Duration,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        Self {
            rotation: Duration::from_secs(30 * 86_400),
            token_ttl: Duration::from_secs(7200),
            publish_delay: Duration::from_secs(300),
        }
    }
}

/// Source of every key Melo uses. Implement it to plug a KMS.
#[async_trait::async_trait]
pub trait KeyProvider: Send + Sync + fmt::Debug + 'static {
    /// The key that signs new tokens (`GET /public_key` shows it).
    fn signing_key(&self) -> Arc<JwtKey>;
    /// Every key that can still verify a live token (the JWKS).
    fn verifying_keys(&self) -> Vec<Arc<JwtKey>>;
    /// The data keys.
    fn data_keys(&self) -> Arc<DataKeys>;
    /// The Web Push VAPID key pair, when this provider keeps one. `None` (the default) leaves it
    /// to [`MeloBuilder::vapid`](crate::MeloBuilder::vapid), or to a pair generated at start.
    fn vapid_key(&self) -> Option<Arc<VapidKey>> {
        None
    }
    /// Periodic upkeep (rotation, retirement); the server calls it from a background task.
    /// Providers without rotation keep the default no-op.
    async fn maintain(&self) -> Result<(), CryptoError> {
        Ok(())
    }
}

/// In-memory key set, fixed for the provider's life (no rotation). For tests and embedders who
/// manage keys themselves.
#[derive(Debug)]
pub struct StaticKeys {
    jwt: ArcSwap<Vec<Arc<JwtKey>>>,
    data: Arc<DataKeys>,
    vapid: Arc<VapidKey>,
}

impl StaticKeys {
    /// Generates a JWT key and random data keys. CPU-heavy (RSA key generation).
    pub fn generate() -> Result<Self, CryptoError> {
        let now = crate::model::Timestamp::now().secs();
        Ok(Self::new(JwtKey::generate(now)?, DataKeys::generate()))
    }

    /// From explicit keys.
    pub fn new(jwt: JwtKey, data: DataKeys) -> Self {
        Self {
            jwt: ArcSwap::from_pointee(vec![Arc::new(jwt)]),
            data: Arc::new(data),
            vapid: Arc::new(VapidKey::generate()),
        }
    }

    /// A copy sharing the JWT key but with fresh data keys (handy for tests that need a
    /// second, independent key set cheaply).
    pub fn with_data_keys(&self, data: DataKeys) -> Self {
        Self {
            jwt: ArcSwap::new(self.jwt.load_full()),
            data: Arc::new(data),
            vapid: self.vapid.clone(),
        }
    }
}

#[async_trait::async_trait]
impl KeyProvider for StaticKeys {
    fn signing_key(&self) -> Arc<JwtKey> {
        self.jwt
            .load()
            .first()
            .cloned()
            .expect("StaticKeys always holds one key")
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
}
