//! Server → client frames, serialized once. Durable frames are built without `seq`; the hub
//! splices each device's `seq` in (see `hub::with_seq`).

use bytes::Bytes;
use serde::Serialize;

use crate::model::{Message, MessageId, Timestamp, UserId};

/// Serializes a frame; frames are plain structs of strings and numbers, so this cannot fail in
/// practice — a failure yields an `error` frame rather than a panic.
pub(crate) fn to_bytes<T: Serialize>(frame: &T) -> Bytes {
    match serde_json::to_vec(frame) {
        Ok(v) => Bytes::from(v),
        Err(e) => {
            tracing::error!(error = %e, "frame serialization failed");
            Bytes::from_static(br#"{"type":"error","reason":"internal_error","message":"serialization failed","ref":null}"#)
        }
    }
}

/// `relay_delivery` (durable).
#[derive(Serialize)]
pub(crate) struct RelayDelivery<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) message_id: MessageId,
    pub(crate) from: UserId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) to: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) chat_id: Option<i64>,
    pub(crate) payload: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) signature: Option<&'a str>,
    pub(crate) ts: Timestamp,
    #[serde(rename = "self", skip_serializing_if = "std::ops::Not::not")]
    pub(crate) self_copy: bool,
}

impl<'a> RelayDelivery<'a> {
    pub(crate) fn of(m: &'a Message, self_copy: bool) -> Self {
        Self {
            kind: "relay_delivery",
            message_id: m.id,
            from: m.from,
            to: m.to,
            chat_id: m.chat_id,
            payload: &m.payload,
            signature: m.signature.as_deref(),
            ts: m.created_at,
            self_copy,
        }
    }
}

/// `msg_status` (durable `delivered`/`read`, or the ephemeral `queued` reply).
#[derive(Serialize)]
pub(crate) struct MsgStatus<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) message_id: MessageId,
    pub(crate) status: &'static str,
    pub(crate) from: UserId,
    pub(crate) to: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) chat_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_id: Option<&'a str>,
    pub(crate) ts: Timestamp,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) duplicate: bool,
    #[serde(rename = "self", skip_serializing_if = "std::ops::Not::not")]
    pub(crate) self_copy: bool,
}

/// Contact events (durable).
#[derive(Serialize)]
pub(crate) struct ContactEvent<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) from_id: UserId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) from_phone: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) from_nickname: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) secret: Option<bool>,
    pub(crate) ts: Timestamp,
}

/// `key_changed` (durable).
#[derive(Serialize)]
pub(crate) struct KeyChanged<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) user_id: UserId,
    pub(crate) public_e2e_key: &'a str,
    pub(crate) ts: Timestamp,
}

/// `error` (ephemeral reply).
#[derive(Serialize)]
pub(crate) struct ErrorFrame<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) reason: &'a str,
    pub(crate) message: &'a str,
    #[serde(rename = "ref")]
    pub(crate) reference: Option<&'a str>,
}

/// `status_change` (ephemeral).
#[derive(Serialize)]
pub(crate) struct StatusChange {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) user_id: UserId,
    pub(crate) status: &'static str,
    pub(crate) timestamp: Timestamp,
}

/// `typing_start` / `typing_stop` (ephemeral).
#[derive(Serialize)]
pub(crate) struct Typing {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) user_id: UserId,
    pub(crate) chat_id: Option<i64>,
    pub(crate) timestamp: Timestamp,
}
