//! Registration, login, token authentication and CSRF tokens (docs/protocol.md §3.1–3.3, §4.2).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::limits::AccountKey;
use super::validate::{self, Checker};
use super::{random_token, ClientInfo, Core, Error, Result};
use crate::crypto::jwt::TokenError;
use crate::model::{
    DeviceType, ProfileChange, Session, SessionId, SessionUpsert, Timestamp, UserId, UserRecord,
};

/// `POST /register` body.
#[derive(Deserialize)]
pub(crate) struct RegisterRequest {
    /// Phone, normalized to E.164.
    pub phone: String,
    /// Display name.
    pub name: String,
    /// Nickname.
    pub nickname: String,
    /// Password, 8–128 characters.
    pub password: String,
    /// 16 hex chars.
    pub device_id: String,
    /// PEM RSA public key.
    pub public_e2e_key: String,
    /// A registration invite code (`REGISTRATION=invite`; ignored otherwise).
    #[serde(default)]
    pub invite_code: Option<String>,
    /// The answer to a `verification_required` refusal of the embedder's registration policy
    /// (an SMS code, a captcha token…); passed to the policy as is.
    #[serde(default)]
    pub verification: Option<String>,
}

/// `POST /register` answer: the normalized values.
#[derive(Debug, Serialize)]
pub(crate) struct RegisterResponse {
    /// The new uid.
    pub unique_id: UserId,
    /// Stored public key.
    pub public_e2e_key: String,
    /// Normalized phone.
    pub phone: String,
    /// Name.
    pub name: String,
    /// Nickname.
    pub nickname: String,
    /// Lowercase device id.
    pub device_id: String,
}

/// `POST /login` body.
#[derive(Deserialize)]
pub(crate) struct LoginRequest {
    /// uid or phone.
    pub identifier: String,
    /// Password (unless `device_token` is given).
    #[serde(default)]
    pub password: Option<String>,
    /// 16 hex chars.
    pub device_id: String,
    /// Auto-login token of (user, device).
    #[serde(default)]
    pub device_token: Option<String>,
    /// Replaces the stored key when non-empty.
    #[serde(default)]
    pub public_e2e_key: Option<String>,
}

/// `POST /login` answer.
#[derive(Serialize)]
pub(crate) struct LoginResponse {
    /// RS256 JWT.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until `exp`.
    pub expires_in: i64,
    /// Session id.
    pub session_id: SessionId,
    /// The session's new CSRF token.
    pub csrf_token: String,
    /// The device's new auto-login token.
    pub device_token: String,
    /// Stored public key.
    pub public_e2e_key: Option<String>,
    /// uid.
    pub unique_id: UserId,
    /// Phone (owner only).
    pub phone: String,
    /// Name.
    pub name: String,
    /// Nickname.
    pub nickname: String,
    /// Device id.
    pub device_id: String,
}

/// Redacted `Debug`: secrets never reach logs, even through a stray `?req`.
macro_rules! redacted_debug {
    ($ty:ident { $($shown:ident),* } hides { $($hidden:ident),* }) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let mut d = f.debug_struct(stringify!($ty));
                $(d.field(stringify!($shown), &self.$shown);)*
                $(d.field(stringify!($hidden), &"[redacted]");)*
                d.finish()
            }
        }
    };
}
pub(crate) use redacted_debug;

redacted_debug!(RegisterRequest { device_id } hides {
    phone, name, nickname, password, public_e2e_key, invite_code, verification
});
redacted_debug!(LoginRequest { device_id } hides { identifier, password, device_token, public_e2e_key });
redacted_debug!(LoginResponse { session_id, unique_id, device_id } hides {
    access_token, csrf_token, device_token, phone, name, nickname, public_e2e_key
});

/// The identity of an authenticated request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Authenticated {
    /// The user.
    pub user: UserId,
    /// The session the token belongs to.
    pub session: SessionId,
}

/// Registration, login, authentication and CSRF.
#[derive(Clone, Debug)]
pub(crate) struct AuthService {
    pub(super) core: Arc<Core>,
}

/// Opened profile fields of a user row.
pub(crate) struct OpenedUser {
    pub(crate) phone: String,
    pub(crate) name: String,
    pub(crate) nickname: String,
    pub(crate) username: Option<String>,
    pub(crate) bio: Option<String>,
    pub(crate) public_key: Option<String>,
}

pub(crate) fn open_user(core: &Core, u: &UserRecord) -> Result<OpenedUser> {
    let row = u.id.to_string();
    let open = |col: &str, v: &[u8]| core.pii.open_string("users", col, &row, v);
    let opt = |col: &str, v: &Option<Vec<u8>>| v.as_deref().map(|b| open(col, b)).transpose();
    Ok(OpenedUser {
        phone: open("phone", &u.phone)?,
        name: open("name", &u.name)?,
        nickname: open("nickname", &u.nickname)?,
        username: opt("username", &u.username)?,
        bio: opt("bio", &u.bio)?,
        public_key: opt("public_key", &u.public_key)?,
    })
}

/// The fields `/login` and `/devices/authorize` share: a non-empty identifier, a device id, and
/// an optional new E2E key (empty means "keep the stored one").
pub(super) fn login_fields(
    c: &mut Checker,
    identifier: &str,
    device_id: &str,
    public_e2e_key: Option<&str>,
) -> (Option<crate::model::DeviceId>, Option<String>) {
    if identifier.trim().is_empty() {
        c.fail("identifier", "must not be empty");
    }
    let device = c.check("device_id", validate::device_id(device_id));
    let new_key = match public_e2e_key.filter(|k| !k.trim().is_empty()) {
        Some(k) => c.check("public_e2e_key", validate::rsa_public_key_pem(k)),
        None => None,
    };
    (device, new_key)
}

/// Longest `verification` answer of `POST /register`, bytes.
const MAX_VERIFICATION: usize = 1024;

/// The normalized fields of a valid [`RegisterRequest`].
pub(crate) struct Registration {
    pub(crate) phone: String,
    pub(crate) name: String,
    pub(crate) nickname: String,
    pub(crate) device: crate::model::DeviceId,
    pub(crate) key: String,
}

impl RegisterRequest {
    /// Every field rule of `/register` (one 422 listing each bad field).
    pub(crate) fn check(&self) -> Result<Registration> {
        let mut c = Checker::new();
        let phone = c.check("phone", validate::phone(&self.phone));
        let name = c.check("name", validate::display_name(&self.name));
        let nickname = c.check("nickname", validate::display_name(&self.nickname));
        c.check("password", validate::password(&self.password));
        if self
            .verification
            .as_deref()
            .is_some_and(|v| v.len() > MAX_VERIFICATION)
        {
            c.fail("verification", "must be at most 1024 bytes");
        }
        let device = c.check("device_id", validate::device_id(&self.device_id));
        let key = c.check(
            "public_e2e_key",
            validate::rsa_public_key_pem(&self.public_e2e_key),
        );
        c.finish()?;
        match (phone, name, nickname, device, key) {
            (Some(phone), Some(name), Some(nickname), Some(device), Some(key)) => {
                Ok(Registration {
                    phone,
                    name,
                    nickname,
                    device,
                    key,
                })
            }
            _ => Err(Error::Internal("validated fields missing".into())),
        }
    }
}

impl LoginRequest {
    /// Every field rule of `/login`: the device and the new E2E key, if any.
    pub(crate) fn check(&self) -> Result<(crate::model::DeviceId, Option<String>)> {
        let mut c = Checker::new();
        let (device, new_key) = login_fields(
            &mut c,
            &self.identifier,
            &self.device_id,
            self.public_e2e_key.as_deref(),
        );
        let password = self.password.as_deref().unwrap_or("");
        let device_token = self.device_token.as_deref().unwrap_or("");
        if password.is_empty() && device_token.is_empty() {
            c.fail("password", "is required unless device_token is given");
        }
        c.finish()?;
        let device = device.ok_or_else(|| Error::Internal("validated device missing".into()))?;
        Ok((device, new_key))
    }
}

pub(crate) fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl AuthService {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// Resolves a login identifier: a uid, or a phone looked up by blind index.
    pub(super) async fn resolve(
        &self,
        identifier: &str,
    ) -> Result<(AccountKey, Option<UserRecord>)> {
        let id = identifier.trim();
        let store = &self.core.store;
        if let Ok(uid) = validate::uid(id) {
            return Ok((AccountKey::User(uid), store.user(uid).await?));
        }
        let normalized = validate::phone(id).unwrap_or_else(|_| id.to_owned());
        Ok(match self.user_by_phone(&normalized).await? {
            Some(u) => (AccountKey::User(u.id), Some(u)),
            None => (AccountKey::Unknown(normalized), None),
        })
    }

    /// The user with this (normalized) phone, under the blind index of any data-key version: a
    /// row that a key rotation has not moved yet is still found.
    pub(super) async fn user_by_phone(&self, phone: &str) -> Result<Option<UserRecord>> {
        let store = &self.core.store;
        self.core
            .find_by_blind_index("phone", phone.as_bytes(), |index| async move {
                store.user_by_phone_index(&index).await
            })
            .await
    }

    /// True when `token` is the current, unexpired device token of (user, device).
    pub(super) async fn device_token_valid(
        &self,
        user: UserId,
        device: &crate::model::DeviceId,
        token: &str,
    ) -> Result<bool> {
        let Some(s) = self.core.store.active_session(user, device).await? else {
            return Ok(false);
        };
        let fresh = s.device_token_expires.is_some_and(|e| e > Timestamp::now());
        Ok(fresh
            && s.device_token_hash
                .as_deref()
                .is_some_and(|h| ct_eq(h, &token_hash(token))))
    }

    /// Password or device-token login (docs/protocol.md §4.2), with lockout.
    // Written as `impl Future + Send` (not `async fn`) so the Send bound is proven here:
    // rustc cannot prove it through the handler fn-pointer coercion otherwise (rust#110338).
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn login<'a>(
        &'a self,
        req: LoginRequest,
        client: &'a ClientInfo,
    ) -> impl Future<Output = Result<LoginResponse>> + Send + 'a {
        async move {
            let (device, new_key) = req.check()?;
            let password = req.password.as_deref().unwrap_or("");
            let device_token = req.device_token.as_deref().unwrap_or("");

            let (account, user) = self.resolve(&req.identifier).await?;
            let limits = super::LimitsService::new(self.core.clone());
            // A valid device token is never refused by a lock (docs/protocol.md §3.4): the user's
            // installed devices keep working while someone guesses at the account.
            if !device_token.is_empty() {
                let valid = match &user {
                    Some(u) => self.device_token_valid(u.id, &device, device_token).await?,
                    None => false,
                };
                if valid {
                    return match user {
                        Some(user) => self.complete_login(user, device, new_key, client).await,
                        None => Err(Error::Internal("device token of no user".into())),
                    };
                }
                if password.is_empty() {
                    limits.device_token_failed(client.ip).await?;
                    return Err(Error::InvalidCredentials);
                }
            }
            // The attempt is counted before the (slow) verification, so parallel guesses cannot
            // all pass the lock check.
            let attempt = limits.begin_login(&account, client.ip).await?;
            let ok = match &user {
                Some(u) => {
                    self.core
                        .passwords
                        .verify(password, &u.password_hash)
                        .await?
                }
                None => {
                    self.core.passwords.verify_dummy(password).await;
                    false
                }
            };
            let Some(mut user) = user.filter(|_| ok) else {
                limits.login_failed(attempt).await?;
                return Err(Error::InvalidCredentials);
            };
            limits.login_succeeded(attempt).await?;
            if crate::crypto::password::needs_rehash(&user.password_hash) {
                // An imported account's first login: its hash becomes one of Melo's form.
                // Compare and set: a password changed since this login read the record stays.
                let hash = self.core.passwords.hash(password).await?;
                if self
                    .core
                    .store
                    .replace_password_hash(user.id, &user.password_hash, &hash)
                    .await?
                {
                    user.password_hash = hash;
                }
            }
            self.complete_login(user, device, new_key, client).await
        }
    }

    /// Creates or refreshes the session of (user, device) and issues its tokens.
    pub(super) async fn complete_login(
        &self,
        mut user: UserRecord,
        device: crate::model::DeviceId,
        new_key: Option<String>,
        client: &ClientInfo,
    ) -> Result<LoginResponse> {
        let core = &self.core;
        // Checked once the credentials are known to be right: only their holder learns of a lock.
        if core.store.user_locked(user.id).await? == Some(true) {
            tracing::info!(target: "melo::audit", event = "login_refused_locked", user_id = %user.id, "login of a locked account refused");
            return Err(Error::AccountLocked);
        }
        let now = Timestamp::now();
        let session_row = format!("{}:{}", user.id, device);
        let seal = |col: &str, v: &str| core.pii.seal_str("sessions", col, &session_row, v);
        let ua: String = client.user_agent.chars().take(100).collect();
        let device_token = random_token();
        let ttl = core.config.auth.device_token_ttl as i64;
        let session = core
            .store
            .upsert_session(&SessionUpsert {
                user: user.id,
                device_id: device.clone(),
                device_type: DeviceType::from_user_agent(&client.user_agent),
                device_name: seal("device_name", &ua)?,
                ip: seal("ip", &client.ip.to_string())?,
                last_activity: seal("last_activity", &now.millis().to_string())?,
                device_token_hash: token_hash(&device_token),
                device_token_expires: Timestamp::from_millis(now.millis() + ttl * 1000),
                now,
            })
            .await?;
        core.sessions_changed(user.id);
        // A lock written (with its revocation of every session) after the check above but before
        // this session existed would leave it active: look again, now that it exists. An account
        // erased meanwhile (`None`) gets no session either.
        if core.store.user_locked(user.id).await? != Some(false) {
            core.store.revoke_session(user.id, session.id).await?;
            core.sessions_changed(user.id);
            return Err(Error::AccountLocked);
        }
        core.new_session_visible(session.created_at, now).await;
        let csrf_token = self.rotate_csrf(session.id).await?;
        let access_token = core.tokens.issue(user.id, session.id).await?;
        // The new key is written only once the login itself has succeeded.
        if let Some(key) = &new_key {
            let sealed = core
                .pii
                .seal_str("users", "public_key", &user.id.to_string(), key)?;
            let change = ProfileChange {
                public_key: Some(sealed.clone()),
                ..ProfileChange::default()
            };
            core.store.update_user(user.id, &change).await?;
            user.public_key = Some(sealed);
            let auth = Authenticated {
                user: user.id,
                session: session.id,
            };
            let delivery = super::DeliveryService::new(core.clone());
            super::ContactsService::new(
                core.clone(),
                delivery,
                super::PushService::new(core.clone()),
            )
            .key_changed(&auth, key)
            .await?;
        }
        let opened = open_user(core, &user)?;
        tracing::info!(target: "melo::audit", event = "login", user_id = %user.id, session_id = %session.id, "login");
        core.hooks.emit(|| crate::hooks::Event::LoggedIn {
            user: user.id,
            session: session.id,
        });
        Ok(LoginResponse {
            access_token,
            token_type: "bearer",
            expires_in: core.tokens.ttl_secs(),
            session_id: session.id,
            csrf_token,
            device_token,
            public_e2e_key: opened.public_key,
            unique_id: user.id,
            phone: opened.phone,
            name: opened.name,
            nickname: opened.nickname,
            device_id: device.to_string(),
        })
    }

    /// Verifies a bearer token: signature and claims, then the session (active, owned by
    /// `sub`), then the user. Refreshes the session's last activity at most once a minute.
    pub(crate) async fn authenticate(&self, token: &str) -> Result<Authenticated> {
        let id = self.core.tokens.verify(token).map_err(|e| match e {
            TokenError::Invalid => Error::InvalidToken,
            TokenError::Expired => Error::TokenExpired,
        })?;
        let session = self.core.store.session(id.session).await?;
        let Some(session) = session.filter(|s| s.active && s.user == id.user) else {
            return Err(Error::TokenRevoked);
        };
        if self.core.store.user(id.user).await?.is_none() {
            return Err(Error::InvalidToken);
        }
        self.touch(&session).await;
        Ok(Authenticated {
            user: id.user,
            session: id.session,
        })
    }

    async fn touch(&self, s: &Session) {
        let core = &self.core;
        let row = format!("{}:{}", s.user, s.device_id);
        let now = Timestamp::now();
        let last = core
            .pii
            .open_string("sessions", "last_activity", &row, &s.last_activity)
            .ok()
            .and_then(|t| t.parse::<i64>().ok())
            .unwrap_or(0);
        if now.millis() - last < 60_000 {
            return;
        }
        match core
            .pii
            .seal_str("sessions", "last_activity", &row, &now.millis().to_string())
        {
            Ok(sealed) => {
                if let Err(e) = core.store.touch_session(s.id, &sealed).await {
                    tracing::warn!(error = %e, session_id = %s.id, "could not refresh last activity");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not seal last activity"),
        }
    }

    fn csrf_key(session: SessionId) -> String {
        format!("csrf:{session}")
    }

    /// Issues a new CSRF token for the session, replacing the previous one at once.
    pub(crate) async fn rotate_csrf(&self, session: SessionId) -> Result<String> {
        let token = random_token();
        let sealed = self
            .core
            .pii
            .seal_str("ephemeral", "csrf", &session.to_string(), &token)?;
        let ttl = Duration::from_secs(self.core.config.auth.csrf_ttl);
        self.core
            .ephemeral
            .set(&Self::csrf_key(session), &sealed, ttl)
            .await?;
        Ok(token)
    }

    /// The session's CSRF token, created when absent or expired.
    pub(crate) async fn csrf_token(&self, session: SessionId) -> Result<String> {
        let current = self.core.ephemeral.get(&Self::csrf_key(session)).await?;
        if let Some(sealed) = current {
            if let Ok(t) =
                self.core
                    .pii
                    .open_string("ephemeral", "csrf", &session.to_string(), &sealed)
            {
                return Ok(t);
            }
        }
        self.rotate_csrf(session).await
    }

    /// Checks a CSRF token from the body and/or header: at least one present, all present equal
    /// the session's token.
    pub(crate) async fn check_csrf(
        &self,
        session: SessionId,
        body: Option<&str>,
        header: Option<&str>,
    ) -> Result<()> {
        if body.is_none() && header.is_none() {
            return Err(Error::CsrfInvalid);
        }
        let Some(sealed) = self.core.ephemeral.get(&Self::csrf_key(session)).await? else {
            return Err(Error::CsrfInvalid);
        };
        let current = self
            .core
            .pii
            .open_string("ephemeral", "csrf", &session.to_string(), &sealed)
            .map_err(|_| Error::CsrfInvalid)?;
        let ok = [body, header]
            .into_iter()
            .flatten()
            .all(|t| ct_eq(t.as_bytes(), current.as_bytes()));
        if ok {
            Ok(())
        } else {
            Err(Error::CsrfInvalid)
        }
    }
}
