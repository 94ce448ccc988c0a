//! `POST /register` (docs/protocol.md §4.2) under the registration mode (`REGISTRATION`): open, closed,
//! or by single-use invite codes that operators make (`melo::admin`).
//!
//! An invite code is 25 random Crockford base-32 characters (125 bits), shown in five groups of
//! five. The store keeps only its keyed blind index (domain [`INVITE_DOMAIN`]) with an expiry and
//! a used flag. A registration takes the invite (one atomic update: of concurrent registrations
//! with one code exactly one gets it) only after every other check passed, and gives it back if
//! creating the account then fails, so a refused registration never burns a code.
//!
//! The embedder's [`RegistrationPolicy`](crate::hooks::RegistrationPolicy) decides last: after
//! validation, the mode and the phone check, before the password is hashed.

use std::future::Future;

use rand::Rng;

use super::auth::{RegisterRequest, RegisterResponse, Registration};
use super::{AuthService, ClientInfo, Error, Result};
use crate::config::Registration as Mode;
use crate::hooks::{RegistrationAttempt, RegistrationDecision};
use crate::model::{Timestamp, UserId, UserRecord};
use crate::store::StoreError;

/// Blind-index domain of registration invite codes.
pub(crate) const INVITE_DOMAIN: &str = "registration_invite";
/// Characters of an invite code (without dashes).
const CODE_CHARS: usize = 25;
/// Crockford base 32.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new invite code: `XXXXX-XXXXX-XXXXX-XXXXX-XXXXX`.
pub(crate) fn new_invite_code() -> String {
    let mut rng = rand::thread_rng();
    let mut out = String::with_capacity(CODE_CHARS + CODE_CHARS / 5);
    for i in 0..CODE_CHARS {
        if i > 0 && i % 5 == 0 {
            out.push('-');
        }
        out.push(char::from(CROCKFORD[rng.gen_range(0..32)]));
    }
    out
}

/// Canonical form of an invite code: upper case, without dashes or spaces, `O` read as `0` and
/// `I`/`L` as `1` (Crockford); `None` unless 25 Crockford characters.
pub(crate) fn normalize_invite_code(raw: &str) -> Option<String> {
    if raw.len() > 64 {
        return None;
    }
    let s: String = raw
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect();
    (s.len() == CODE_CHARS && s.bytes().all(|b| CROCKFORD.contains(&b))).then_some(s)
}

impl AuthService {
    /// Creates an account (does not log in), if the registration mode lets this request.
    // Written as `impl Future + Send` (not `async fn`) so the Send bound is proven here:
    // rustc cannot prove it through the handler fn-pointer coercion otherwise (rust#110338).
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn register<'a>(
        &'a self,
        req: RegisterRequest,
        client: &'a ClientInfo,
    ) -> impl Future<Output = Result<RegisterResponse>> + Send + 'a {
        async move {
            let invite = match self.core.config.auth.registration {
                Mode::Open => None,
                Mode::Closed => return Err(Error::RegistrationClosed),
                Mode::Invite => match req.invite_code.as_deref().map(str::trim) {
                    None | Some("") => return Err(Error::InviteRequired),
                    Some(code) => {
                        Some(normalize_invite_code(code).ok_or(Error::RegistrationInviteInvalid)?)
                    }
                },
            };
            let fields = req.check()?;
            // The code is taken before the phone is looked up and the password hashed: without
            // a valid code nobody learns whether a phone is registered, nor costs a bcrypt.
            let taken = match &invite {
                Some(code) => Some(self.take_invite(code).await?),
                None => None,
            };
            let created = async {
                if self.user_by_phone(&fields.phone).await?.is_some() {
                    return Err(Error::PhoneTaken);
                }
                self.check_policy(&fields.phone, client, req.verification.as_deref())
                    .await?;
                let password_hash = self.core.passwords.hash(&req.password).await?;
                self.create_account(fields, password_hash, taken.is_some())
                    .await
            }
            .await;
            if let (Err(_), Some(index)) = (&created, &taken) {
                // The code did not make an account: it stays usable.
                if let Err(e) = self.core.store.restore_registration_invite(index).await {
                    tracing::warn!(error = %e, "registration invite not given back after a failed registration");
                }
            }
            created
        }
    }

    /// The embedder's registration policy, if any (`hooks::RegistrationPolicy`). Runs before the
    /// password is hashed; nothing of the attempt is logged.
    async fn check_policy(
        &self,
        phone: &str,
        client: &ClientInfo,
        verification: Option<&str>,
    ) -> Result<()> {
        let attempt = RegistrationAttempt {
            phone,
            ip: client.ip,
            user_agent: &client.user_agent,
            verification,
        };
        match self.core.hooks.check_registration(&attempt).await {
            RegistrationDecision::Allow => Ok(()),
            RegistrationDecision::Deny { reason } => {
                tracing::info!(target: "melo::audit", event = "register_denied", "registration refused by the policy");
                Err(Error::RegistrationDenied { reason })
            }
            RegistrationDecision::RequireVerification { method, hint } => {
                Err(Error::VerificationRequired { method, hint })
            }
        }
    }

    /// Marks the invite with this (normalized) code used; its blind index, to give it back.
    /// Codes made under an older data key are found under its blind key.
    async fn take_invite(&self, code: &str) -> Result<Vec<u8>> {
        let now = Timestamp::now();
        for index in self.core.pii.blind_indexes(INVITE_DOMAIN, code.as_bytes()) {
            if self.core.store.use_registration_invite(&index, now).await? {
                return Ok(index);
            }
        }
        Err(Error::RegistrationInviteInvalid)
    }

    /// Stores the new user under a fresh random uid.
    async fn create_account(
        &self,
        fields: Registration,
        password_hash: String,
        invited: bool,
    ) -> Result<RegisterResponse> {
        let core = &self.core;
        let Registration {
            phone,
            name,
            nickname,
            device,
            key,
        } = fields;
        let phone_index = core.pii.blind_index("phone", phone.as_bytes());
        for _ in 0..16 {
            let id = UserId::random();
            let row = id.to_string();
            let seal = |col: &str, v: &str| core.pii.seal_str("users", col, &row, v);
            let record = UserRecord {
                id,
                phone_index: phone_index.clone(),
                phone: seal("phone", &phone)?,
                name: seal("name", &name)?,
                nickname: seal("nickname", &nickname)?,
                username: None,
                bio: None,
                public_key: Some(seal("public_key", &key)?),
                password_hash: password_hash.clone(),
                created_at: Timestamp::now(),
            };
            match core.store.create_user(&record).await {
                Ok(()) => {
                    tracing::info!(target: "melo::audit", event = "register", user_id = %id, invited, "registered");
                    core.hooks
                        .emit(|| crate::hooks::Event::UserRegistered { user: id });
                    return Ok(RegisterResponse {
                        unique_id: id,
                        public_e2e_key: key,
                        phone,
                        name,
                        nickname,
                        device_id: device.to_string(),
                    });
                }
                Err(StoreError::Conflict("uid")) => continue,
                Err(StoreError::Conflict(_)) => return Err(Error::PhoneTaken),
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Internal("could not allocate a uid".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::{new_invite_code, normalize_invite_code};

    #[test]
    fn invite_codes_are_grouped_random_and_normalize() {
        let a = new_invite_code();
        assert_eq!(a.len(), 29, "{a}");
        assert_eq!(a.split('-').count(), 5);
        assert!(a.split('-').all(|g| g.len() == 5));
        assert_ne!(a, new_invite_code());
        let canonical = normalize_invite_code(&a).expect("own codes are valid");
        assert_eq!(canonical, a.replace('-', ""));
        assert_eq!(
            normalize_invite_code(&format!(" {} ", a.to_lowercase())),
            Some(canonical.clone())
        );
        assert_eq!(
            normalize_invite_code("oOiIl-00000-00000-00000-00000"),
            Some("0011100000000000000000000".into())
        );
        assert_eq!(normalize_invite_code("ABCDE-FGHJK"), None, "too short");
        assert_eq!(
            normalize_invite_code(&format!("{canonical}0")),
            None,
            "too long"
        );
        assert_eq!(
            normalize_invite_code("UUUUU-00000-00000-00000-00000"),
            None,
            "U is not Crockford"
        );
        assert_eq!(normalize_invite_code(&"-".repeat(100)), None);
    }
}
