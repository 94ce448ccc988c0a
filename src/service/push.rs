//! Push registrations and content-free notifications to devices without an open socket
//! (docs/protocol.md §4.9).
//!
//! Sending never blocks the caller: [`PushService::notify`] hands the work to a task, at most
//! 256 (`MAX_DISPATCH`) at a time, which looks the registrations up and starts one delivery per
//! device. Deliveries are bounded three ways: at most 256 (`MAX_IN_FLIGHT`) requests run at once,
//! at most 16 per endpoint host (`MAX_PER_HOST`, so a slow host delays only its own pushes), and
//! a delivery whose host is busy waits (without a global permit) in a bounded queue: 64 per host,
//! 1024 in all, 10 s at most. Beyond any bound a notification is dropped and counted — pushes are
//! a best-effort wake-up, the queue stays the truth. Message pushes are coalesced per device
//! (`PUSH_COALESCE_SECONDS`), and no event is pushed twice to one device.
//!
//! A web endpoint must be `https` on a host with public addresses only (amended §4.9): checked
//! here at registration, and again at each delivery by the provider.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::push_hosts::HostLimits;
use super::{Authenticated, Core, Error, FieldError, Result};
use crate::metrics::PushResult;
use crate::model::{SessionId, UserId};
use crate::push::address::{check_host, endpoint_host, AddressError};
use crate::push::{Notification, PushError, PushEvent, PushSubscription};

/// Notifications being looked up and dispatched at once, at most.
const MAX_DISPATCH: usize = 256;
/// Push requests in flight at once, at most.
pub(crate) const MAX_IN_FLIGHT: usize = 256;
/// Deliveries waiting for their host at once, at most.
const MAX_QUEUED: usize = 1024;
/// Longest wait of a delivery for its host.
const HOST_WAIT: Duration = Duration::from_secs(10);
/// Deadline of the endpoint host lookup at registration.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest accepted endpoint URL / token.
const MAX_ENDPOINT: usize = 2048;
/// Longest accepted key field.
const MAX_KEY: usize = 256;

/// `POST /register_push` body.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RegisterPush {
    /// `web` (default), `android` or `ios`.
    #[serde(default)]
    pub platform: Option<String>,
    /// Web Push subscription (platform `web`).
    #[serde(default)]
    pub subscription: Option<WebSubscriptionInput>,
    /// Native push token (platforms `android`, `ios`).
    #[serde(default, alias = "token")]
    pub push_token: Option<String>,
}

impl RegisterPush {
    /// The subscription a valid body describes; `allow_http` is `push.allow_http`.
    pub(crate) fn check(self, allow_http: bool) -> Result<PushSubscription> {
        let sub = match self.platform.as_deref().unwrap_or("web") {
            "web" => {
                let Some(s) = self.subscription else {
                    return Err(invalid("subscription", "required for platform web"));
                };
                let endpoint = s.endpoint.trim();
                if endpoint.chars().count() < 10 || endpoint.len() > MAX_ENDPOINT {
                    return Err(invalid(
                        "subscription.endpoint",
                        "must be 10 to 2048 characters",
                    ));
                }
                let http_ok = allow_http && endpoint.starts_with("http://");
                if !(endpoint.starts_with("https://") || http_ok)
                    || endpoint_host(endpoint).is_none()
                {
                    return Err(invalid("subscription.endpoint", "must be an https URL"));
                }
                for (field, v) in [
                    ("subscription.keys.p256dh", &s.keys.p256dh),
                    ("subscription.keys.auth", &s.keys.auth),
                ] {
                    if v.is_empty() || v.len() > MAX_KEY {
                        return Err(invalid(field, "must be 1 to 256 characters"));
                    }
                }
                PushSubscription::Web {
                    endpoint: endpoint.to_owned(),
                    p256dh: s.keys.p256dh,
                    auth: s.keys.auth,
                }
            }
            p @ ("android" | "ios") => {
                let token = self.push_token.unwrap_or_default();
                if token.trim().is_empty() || token.len() > MAX_ENDPOINT {
                    return Err(invalid("push_token", "must be 1 to 2048 characters"));
                }
                if p == "android" {
                    PushSubscription::Android { token }
                } else {
                    PushSubscription::Ios { token }
                }
            }
            _ => return Err(invalid("platform", "must be web, android or ios")),
        };
        Ok(sub)
    }
}

/// A browser's `PushSubscription.toJSON()`.
#[derive(Debug, Deserialize)]
pub(crate) struct WebSubscriptionInput {
    /// Push service URL.
    pub endpoint: String,
    /// `p256dh` and `auth`.
    pub keys: WebKeysInput,
}

/// Keys of a Web Push subscription.
#[derive(Debug, Deserialize)]
pub(crate) struct WebKeysInput {
    /// Client public key, base64url.
    pub p256dh: String,
    /// Client auth secret, base64url.
    pub auth: String,
}

/// Push registrations and notification dispatch.
#[derive(Clone, Debug)]
pub(crate) struct PushService {
    core: Arc<Core>,
    dispatch: Arc<Semaphore>,
    in_flight: Arc<Semaphore>,
    queued: Arc<Semaphore>,
    hosts: HostLimits,
    /// Last message push per device on this node: skips the shared coalescing check (and the
    /// spawn) for a device pushed within the window.
    recent: Arc<DashMap<SessionId, Instant>>,
    dropped: Arc<AtomicU64>,
}

fn invalid(field: &str, problem: &str) -> Error {
    Error::Validation(vec![FieldError::new(field, problem)])
}

impl PushService {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self {
            core,
            dispatch: Arc::new(Semaphore::new(MAX_DISPATCH)),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            queued: Arc::new(Semaphore::new(MAX_QUEUED)),
            hosts: HostLimits::default(),
            recent: Arc::new(DashMap::new()),
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    fn drop_one(&self, why: &'static str) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.core.metrics.push(PushResult::Dropped);
        tracing::warn!(why, "push notification dropped");
    }

    /// Refuses an endpoint whose host does not resolve to public addresses only (unless
    /// `PUSH_ALLOW_PRIVATE`). The endpoint is never logged or echoed.
    async fn check_endpoint(&self, host: &str, port: u16) -> Result<()> {
        if self.core.config.push.allow_private {
            return Ok(());
        }
        match check_host(host, port, LOOKUP_TIMEOUT).await {
            Ok(()) => Ok(()),
            Err(AddressError::NotPublic | AddressError::NoAddress) => {
                Err(Error::InvalidSubscription)
            }
            Err(AddressError::Timeout) => {
                Err(Error::Unavailable("push endpoint lookup timed out".into()))
            }
        }
    }

    /// Registers push for the calling device, replacing its previous registration.
    pub(crate) async fn register(&self, auth: &Authenticated, req: RegisterPush) -> Result<()> {
        let sub = req.check(self.core.config.push.allow_http)?;
        if let PushSubscription::Web { endpoint, .. } = &sub {
            let Some((host, port)) = endpoint_host(endpoint) else {
                return Err(invalid("subscription.endpoint", "must be an https URL"));
            };
            self.check_endpoint(&host, port).await?;
        }
        let plain = serde_json::to_vec(&sub).map_err(|e| Error::Internal(e.to_string()))?;
        let sealed =
            self.core
                .pii
                .seal("push", "subscription", &auth.session.0.to_string(), &plain)?;
        if !self
            .core
            .store
            .set_push(auth.user, auth.session, &sealed)
            .await?
        {
            return Err(Error::TokenRevoked);
        }
        self.recent.remove(&auth.session);
        Ok(())
    }

    /// Pushes `event` to those of `sessions` (devices of `user` without a socket) that have a
    /// registration. Returns at once; delivery runs in the background.
    pub(crate) fn notify(
        &self,
        user: UserId,
        sessions: &[SessionId],
        event: PushEvent,
        urgent: bool,
    ) {
        let coalesce = Duration::from_secs(self.core.config.push.coalesce_seconds);
        let sessions: Vec<SessionId> = if matches!(event, PushEvent::Message { .. }) {
            let now = Instant::now();
            sessions
                .iter()
                .copied()
                .filter(|s| {
                    let mut fresh = true;
                    self.recent
                        .entry(*s)
                        .and_modify(|t| {
                            if now.duration_since(*t) < coalesce {
                                fresh = false;
                            } else {
                                *t = now;
                            }
                        })
                        .or_insert(now);
                    fresh
                })
                .collect()
        } else {
            sessions.to_vec()
        };
        if sessions.is_empty() {
            return;
        }
        if self.recent.len() > 100_000 {
            self.recent
                .retain(|_, t| Instant::now().duration_since(*t) < coalesce);
        }
        let Ok(permit) = self.dispatch.clone().try_acquire_owned() else {
            self.drop_one("push dispatch saturated");
            return;
        };
        let this = self.clone();
        self.core.background.spawn(async move {
            this.deliver(user, &sessions, event, urgent).await;
            drop(permit);
        });
    }

    async fn deliver(&self, user: UserId, sessions: &[SessionId], event: PushEvent, urgent: bool) {
        let regs = match self.core.store.push_registrations(user).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "push registrations unavailable");
                return;
            }
        };
        let cfg = &self.core.config;
        let ttl = match event {
            PushEvent::Call { .. } => cfg.realtime.call_ring_timeout,
            _ => cfg.push.ttl_secs,
        };
        let (dedupe, window) = match &event {
            PushEvent::Message { .. } => (
                "message".to_owned(),
                Duration::from_secs(cfg.push.coalesce_seconds.max(1)),
            ),
            PushEvent::ContactRequest { from } => {
                (format!("contact:{from}"), Duration::from_secs(60))
            }
            PushEvent::Call { call_id, .. } => {
                (format!("call:{call_id}"), Duration::from_secs(ttl.max(1)))
            }
        };
        let n = Arc::new(Notification {
            event,
            user,
            ttl: u32::try_from(ttl).unwrap_or(u32::MAX),
            urgent,
        });
        for (session, sealed) in regs.iter().filter(|(s, _)| sessions.contains(s)) {
            // Shared across nodes: one push per device per event (per window for messages).
            let k = format!("push:sent:{}:{dedupe}", session.0);
            match self.core.ephemeral.set_if_absent(&k, b"1", window).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "push de-duplication unavailable");
                    continue;
                }
            }
            let sub = match self
                .core
                .pii
                .open("push", "subscription", &session.0.to_string(), sealed)
                .ok()
                .and_then(|p| serde_json::from_slice::<PushSubscription>(&p).ok())
            {
                Some(s) => s,
                None => {
                    tracing::warn!(session_id = %session, "push registration unreadable");
                    continue;
                }
            };
            self.start(*session, sealed.clone(), sub, n.clone());
        }
    }

    /// Starts one delivery within the bounds (see the module docs); drops it beyond them.
    fn start(
        &self,
        session: SessionId,
        sealed: Vec<u8>,
        sub: PushSubscription,
        n: Arc<Notification>,
    ) {
        // Native tokens go to the embedder's provider: no client-chosen host to limit.
        let ticket = match &sub {
            PushSubscription::Web { endpoint, .. } => {
                let Some((host, _)) = endpoint_host(endpoint) else {
                    self.core.metrics.push(PushResult::Failed);
                    return;
                };
                let Some(ticket) = self.hosts.admit(&host) else {
                    self.drop_one("push endpoint host saturated");
                    return;
                };
                Some(ticket)
            }
            _ => None,
        };
        let running = ticket.as_ref().and_then(|t| t.try_run());
        let waits = ticket.is_some() && running.is_none();
        // A waiting delivery holds a queue place, not one of the global request permits.
        let (flight, queued) = if waits {
            match self.queued.clone().try_acquire_owned() {
                Ok(q) => (None, Some(q)),
                Err(_) => return self.drop_one("push host queue full"),
            }
        } else {
            match self.in_flight.clone().try_acquire_owned() {
                Ok(f) => (Some(f), None),
                Err(_) => return self.drop_one("push dispatch saturated"),
            }
        };
        let this = self.clone();
        self.core.background.spawn(async move {
            let running = match (running, &ticket) {
                (Some(r), _) => Some(r),
                (None, Some(t)) => match tokio::time::timeout(HOST_WAIT, t.run()).await {
                    Ok(Some(r)) => Some(r),
                    _ => return this.drop_one("push endpoint host too slow"),
                },
                (None, None) => None,
            };
            drop(queued);
            let flight = match flight {
                Some(f) => f,
                None => match this.in_flight.clone().try_acquire_owned() {
                    Ok(f) => f,
                    Err(_) => return this.drop_one("push dispatch saturated"),
                },
            };
            this.send(session, &sealed, &sub, &n).await;
            drop(running);
            drop(flight);
            drop(ticket);
        });
    }

    async fn send(
        &self,
        session: SessionId,
        sealed: &[u8],
        sub: &PushSubscription,
        n: &Notification,
    ) {
        match self.core.push.send(sub, n).await {
            Ok(()) => {
                self.core.metrics.push(PushResult::Sent);
                tracing::debug!(session_id = %session, kind = ?n.event.kind(), "pushed");
            }
            Err(e @ (PushError::Gone | PushError::NotPublic)) => {
                let result = if matches!(e, PushError::Gone) {
                    PushResult::Gone
                } else {
                    PushResult::Refused
                };
                self.core.metrics.push(result);
                tracing::info!(session_id = %session, error = %e, "push registration removed");
                if let Err(e) = self.core.store.delete_push(session, sealed).await {
                    tracing::warn!(error = %e, "push registration not removed");
                }
            }
            Err(e) => {
                self.core.metrics.push(PushResult::Failed);
                tracing::warn!(session_id = %session, error = %e, "push failed");
            }
        }
    }

    /// Sessions of `user` without a socket on this node.
    pub(crate) async fn offline_sessions(&self, user: UserId) -> Vec<SessionId> {
        match self.core.session_ids(user).await {
            Ok(ids) => ids
                .iter()
                .copied()
                .filter(|s| !self.core.has_socket(user, *s))
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}
