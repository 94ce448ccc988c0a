//! Profiles and E2E key material (docs/protocol.md §4.3).

use std::future::Future;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::auth::open_user;
use super::validate::{self, Checker};
use super::{AuthService, Authenticated, Core, Error, Result};
use crate::model::{ProfileChange, Timestamp, UserId};
use crate::store::ContactState;

/// `GET /profile` answer. `csrf_token` and `phone` appear only on the caller's own profile.
#[derive(Debug, Serialize)]
pub(crate) struct ProfileResponse {
    /// The caller's CSRF token (own profile only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    /// uid.
    pub unique_id: UserId,
    /// Phone (own profile only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Name.
    pub name: String,
    /// Nickname.
    pub nickname: String,
    /// Username or null.
    pub username: Option<String>,
    /// Bio or null.
    pub bio: Option<String>,
    /// E2E public key PEM or null.
    pub public_e2e_key: Option<String>,
}

/// `PUT /profile` body: every field optional; null or absent leaves it unchanged.
#[derive(Default, Deserialize)]
pub(crate) struct ProfileUpdate {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New nickname.
    #[serde(default)]
    pub nickname: Option<String>,
    /// New username (`""` clears).
    #[serde(default)]
    pub username: Option<String>,
    /// New bio (`""` clears).
    #[serde(default)]
    pub bio: Option<String>,
    /// New password; needs `current_password`.
    #[serde(default)]
    pub password: Option<String>,
    /// The current password.
    #[serde(default)]
    pub current_password: Option<String>,
}

impl ProfileUpdate {
    /// Every field rule of `PUT /profile`; the normalized name and nickname, when given.
    pub(crate) fn check(&self) -> Result<(Option<String>, Option<String>)> {
        let mut c = Checker::new();
        let name = self
            .name
            .as_deref()
            .and_then(|n| c.check("name", validate::display_name(n)));
        let nickname = self
            .nickname
            .as_deref()
            .and_then(|n| c.check("nickname", validate::display_name(n)));
        if let Some(u) = &self.username {
            c.check("username", validate::username(u));
        }
        if let Some(b) = &self.bio {
            c.check("bio", validate::bio(b));
        }
        if let Some(p) = &self.password {
            c.check("password", validate::password(p));
            if self.current_password.as_deref().unwrap_or("").is_empty() {
                c.fail("current_password", "is required to change the password");
            }
        }
        c.finish()?;
        Ok((name, nickname))
    }
}

super::auth::redacted_debug!(ProfileUpdate {} hides { name, nickname, username, bio, password, current_password });

/// `GET /e2e/secret_key` answer.
#[derive(Debug, Serialize)]
pub(crate) struct SecretKeyResponse {
    /// The stored backup or null.
    pub ciphertext: Option<String>,
    /// When it was stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
}

/// Profiles and keys.
#[derive(Clone, Debug)]
pub(crate) struct UsersService {
    core: Arc<Core>,
    auth: AuthService,
    contacts: super::ContactsService,
    sessions: super::SessionsService,
}

impl UsersService {
    pub(crate) fn new(
        core: Arc<Core>,
        auth: AuthService,
        contacts: super::ContactsService,
        sessions: super::SessionsService,
    ) -> Self {
        Self {
            core,
            auth,
            contacts,
            sessions,
        }
    }

    /// The caller's own profile (with phone and CSRF token), or — with `of` — an accepted
    /// contact's public profile. Anyone else, known or not, is `NotAContact`.
    pub(crate) async fn profile(
        &self,
        auth: &Authenticated,
        of: Option<UserId>,
    ) -> Result<ProfileResponse> {
        let core = &self.core;
        let target = of.unwrap_or(auth.user);
        let own = target == auth.user;
        if !own {
            let rel = core.store.relationship(auth.user, target).await?;
            if rel.map(|r| r.state) != Some(ContactState::Accepted) {
                return Err(Error::NotAContact);
            }
        }
        let Some(user) = core.store.user(target).await? else {
            return Err(if own {
                Error::InvalidToken
            } else {
                Error::NotAContact
            });
        };
        let opened = open_user(core, &user)?;
        let full = of.is_none();
        let csrf_token = if full {
            Some(self.auth.csrf_token(auth.session).await?)
        } else {
            None
        };
        Ok(ProfileResponse {
            csrf_token,
            unique_id: user.id,
            phone: full.then_some(opened.phone),
            name: opened.name,
            nickname: opened.nickname,
            username: opened.username,
            bio: opened.bio,
            public_e2e_key: opened.public_key,
        })
    }

    /// Applies a profile change. A password change needs the current password and revokes
    /// every other session of the user.
    // Written as `impl Future + Send` (not `async fn`) so the Send bound is proven here:
    // rustc cannot prove it through the handler fn-pointer coercion otherwise (rust#110338).
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn update_profile<'a>(
        &'a self,
        auth: &'a Authenticated,
        req: ProfileUpdate,
    ) -> impl Future<Output = Result<()>> + Send + 'a {
        async move {
            let core = &self.core;
            let (name, nickname) = req.check()?;
            let Some(user) = core.store.user(auth.user).await? else {
                return Err(Error::InvalidToken);
            };
            let row = auth.user.to_string();
            let seal = |col: &str, v: &str| core.pii.seal_str("users", col, &row, v);
            let seal_opt = |col: &str, v: &str| -> Result<Option<Vec<u8>>> {
                if v.is_empty() {
                    Ok(None)
                } else {
                    Ok(Some(seal(col, v)?))
                }
            };
            let mut change = ProfileChange {
                name: name.map(|n| seal("name", &n)).transpose()?,
                nickname: nickname.map(|n| seal("nickname", &n)).transpose()?,
                username: req
                    .username
                    .as_deref()
                    .map(|u| seal_opt("username", u))
                    .transpose()?,
                bio: req.bio.as_deref().map(|b| seal_opt("bio", b)).transpose()?,
                ..ProfileChange::default()
            };
            if let (Some(new), Some(current)) = (&req.password, &req.current_password) {
                if !core.passwords.verify(current, &user.password_hash).await? {
                    return Err(Error::Forbidden);
                }
                change.password_hash = Some(core.passwords.hash(new).await?);
            }
            if change.is_empty() {
                return Ok(());
            }
            core.store.update_user(auth.user, &change).await?;
            if change.password_hash.is_some() {
                let revoked = core
                    .store
                    .revoke_sessions_except(auth.user, Some(auth.session))
                    .await?;
                // Every other session ends as a revocation does: queue, sockets, CSRF token,
                // link code and calls.
                for id in &revoked {
                    self.sessions.revoked(auth.user, *id, auth.session).await;
                }
                core.sessions_changed(auth.user);
                tracing::info!(user_id = %auth.user, revoked = revoked.len(), "password changed");
            }
            Ok(())
        }
    }

    /// Replaces the caller's E2E public key.
    // Written as `impl Future + Send` (not `async fn`) so the Send bound is proven here:
    // rustc cannot prove it through the handler fn-pointer coercion otherwise (rust#110338).
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn set_public_key<'a>(
        &'a self,
        auth: &'a Authenticated,
        pem: &'a str,
    ) -> impl Future<Output = Result<()>> + Send + 'a {
        async move {
            let pem =
                validate::rsa_public_key_pem(pem).map_err(|p| Error::field("public_e2e_key", p))?;
            let sealed =
                self.core
                    .pii
                    .seal_str("users", "public_key", &auth.user.to_string(), &pem)?;
            let change = ProfileChange {
                public_key: Some(sealed),
                ..ProfileChange::default()
            };
            if !self.core.store.update_user(auth.user, &change).await? {
                return Err(Error::InvalidToken);
            }
            self.contacts.key_changed(auth, &pem).await
        }
    }

    /// Stores the caller's opaque secret-key backup, sealed.
    // Written as `impl Future + Send` (not `async fn`) so the Send bound is proven here:
    // rustc cannot prove it through the handler fn-pointer coercion otherwise (rust#110338).
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn put_secret_key<'a>(
        &'a self,
        auth: &'a Authenticated,
        ciphertext: &'a str,
    ) -> impl Future<Output = Result<()>> + Send + 'a {
        async move {
            validate::backup_ciphertext(ciphertext).map_err(|p| Error::field("ciphertext", p))?;
            let sealed = self.core.pii.seal_str(
                "secret_keys",
                "ciphertext",
                &auth.user.to_string(),
                ciphertext,
            )?;
            self.core
                .store
                .put_secret_key(auth.user, &sealed, Timestamp::now())
                .await?;
            Ok(())
        }
    }

    /// The caller's secret-key backup.
    pub(crate) async fn secret_key(&self, auth: &Authenticated) -> Result<SecretKeyResponse> {
        match self.core.store.secret_key(auth.user).await? {
            None => Ok(SecretKeyResponse {
                ciphertext: None,
                updated_at: None,
            }),
            Some((sealed, at)) => {
                let text = self.core.pii.open_string(
                    "secret_keys",
                    "ciphertext",
                    &auth.user.to_string(),
                    &sealed,
                )?;
                Ok(SecretKeyResponse {
                    ciphertext: Some(text),
                    updated_at: Some(at),
                })
            }
        }
    }
}
