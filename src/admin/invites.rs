//! [`Admin::create_invite`]: single-use registration invite codes (`REGISTRATION=invite`).

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::{Admin, AdminError};
use crate::model::Timestamp;
use crate::service::register::{new_invite_code, INVITE_DOMAIN};
use crate::store::StoreError;

/// The shortest invite lifetime.
pub const MIN_INVITE_TTL: Duration = Duration::from_secs(60);
/// The longest invite lifetime (90 days).
pub const MAX_INVITE_TTL: Duration = Duration::from_secs(90 * 86_400);
/// A lifetime for callers without an opinion (7 days).
pub const DEFAULT_INVITE_TTL: Duration = Duration::from_secs(7 * 86_400);

/// A new registration invite. The code is a credential: hand it to one person; the store keeps
/// only its keyed blind index, so it cannot be shown again. `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct InviteCode {
    /// `XXXXX-XXXXX-XXXXX-XXXXX-XXXXX` (Crockford base 32; case, dashes and spaces do not
    /// matter when it is typed in).
    pub code: String,
    /// After this it is refused.
    pub expires_at: Timestamp,
}

impl fmt::Debug for InviteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InviteCode")
            .field("code", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Admin {
    /// A new single-use registration invite, valid for `ttl` ([`MIN_INVITE_TTL`] to
    /// [`MAX_INVITE_TTL`]). Expired invites are deleted on the way.
    pub async fn create_invite(&self, ttl: Duration) -> Result<InviteCode, AdminError> {
        if !(MIN_INVITE_TTL..=MAX_INVITE_TTL).contains(&ttl) {
            return Err(AdminError::InvalidTtl);
        }
        let now = Timestamp::now();
        if let Err(e) = self.store.purge_registration_invites(now).await {
            tracing::warn!(error = %e, "expired registration invites not purged");
        }
        let expires_at = Timestamp::from_millis(now.millis() + ttl.as_millis() as i64);
        // 125 random bits: a collision is as good as impossible; try again rather than fail.
        for _ in 0..4 {
            let code = new_invite_code();
            let normalized = code.replace('-', "");
            let index = self.pii.blind_index(INVITE_DOMAIN, normalized.as_bytes());
            match self
                .store
                .create_registration_invite(&index, expires_at)
                .await
            {
                Ok(()) => {
                    tracing::info!(target: "melo::audit", event = "admin_invite_created", expires_at = %expires_at, "registration invite created by an operator");
                    return Ok(InviteCode { code, expires_at });
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AdminError::Store(StoreError::Conflict("invite")))
    }
}
