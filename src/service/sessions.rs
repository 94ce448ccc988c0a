//! Sessions of a user: list, revoke one, revoke all others, log out (docs/protocol.md §3.2, §4.2).

use std::sync::Arc;

use serde::Serialize;

use super::{Authenticated, Core, Error, Result};
use crate::ephemeral::Ephemeral;
use crate::model::{DeviceType, Session, SessionId, Timestamp, UserId};

/// One active session as `GET /sessions` shows it.
#[derive(Debug, Serialize)]
pub(crate) struct SessionView {
    /// Session id.
    pub id: SessionId,
    /// Device id.
    pub device_id: String,
    /// Device kind.
    pub device_type: DeviceType,
    /// First 100 chars of the last login's User-Agent.
    pub device_name: String,
    /// Client IP of the last login.
    pub ip_address: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last activity (refreshed at most once a minute).
    pub last_activity: Timestamp,
    /// The session of this request.
    pub is_current: bool,
}

/// Session management.
#[derive(Clone, Debug)]
pub(crate) struct SessionsService {
    core: Arc<Core>,
    calls: super::calls::CallsService,
}

impl SessionsService {
    pub(crate) fn new(core: Arc<Core>, calls: super::calls::CallsService) -> Self {
        Self { core, calls }
    }

    fn view(&self, s: &Session, current: SessionId) -> Result<SessionView> {
        let row = format!("{}:{}", s.user, s.device_id);
        let open = |col: &str, v: &[u8]| self.core.pii.open_string("sessions", col, &row, v);
        let last = open("last_activity", &s.last_activity)?
            .parse::<i64>()
            .unwrap_or(0);
        Ok(SessionView {
            id: s.id,
            device_id: s.device_id.to_string(),
            device_type: s.device_type,
            device_name: open("device_name", &s.device_name)?,
            ip_address: open("ip", &s.ip)?,
            created_at: s.created_at,
            last_activity: Timestamp::from_millis(last),
            is_current: s.id == current,
        })
    }

    /// Active sessions, most recent activity first.
    pub(crate) async fn list(&self, auth: &Authenticated) -> Result<Vec<SessionView>> {
        let sessions = self.core.store.sessions_of(auth.user).await?;
        let mut views = sessions
            .iter()
            .map(|s| self.view(s, auth.session))
            .collect::<Result<Vec<_>>>()?;
        views.sort_by(|a, b| b.last_activity.cmp(&a.last_activity).then(b.id.cmp(&a.id)));
        Ok(views)
    }

    /// Everything revocation means beyond the store flag (session `id` of `user`, ended by
    /// session `by`): the queue goes, open sockets close, the CSRF token and any link code the
    /// session made stop working, its calls end.
    pub(crate) async fn revoked(&self, user: UserId, id: SessionId, by: SessionId) {
        tracing::info!(target: "melo::audit", event = "session_revoked", user_id = %user, session_id = %id, by_session = %by, "session revoked");
        self.core.sessions_changed(user);
        if let Err(e) = self.core.store.drop_queue(id).await {
            tracing::warn!(error = %e, session_id = %id, "queue of a revoked session not dropped");
        }
        self.ended(user, id).await;
    }

    /// What ends with a session besides its rows (a revocation, an erased account): its CSRF
    /// token and link code stop working, its sockets close on every node (1008
    /// `token_revoked`), its calls end.
    pub(crate) async fn ended(&self, user: UserId, id: SessionId) {
        forget_session_secrets(self.core.ephemeral.as_ref(), id).await;
        self.core.close_session(user, id, 1008, "token_revoked");
        self.calls.session_revoked(user, id).await;
    }

    /// Revokes one other session of the caller.
    pub(crate) async fn revoke(&self, auth: &Authenticated, id: SessionId) -> Result<()> {
        if id == auth.session {
            return Err(Error::CannotRevokeCurrent);
        }
        if !self.core.store.revoke_session(auth.user, id).await? {
            return Err(Error::NotFound);
        }
        self.revoked(auth.user, id, auth.session).await;
        Ok(())
    }

    /// Revokes every other session of the caller; returns how many.
    pub(crate) async fn revoke_others(&self, auth: &Authenticated) -> Result<usize> {
        let ids = self
            .core
            .store
            .revoke_sessions_except(auth.user, Some(auth.session))
            .await?;
        for id in &ids {
            self.revoked(auth.user, *id, auth.session).await;
        }
        Ok(ids.len())
    }

    /// Revokes the caller's own session.
    pub(crate) async fn logout(&self, auth: &Authenticated) -> Result<()> {
        self.core
            .store
            .revoke_session(auth.user, auth.session)
            .await?;
        self.revoked(auth.user, auth.session, auth.session).await;
        Ok(())
    }
}

/// Deletes the ephemeral state a revoked session held: its CSRF token and any link code it
/// made. Best effort: both also stop working without it (they are checked against the session),
/// and expire on their own.
pub(crate) async fn forget_session_secrets(eph: &dyn Ephemeral, id: SessionId) {
    let _ = eph.delete(&format!("csrf:{id}")).await;
    // Redemption also checks that the issuing session is alive; this frees the entry now.
    if let Ok(Some(tag)) = eph.take(&format!("linksess:{id}")).await {
        if let Ok(tag) = std::str::from_utf8(&tag) {
            let _ = eph.delete(&format!("link:{tag}")).await;
        }
    }
}
