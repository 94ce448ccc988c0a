//! Content-free push notifications to offline devices.
//!
//! [`PushProvider`] is what the server calls; [`NoopPush`] (the default) drops notifications and
//! [`RecordingPush`] keeps them for tests.
//!
//! With feature `web-push`, `WebPushProvider` delivers to browsers' push services (RFC 8030):
//! the payload is encrypted to the subscription's keys (RFC 8291, `aes128gcm` content coding of
//! RFC 8188) and each request carries a VAPID signature (RFC 8292). [`VapidKey`], the
//! application-server key pair whose public half browsers subscribe with, is always available.
//!
//! Payloads are content-free ([`Notification::payload`]); push errors never carry endpoints,
//! keys or payloads.

pub(crate) mod address;
#[cfg(feature = "web-push")]
mod ece;
mod vapid;
#[cfg(feature = "web-push")]
mod webpush;

pub use address::is_public_ip;
pub use vapid::{VapidError, VapidKey};
#[cfg(feature = "web-push")]
#[cfg_attr(docsrs, doc(cfg(feature = "web-push")))]
pub use webpush::{WebPushOptions, WebPushProvider, WebPushSetupError};

use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::{MessageId, UserId};

/// Where one device receives pushes (docs/protocol.md §4.9 `POST /register_push`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "platform", rename_all = "snake_case")]
pub enum PushSubscription {
    /// A browser's Web Push subscription.
    Web {
        /// Push service URL.
        endpoint: String,
        /// Client public key (base64url of the 65-byte uncompressed P-256 point).
        p256dh: String,
        /// Client auth secret (base64url of 16 bytes).
        auth: String,
    },
    /// An FCM registration token (stored for embedders' providers; Web Push cannot use it).
    Android {
        /// The token.
        token: String,
    },
    /// An APNs device token (stored for embedders' providers; Web Push cannot use it).
    Ios {
        /// The token.
        token: String,
    },
}

/// What a notification announces. Serialized as the content-free JSON body the device receives,
/// e.g. `{"type":"message","message_id":"…","chat_id":null}` (docs/protocol.md §4.9).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PushEvent {
    /// New messages are waiting.
    Message {
        /// The message that triggered the push.
        message_id: MessageId,
        /// Its chat, `null` for direct messages.
        chat_id: Option<i64>,
    },
    /// A contact request arrived.
    ContactRequest {
        /// Who asked.
        from: UserId,
    },
    /// An incoming call.
    Call {
        /// The call.
        call_id: String,
        /// The caller.
        from: UserId,
    },
}

impl PushEvent {
    /// The kind of event.
    pub fn kind(&self) -> PushKind {
        match self {
            Self::Message { .. } => PushKind::Message,
            Self::ContactRequest { .. } => PushKind::ContactRequest,
            Self::Call { .. } => PushKind::Call,
        }
    }
}

/// Kinds of [`PushEvent`].
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// What happened; this (and only this) is the payload the device decrypts.
    pub event: PushEvent,
    /// Recipient user (for routing and logs; not sent to the push service).
    pub user: UserId,
    /// Time-to-live at the push service, seconds.
    pub ttl: u32,
    /// `Urgency` header (RFC 8030): `high` for calls, `normal` otherwise.
    pub urgent: bool,
}

impl Notification {
    /// The JSON body the device receives.
    pub fn payload(&self) -> Vec<u8> {
        serde_json::to_vec(&self.event).unwrap_or_default()
    }
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
    /// The endpoint's host has no public address (docs/protocol.md §4.9, amended): nothing was sent,
    /// and the registration is useless: delete it.
    #[error("push endpoint host has no public address")]
    NotPublic,
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
        let sub = PushSubscription::Web {
            endpoint: "https://push.example/1".into(),
            p256dh: "k".into(),
            auth: "a".into(),
        };
        let user = UserId::new(12345678).expect("uid");
        let call = PushEvent::Call {
            call_id: "c1".into(),
            from: user,
        };
        let request = PushEvent::ContactRequest { from: user };
        for event in [request, call] {
            r.send(
                &sub,
                &Notification {
                    event,
                    user,
                    ttl: 60,
                    urgent: false,
                },
            )
            .await
            .expect("send");
        }
        let kinds: Vec<_> = r.sent().into_iter().map(|(_, n)| n.event.kind()).collect();
        assert_eq!(kinds, vec![PushKind::ContactRequest, PushKind::Call]);
        let body: serde_json::Value =
            serde_json::from_slice(&r.sent()[1].1.payload()).expect("json");
        assert_eq!(
            body,
            serde_json::json!({"type": "call", "call_id": "c1", "from": "12345678"})
        );
        NoopPush
            .send(
                &sub,
                &Notification {
                    event: PushEvent::ContactRequest { from: user },
                    user,
                    ttl: 1,
                    urgent: false,
                },
            )
            .await
            .expect("noop");
    }
}
