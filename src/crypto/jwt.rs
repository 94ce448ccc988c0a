//! RS256 access tokens (docs/protocol.md §3.1).

use std::sync::Arc;

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use super::KeyProvider;
use crate::model::{SessionId, Timestamp, UserId};

/// Longest token accepted, in characters.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The claims Melo issues and requires.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    /// `JWT_ISSUER`.
    pub iss: String,
    /// `JWT_AUDIENCE`.
    pub aud: String,
    /// The uid.
    pub sub: String,
    /// Session id as a decimal string.
    pub sid: String,
    /// 43-char random token id.
    pub jti: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expiry (Unix seconds).
    pub exp: i64,
}

/// A verified token's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenIdentity {
    /// The user.
    pub user: UserId,
    /// The session.
    pub session: SessionId,
    /// Expiry (Unix seconds).
    pub exp: i64,
}

/// Why a token was refused; maps to `invalid_token` / `token_expired`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Malformed, bad signature, unknown kid, wrong alg/iss/aud, missing claims.
    #[error("invalid token")]
    Invalid,
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
}

/// Issues and verifies tokens with the provider's key set.
#[derive(Clone, Debug)]
pub struct TokenCodec {
    keys: Arc<dyn KeyProvider>,
    issuer: String,
    audience: String,
    ttl_secs: i64,
}

impl TokenCodec {
    /// A codec for the given issuer, audience and lifetime.
    pub fn new(
        keys: Arc<dyn KeyProvider>,
        issuer: String,
        audience: String,
        ttl_secs: i64,
    ) -> Self {
        Self {
            keys,
            issuer,
            audience,
            ttl_secs,
        }
    }

    /// Token lifetime in seconds.
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// Signs a token for (user, session). RSA signing runs on the blocking pool.
    pub async fn issue(
        &self,
        user: UserId,
        session: SessionId,
    ) -> Result<String, super::CryptoError> {
        let now = Timestamp::now().secs();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user.to_string(),
            sid: session.to_string(),
            jti: crate::service::random_token(),
            iat: now,
            exp: now + self.ttl_secs,
        };
        let key = self.keys.signing_key();
        tokio::task::spawn_blocking(move || {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some(key.kid().to_owned());
            jsonwebtoken::encode(&header, &claims, key.encoding())
        })
        .await
        .map_err(|e| super::CryptoError::Keys(e.to_string()))?
        .map_err(|e| super::CryptoError::Keys(e.to_string()))
    }

    /// Verifies in the documented order (docs/protocol.md §3.1): shape, kid/alg/signature, iss/aud/claims, then expiry.
    /// Session and user checks are the caller's.
    pub fn verify(&self, token: &str) -> Result<TokenIdentity, TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN || token.split('.').count() != 3 {
            return Err(TokenError::Invalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::RS256 {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        let key = self
            .keys
            .verifying_keys()
            .into_iter()
            .find(|k| k.kid() == kid)
            .ok_or(TokenError::Invalid)?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Claims>(token, key.decoding(), &validation)
            .map_err(|_| TokenError::Invalid)?;
        let c = data.claims;
        if c.iss != self.issuer || c.aud != self.audience || c.jti.is_empty() {
            return Err(TokenError::Invalid);
        }
        let user: UserId = c.sub.parse().map_err(|()| TokenError::Invalid)?;
        let session = c
            .sid
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .map(SessionId)
            .ok_or(TokenError::Invalid)?;
        if c.exp <= Timestamp::now().secs() {
            return Err(TokenError::Expired);
        }
        Ok(TokenIdentity {
            user,
            session,
            exp: c.exp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::StaticKeys;

    fn codec(keys: Arc<StaticKeys>, iss: &str, ttl: i64) -> TokenCodec {
        TokenCodec::new(keys, iss.into(), "mvp_clients".into(), ttl)
    }

    #[tokio::test]
    async fn issue_verify_and_failures() {
        let keys = Arc::new(StaticKeys::generate().expect("keys"));
        let c = codec(keys.clone(), "pixeltoo.ru", 7200);
        let uid = UserId::new(12345678).expect("uid");
        let t = c.issue(uid, SessionId(7)).await.expect("issue");
        let id = c.verify(&t).expect("verify");
        assert_eq!((id.user, id.session), (uid, SessionId(7)));

        assert_eq!(
            codec(keys.clone(), "other", 7200).verify(&t),
            Err(TokenError::Invalid)
        );
        let expired = codec(keys.clone(), "pixeltoo.ru", -10)
            .issue(uid, SessionId(7))
            .await
            .expect("issue");
        assert_eq!(c.verify(&expired), Err(TokenError::Expired));
        // Wrong issuer wins over expiry.
        assert_eq!(
            codec(keys.clone(), "other", 7200).verify(&expired),
            Err(TokenError::Invalid)
        );
        assert_eq!(c.verify("abc.def.ghi"), Err(TokenError::Invalid));
        assert_eq!(c.verify(&"a".repeat(5000)), Err(TokenError::Invalid));
        let other = Arc::new(StaticKeys::generate().expect("keys"));
        let forged = codec(other, "pixeltoo.ru", 7200)
            .issue(uid, SessionId(7))
            .await
            .expect("issue");
        assert_eq!(c.verify(&forged), Err(TokenError::Invalid));
    }
}
