//! Device tokens and device linking (docs/protocol.md §4.2 "Devices", "Device linking").

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use serde::Deserialize;

use super::auth::token_hash;
use super::validate::{self, Checker};
use super::{random_token, AuthService, Authenticated, ClientInfo, Error, LoginResponse, Result};
use crate::model::{SessionId, Timestamp, UserId};

/// Crockford base32 without `I L O U`.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// `POST /devices/authorize` body.
#[derive(Deserialize)]
pub(crate) struct AuthorizeRequest {
    /// The approving user's uid or phone.
    pub identifier: String,
    /// The new device.
    pub device_id: String,
    /// The code the approving device showed.
    pub link_code: String,
    /// Replaces the stored E2E key when non-empty.
    #[serde(default)]
    pub public_e2e_key: Option<String>,
}

super::auth::redacted_debug!(AuthorizeRequest { device_id } hides { identifier, link_code, public_e2e_key });

impl AuthorizeRequest {
    /// The field rules of `/devices/authorize`: the device and the new E2E key, if any.
    pub(crate) fn check(&self) -> Result<(crate::model::DeviceId, Option<String>)> {
        let mut c = Checker::new();
        let (device, new_key) = super::auth::login_fields(
            &mut c,
            &self.identifier,
            &self.device_id,
            self.public_e2e_key.as_deref(),
        );
        c.finish()?;
        let device = device.ok_or_else(|| Error::Internal("validated device missing".into()))?;
        Ok((device, new_key))
    }
}

/// Canonical form of a link code: upper case, no dash; `None` unless 8 Crockford characters.
fn normalize_code(raw: &str) -> Option<String> {
    let s: String = raw
        .trim()
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (s.len() == 8 && s.bytes().all(|b| CROCKFORD.contains(&b))).then_some(s)
}

impl AuthService {
    async fn issue_device_token(&self, session: crate::model::SessionId) -> Result<String> {
        let token = random_token();
        let ttl = self.core.config.auth.device_token_ttl as i64;
        let expires = Timestamp::from_millis(Timestamp::now().millis() + ttl * 1000);
        if !self
            .core
            .store
            .set_device_token(session, Some((&token_hash(&token), expires)))
            .await?
        {
            return Err(Error::TokenRevoked);
        }
        Ok(token)
    }

    /// `POST /devices/register`: a fresh device token for the caller's own device.
    pub(crate) async fn register_device(
        &self,
        auth: &Authenticated,
        device_id: &str,
    ) -> Result<String> {
        let device = validate::device_id(device_id).map_err(|p| Error::field("device_id", p))?;
        let session = self
            .core
            .store
            .session(auth.session)
            .await?
            .ok_or(Error::TokenRevoked)?;
        if session.device_id != device {
            return Err(Error::Forbidden);
        }
        self.issue_device_token(auth.session).await
    }

    /// `POST /devices/refresh`: rotates the current device token of one of the caller's devices.
    pub(crate) async fn refresh_device(
        &self,
        auth: &Authenticated,
        device_id: &str,
        token: &str,
    ) -> Result<String> {
        let device = validate::device_id(device_id).map_err(|p| Error::field("device_id", p))?;
        if !self.device_token_valid(auth.user, &device, token).await? {
            return Err(Error::InvalidCredentials);
        }
        let session = self
            .core
            .store
            .active_session(auth.user, &device)
            .await?
            .ok_or(Error::InvalidCredentials)?;
        self.issue_device_token(session.id).await
    }

    /// `POST /devices/revoke`: deletes a device's token (its session stays). Idempotent.
    pub(crate) async fn revoke_device(&self, auth: &Authenticated, device_id: &str) -> Result<()> {
        let device = validate::device_id(device_id).map_err(|p| Error::field("device_id", p))?;
        if let Some(s) = self.core.store.active_session(auth.user, &device).await? {
            self.core.store.set_device_token(s.id, None).await?;
        }
        Ok(())
    }

    /// True when `owner` (`<uid>:<session>` of a link code) is an active session of `user`.
    async fn issuer_alive(&self, user: UserId, owner: &str) -> Result<bool> {
        let Some((uid, sid)) = owner.split_once(':') else {
            return Ok(false);
        };
        let Ok(sid) = sid.parse::<i64>() else {
            return Ok(false);
        };
        if uid != user.to_string() {
            return Ok(false);
        }
        let session = self.core.store.session(SessionId(sid)).await?;
        Ok(session.is_some_and(|s| s.active && s.user == user))
    }

    /// `POST /devices/link_code`: a single-use code for linking a new device, replacing this
    /// session's previous code.
    pub(crate) async fn link_code(&self, auth: &Authenticated) -> Result<(String, u64)> {
        let eph = &self.core.ephemeral;
        let ttl = self.core.config.auth.link_code_ttl.max(1);
        let code: String = {
            let mut rng = rand::thread_rng();
            (0..8)
                .map(|_| CROCKFORD[rng.gen_range(0..32)] as char)
                .collect()
        };
        let by_session = format!("linksess:{}", auth.session);
        if let Some(old) = eph.take(&by_session).await? {
            if let Ok(old) = std::str::from_utf8(&old) {
                eph.delete(&format!("link:{old}")).await?;
            }
        }
        // The code itself is a credential: only its keyed tag names the entry.
        let tag = self.core.pii.blind_tag("link-code", code.as_bytes());
        let owner = format!("{}:{}", auth.user, auth.session);
        let sealed = self.core.pii.seal_str("ephemeral", "link", &tag, &owner)?;
        eph.set(&format!("link:{tag}"), &sealed, Duration::from_secs(ttl))
            .await?;
        eph.set(&by_session, tag.as_bytes(), Duration::from_secs(ttl))
            .await?;
        Ok((format!("{}-{}", &code[..4], &code[4..]), ttl))
    }

    /// `POST /devices/authorize`: redeems a link code once and logs the new device in like
    /// `/login`. Subject to the failed-login lockout.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn authorize<'a>(
        &'a self,
        req: AuthorizeRequest,
        client: &'a ClientInfo,
    ) -> impl Future<Output = Result<LoginResponse>> + Send + 'a {
        async move {
            let (device, new_key) = req.check()?;
            let (account, user) = self.resolve(&req.identifier).await?;
            let limits = super::LimitsService::new(self.core.clone());
            let attempt = limits.begin_login(&account, client.ip).await?;
            let redeemed = match normalize_code(&req.link_code) {
                Some(code) => {
                    let tag = self.core.pii.blind_tag("link-code", code.as_bytes());
                    match self.core.ephemeral.take(&format!("link:{tag}")).await? {
                        Some(sealed) => self
                            .core
                            .pii
                            .open_string("ephemeral", "link", &tag, &sealed)
                            .ok(),
                        None => None,
                    }
                }
                None => None,
            };
            // The code names its issuer `<uid>:<session>`: it must be this account's, and the
            // session that made it must still be alive (a revoked session's code is dead).
            let issuer_ok = match (&user, &redeemed) {
                (Some(u), Some(owner)) => self.issuer_alive(u.id, owner).await?,
                _ => false,
            };
            let Some(user) = user.filter(|_| issuer_ok) else {
                limits.login_failed(attempt).await?;
                return Err(Error::InvalidCredentials);
            };
            limits.login_succeeded(attempt).await?;
            self.complete_login(user, device, new_key, client).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_code;

    #[test]
    fn link_codes_normalize() {
        assert_eq!(normalize_code("7k3m-q9xd").as_deref(), Some("7K3MQ9XD"));
        assert_eq!(normalize_code("7K3MQ9XD").as_deref(), Some("7K3MQ9XD"));
        assert_eq!(normalize_code("7K3M-Q9XI"), None, "I is not Crockford");
        assert_eq!(normalize_code("7K3M-Q9X"), None);
    }
}
