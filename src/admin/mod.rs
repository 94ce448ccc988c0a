//! Operator tools on a store, from a process of their own (the binary's `melo admin …`): lock
//! and unlock accounts, list and revoke sessions, count what the store holds, and make
//! registration invites. Like [`rekey`](crate::rekey) they work on the store directly and are
//! safe while servers serve.
//!
//! An [`Admin`] is built from what an operator's process can open without running a server: the
//! servers' store and key provider (the same keys: sealed values are opened and blind indexes
//! computed with them), and optionally their shared ephemeral state (Redis), where a revoked
//! session's CSRF token and link code are deleted at once (without it they stop working anyway,
//! being checked against the session, and expire on their own).
//!
//! Revocations (by [`Admin::lock`] and [`Admin::revoke`]) are noted in the store in the same
//! transaction, and every running server polls the notes about once a second: the sockets of
//! revoked sessions close (1008 `token_revoked`) within about a second on every node, with one
//! node or several; HTTP requests with their tokens fail at once (401 `token_revoked`).
//!
//! Every operation writes an audit event (`target: "melo::audit"`, `event = "admin_…"`) naming
//! uids and session ids only.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn f(store: Arc<dyn melo::Store>, keys: Arc<dyn melo::KeyProvider>) -> Result<(), melo::admin::AdminError> {
//! use melo::admin::Admin;
//! let admin = Admin::new(store, keys);
//! let uid = "53380488".parse().expect("a uid");
//! let revoked = admin.lock(uid).await?;
//! println!("locked; {} sessions revoked", revoked.len());
//! let invite = admin.create_invite(melo::admin::DEFAULT_INVITE_TTL).await?;
//! println!("invite code {} (until {})", invite.code, invite.expires_at);
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::crypto::{CryptoError, KeyProvider, Pii};
use crate::ephemeral::Ephemeral;
use crate::model::{DeviceType, Session, SessionId, Timestamp, UserId};
use crate::store::{Store, StoreCounts, StoreError};

mod invites;

pub use invites::{InviteCode, DEFAULT_INVITE_TTL, MAX_INVITE_TTL, MIN_INVITE_TTL};

/// Sessions [`Admin::sessions`] lists at most (newest first).
pub const SESSIONS_LISTED: u64 = 1000;
/// Revocation notes are kept this long (servers read them within seconds).
const NOTES_KEPT: Duration = Duration::from_secs(86_400);

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No user has this uid.
    #[error("no such user")]
    UserNotFound,
    /// The session is not an active session of that user.
    #[error("no such active session of this user")]
    SessionNotFound,
    /// An invite lifetime outside [`MIN_INVITE_TTL`]..=[`MAX_INVITE_TTL`].
    #[error("invite lifetime must be {min} to {max} seconds", min = MIN_INVITE_TTL.as_secs(), max = MAX_INVITE_TTL.as_secs())]
    InvalidTtl,
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A sealed value did not open with these keys (another key set than the servers').
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
}

/// One session as [`Admin::sessions`] shows it: no device name, no IP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// Session id.
    pub session_id: SessionId,
    /// The device id the client chose.
    pub device_id: String,
    /// Device kind.
    pub device_type: DeviceType,
    /// When the session was created.
    pub created_at: Timestamp,
    /// Last activity (opened from its sealed value; refreshed at most once a minute).
    pub last_activity: Timestamp,
    /// False once revoked or logged out.
    pub active: bool,
}

/// The operator tools over one store (see the module docs).
#[derive(Debug)]
pub struct Admin {
    store: Arc<dyn Store>,
    pii: Pii,
    ephemeral: Option<Arc<dyn Ephemeral>>,
}

impl Admin {
    /// Tools over `store`, with the servers' `keys`.
    pub fn new(store: Arc<dyn Store>, keys: Arc<dyn KeyProvider>) -> Self {
        Self {
            store,
            pii: Pii::new(keys),
            ephemeral: None,
        }
    }

    /// The servers' shared ephemeral state (Redis, as `REDIS_URL` opens it for them), where a
    /// revoked session's CSRF token and link code are deleted. Its keys are blinded exactly as
    /// the servers blind theirs.
    pub fn with_ephemeral(mut self, ephemeral: Arc<dyn Ephemeral>) -> Self {
        self.ephemeral = Some(if ephemeral.in_process() {
            ephemeral
        } else {
            Arc::new(crate::ephemeral::blind::Blinded::new(
                ephemeral,
                self.pii.clone(),
            ))
        });
        self
    }

    /// Locks `user`: logins with a password, a device token or a link code answer 403
    /// `account_locked`, and every active session is revoked (their sockets close). Returns the
    /// revoked session ids. Locking a locked user revokes whatever is active again.
    pub async fn lock(&self, user: UserId) -> Result<Vec<SessionId>, AdminError> {
        let revoked = self
            .store
            .lock_user(user, Timestamp::now())
            .await?
            .ok_or(AdminError::UserNotFound)?;
        tracing::info!(target: "melo::audit", event = "admin_user_locked", user_id = %user, sessions_revoked = revoked.len(), "account locked by an operator");
        self.after_revocation(&revoked).await;
        Ok(revoked)
    }

    /// Unlocks `user`: they can log in again. Their sessions stay revoked.
    pub async fn unlock(&self, user: UserId) -> Result<(), AdminError> {
        if !self.store.unlock_user(user).await? {
            return Err(AdminError::UserNotFound);
        }
        tracing::info!(target: "melo::audit", event = "admin_user_unlocked", user_id = %user, "account unlocked by an operator");
        Ok(())
    }

    /// Whether `user` is locked.
    pub async fn is_locked(&self, user: UserId) -> Result<bool, AdminError> {
        self.store
            .user_locked(user)
            .await?
            .ok_or(AdminError::UserNotFound)
    }

    /// `user`'s sessions, active and revoked, newest first (at most [`SESSIONS_LISTED`]).
    pub async fn sessions(&self, user: UserId) -> Result<Vec<SessionInfo>, AdminError> {
        if self.store.user_locked(user).await?.is_none() {
            return Err(AdminError::UserNotFound);
        }
        let sessions = self.store.all_sessions_of(user, SESSIONS_LISTED).await?;
        let list = sessions
            .iter()
            .map(|s| self.info(s))
            .collect::<Result<Vec<_>, _>>()?;
        tracing::info!(target: "melo::audit", event = "admin_sessions_listed", user_id = %user, sessions = list.len(), "sessions listed by an operator");
        Ok(list)
    }

    fn info(&self, s: &Session) -> Result<SessionInfo, AdminError> {
        let row = format!("{}:{}", s.user, s.device_id);
        let last = self
            .pii
            .open_string("sessions", "last_activity", &row, &s.last_activity)?;
        Ok(SessionInfo {
            session_id: s.id,
            device_id: s.device_id.to_string(),
            device_type: s.device_type,
            created_at: s.created_at,
            last_activity: Timestamp::from_millis(last.parse().unwrap_or(0)),
            active: s.active,
        })
    }

    /// Revokes the active session `only` of `user`, or with `None` every active one; their
    /// sockets close. Returns the revoked ids (none when `user` has no active session);
    /// [`AdminError::SessionNotFound`] when `only` is not an active session of `user`.
    pub async fn revoke(
        &self,
        user: UserId,
        only: Option<SessionId>,
    ) -> Result<Vec<SessionId>, AdminError> {
        if self.store.user_locked(user).await?.is_none() {
            return Err(AdminError::UserNotFound);
        }
        let revoked = self
            .store
            .revoke_noted(user, only, Timestamp::now())
            .await?;
        if only.is_some() && revoked.is_empty() {
            return Err(AdminError::SessionNotFound);
        }
        match only {
            Some(id) => {
                tracing::info!(target: "melo::audit", event = "admin_session_revoked", user_id = %user, session_id = %id, "session revoked by an operator");
            }
            None => {
                tracing::info!(target: "melo::audit", event = "admin_sessions_revoked", user_id = %user, sessions_revoked = revoked.len(), "every session revoked by an operator");
            }
        }
        self.after_revocation(&revoked).await;
        Ok(revoked)
    }

    /// What revocation means beyond the store flag, as the servers' own revocation does it:
    /// queues dropped, CSRF tokens and link codes deleted; then old notes purged. Best effort
    /// (the revocation itself is written): failures are logged.
    async fn after_revocation(&self, revoked: &[SessionId]) {
        for id in revoked {
            if let Err(e) = self.store.drop_queue(*id).await {
                tracing::warn!(error = %e, session_id = %id, "queue of a revoked session not dropped");
            }
            if let Some(eph) = &self.ephemeral {
                crate::service::sessions::forget_session_secrets(eph.as_ref(), *id).await;
            }
        }
        let before =
            Timestamp::from_millis(Timestamp::now().millis() - NOTES_KEPT.as_millis() as i64);
        if let Err(e) = self.store.purge_revocation_notes(before).await {
            tracing::warn!(error = %e, "old revocation notes not purged");
        }
    }

    /// Counts of what the store holds (numbers only; each an index scan on the SQL stores).
    pub async fn stats(&self) -> Result<StoreCounts, AdminError> {
        let counts = self.store.counts(Timestamp::now()).await?;
        tracing::info!(target: "melo::audit", event = "admin_stats_read", "store counts read by an operator");
        Ok(counts)
    }
}
