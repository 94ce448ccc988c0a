//! Content-free push notifications to offline devices.
//!
//! [`PushProvider`] is what the server calls; [`NoopPush`] (the default) drops notifications and
//! [`RecordingPush`] keeps them for tests. The Web Push provider (VAPID, RFC 8291/8292) arrives
//! with the push work behind feature `web-push`.

use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::Serialize;

use crate::model::UserId;

/// A Web Push subscription of one device, as the browser reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushSubscription {
    /// Push service URL.
    pub endpoint: String,
    /// Client public key (base64url P-256 point).
    pub p256dh: String,
    /// Client auth secret (base64url, 16 bytes).
    pub auth: String,
}

/// Why a device is being woken. Notifications never carry message content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PushKind {
    /// New messages are waiting.
    Message,
    /// A contact request arrived.
    ContactRequest,
    /// An incoming call.
    Call,
}

/// One notification to one device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// Kind of event.
    pub kind: PushKind,
    /// Recipient user (for routing and de-duplication; not sent to the push service).
    #[serde(skip)]
    pub user: UserId,
    /// Time-to-live at the push service, seconds.
    pub ttl: u32,
}

/// Errors of a push attempt.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The subscription is gone (404/410): delete it.
    #[error("subscription gone")]
    Gone,
    /// Worth retrying later.
    #[error("transient push failure: {0}")]
    Transient(String),
    /// The request was refused for good (bad subscription, bad keys).
    #[error("push refused: {0}")]
    Rejected(String),
}

/// Sends notifications.
#[async_trait]
pub trait PushProvider: Send + Sync + fmt::Debug + 'static {
    /// Delivers `n` to the device behind `sub`.
    async fn send(&self, sub: &PushSubscription, n: &Notification) -> Result<(), PushError>;
}

/// Drops every notification (the default when no provider is configured).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopPush;

#[async_trait]
impl PushProvider for NoopPush {
    async fn send(&self, _sub: &PushSubscription, _n: &Notification) -> Result<(), PushError> {
        Ok(())
    }
}

/// Keeps every notification it is asked to send; for tests.
#[derive(Debug, Default)]
pub struct RecordingPush {
    sent: Mutex<Vec<(PushSubscription, Notification)>>,
}

impl RecordingPush {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything sent so far, in order.
    pub fn sent(&self) -> Vec<(PushSubscription, Notification)> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl PushProvider for RecordingPush {
    async fn send(&self, sub: &PushSubscription, n: &Notification) -> Result<(), PushError> {
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((sub.clone(), n.clone()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn recording_keeps_order() {
        let r = RecordingPush::new();
        let sub = PushSubscription {
            endpoint: "https://push.example/1".into(),
            p256dh: "k".into(),
            auth: "a".into(),
        };
        let user = UserId::new(12345678).expect("uid");
        for kind in [PushKind::Message, PushKind::Call] {
            r.send(
                &sub,
                &Notification {
                    kind,
                    user,
                    ttl: 60,
                },
            )
            .await
            .expect("send");
        }
        let kinds: Vec<_> = r.sent().into_iter().map(|(_, n)| n.kind).collect();
        assert_eq!(kinds, vec![PushKind::Message, PushKind::Call]);
        NoopPush
            .send(
                &sub,
                &Notification {
                    kind: PushKind::Message,
                    user,
                    ttl: 1,
                },
            )
            .await
            .expect("noop");
    }
}
