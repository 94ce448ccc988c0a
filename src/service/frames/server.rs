//! Server → client frames (docs/protocol.md §5.2–§5.7): [`ServerFrame`], one variant per `type`.
//!
//! The enum is internally tagged, so `type` is the first key of every frame: metrics read it
//! from the first bytes, and `hub::with_seq` splices a durable frame's `seq` in front of it.
//! Field order, names and presence rules are the wire format; change them only together with docs/protocol.md.

use std::collections::BTreeMap;

use serde::Serialize;

use super::call::CallForward;
use crate::model::{Message, MessageId, Timestamp, UserId};
use crate::service::{ContactStatus, HistoryItem, WsReason};

/// Every frame the server sends. Durable ones (§5.5) are serialized without `seq`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ServerFrame<'a> {
    // Durable (§5.5).
    /// A message.
    RelayDelivery(RelayDelivery<'a>),
    /// `delivered` / `read` (durable), or the `queued` reply to a message frame (ephemeral).
    MsgStatus(MsgStatus<'a>),
    /// Queue entries that expired or overflowed (§5.3).
    Gap(Gap),
    /// A contact request.
    SubscriptionRequest(ContactEvent<'a>),
    /// A contact request was accepted.
    SubscriptionConfirmed(ContactEvent<'a>),
    /// A contact relationship or request ended.
    SubscriptionRemoved(ContactEvent<'a>),
    /// A message's payload was replaced.
    Edit(MessageEvent<'a>),
    /// A message was deleted.
    Delete(MessageEvent<'a>),
    /// A message was pinned or unpinned.
    Pin(MessageEvent<'a>),
    /// A reaction was set or removed.
    React(MessageEvent<'a>),
    /// Chat membership changed.
    ChatMember(ChatMemberEvent),
    /// A contact's public key changed.
    KeyChanged(KeyChanged<'a>),
    // Ephemeral.
    /// The reply to `ping`.
    Pong(Pong<'a>),
    /// The backlog has been sent (§5.3).
    SyncDone(SyncDone),
    /// A refused frame (§5.2).
    Error(ErrorFrame<'a>),
    /// The reply to `get_history`.
    History(History<'a>),
    /// A contact's presence changed (§5.6).
    StatusChange(StatusChange),
    /// A peer started typing (§5.6).
    TypingStart(Typing),
    /// A peer stopped typing (§5.6).
    TypingStop(Typing),
    /// A member's read marker moved (§4.5, §5.6).
    MessagesRead(MessagesRead<'a>),
    /// Slow mode refused a message (§5.4): a `msg_status` of its own shape.
    #[serde(rename = "msg_status")]
    SlowMode(SlowMode<'a>),
    /// A call changed state (§5.7).
    CallState(CallState<'a>),
    /// A call frame forwarded to the peer (§5.7); it carries its own `type`, first.
    #[serde(untagged)]
    Call(CallForward<'a>),
}

/// The `type` of every [`ServerFrame`] variant but [`ServerFrame::Call`] (which carries a
/// [`CallKind`](super::call::CallKind)'s), each once (`msg_status` has two shapes).
/// `server_tests` checks this list against one frame of every variant.
pub(crate) const SERVER_TYPES: [&str; 21] = [
    "relay_delivery",
    "msg_status",
    "gap",
    "subscription_request",
    "subscription_confirmed",
    "subscription_removed",
    "edit",
    "delete",
    "pin",
    "react",
    "chat_member",
    "key_changed",
    "pong",
    "sync_done",
    "error",
    "history",
    "status_change",
    "typing_start",
    "typing_stop",
    "messages_read",
    "call_state",
];

/// `relay_delivery`.
#[derive(Serialize)]
pub(crate) struct RelayDelivery<'a> {
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
    /// A system message (sender [`UserId::SYSTEM`]): written by the server, not end-to-end
    /// encrypted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) system: bool,
}

impl<'a> RelayDelivery<'a> {
    /// The delivery of a stored message (`self_copy` for the sender's other devices).
    pub(crate) fn of(m: &'a Message, self_copy: bool) -> Self {
        Self {
            message_id: m.id,
            from: m.from,
            to: m.to,
            chat_id: m.chat_id,
            payload: &m.payload,
            signature: m.signature.as_deref(),
            ts: m.created_at,
            self_copy,
            system: m.from == UserId::SYSTEM,
        }
    }
}

/// `msg_status`: `queued`, `delivered` or `read`.
#[derive(Serialize)]
pub(crate) struct MsgStatus<'a> {
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

/// `msg_status` `rate_limited` (slow mode); `chat_id` and `client_id` are always present.
#[derive(Serialize)]
pub(crate) struct SlowMode<'a> {
    /// Always `rate_limited`.
    pub(crate) status: &'static str,
    pub(crate) chat_id: Option<i64>,
    pub(crate) client_id: Option<&'a str>,
    pub(crate) retry_after: u64,
    pub(crate) ts: Timestamp,
}

/// `gap` (its `seq` is the entry's, spliced in like every durable frame's).
#[derive(Serialize)]
pub(crate) struct Gap {
    pub(crate) from_seq: i64,
    pub(crate) to_seq: i64,
    pub(crate) count: u64,
    /// `overflow` | `expired`.
    pub(crate) reason: &'static str,
    pub(crate) ts: Timestamp,
}

/// `subscription_request` / `subscription_confirmed` (with phone and nickname) and
/// `subscription_removed` (without).
#[derive(Clone, Copy, Serialize)]
pub(crate) struct ContactEvent<'a> {
    pub(crate) from_id: UserId,
    /// `Some(None)`: the key is present and null (a phone is never shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) from_phone: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) from_nickname: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) secret: Option<bool>,
    pub(crate) ts: Timestamp,
}

/// `edit`, `delete`, `pin`, `react`.
#[derive(Clone, Copy, Serialize)]
pub(crate) struct MessageEvent<'a> {
    pub(crate) message_id: MessageId,
    pub(crate) from: UserId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) to: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) chat_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) payload: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pinned: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reaction: Option<&'a str>,
    pub(crate) ts: Timestamp,
    #[serde(rename = "self", skip_serializing_if = "std::ops::Not::not")]
    pub(crate) self_copy: bool,
}

/// `chat_member`.
#[derive(Serialize)]
pub(crate) struct ChatMemberEvent {
    pub(crate) chat_id: i64,
    pub(crate) user_id: UserId,
    /// `added` | `removed` | `left` | `role_changed`.
    pub(crate) action: &'static str,
    pub(crate) role: &'static str,
    pub(crate) by: UserId,
    pub(crate) ts: Timestamp,
}

/// `key_changed`.
#[derive(Serialize)]
pub(crate) struct KeyChanged<'a> {
    pub(crate) user_id: UserId,
    pub(crate) public_e2e_key: &'a str,
    pub(crate) ts: Timestamp,
}

/// `pong`: one entry per accepted contact.
#[derive(Serialize)]
pub(crate) struct Pong<'a> {
    pub(crate) contacts_status: &'a BTreeMap<UserId, ContactStatus>,
    pub(crate) server_version: &'a str,
    pub(crate) timestamp: Timestamp,
}

/// `sync_done`.
#[derive(Serialize)]
pub(crate) struct SyncDone {
    pub(crate) count: u64,
    pub(crate) last_seq: i64,
    pub(crate) ts: Timestamp,
}

/// `error`: `ref` is the frame's `client_id`, else its `type`, else null (§5.2).
#[derive(Serialize)]
pub(crate) struct ErrorFrame<'a> {
    pub(crate) reason: WsReason,
    pub(crate) message: &'a str,
    #[serde(rename = "ref")]
    pub(crate) reference: Option<&'a str>,
}

/// `history`: `target` for a DM, `chat_id` for a chat, the other null.
#[derive(Serialize)]
pub(crate) struct History<'a> {
    pub(crate) target: Option<UserId>,
    pub(crate) chat_id: Option<i64>,
    pub(crate) messages: &'a [String],
    pub(crate) items: &'a [HistoryItem],
    pub(crate) has_more: bool,
    pub(crate) next_before: Option<MessageId>,
}

/// `status_change`.
#[derive(Serialize)]
pub(crate) struct StatusChange {
    pub(crate) user_id: UserId,
    /// `online` | `away` | `offline`.
    pub(crate) status: &'static str,
    pub(crate) timestamp: Timestamp,
}

/// `typing_start` / `typing_stop`: `chat_id` null for a DM.
#[derive(Serialize)]
pub(crate) struct Typing {
    pub(crate) user_id: UserId,
    pub(crate) chat_id: Option<i64>,
    pub(crate) timestamp: Timestamp,
}

/// `messages_read`: `user_id`'s read marker in `chat_id` moved to `last_read_message_id`, a
/// message sent at `timestamp`.
#[derive(Serialize)]
pub(crate) struct MessagesRead<'a> {
    pub(crate) user_id: UserId,
    pub(crate) chat_id: i64,
    pub(crate) last_read_message_id: &'a str,
    pub(crate) timestamp: Timestamp,
}

/// `call_state`.
#[derive(Serialize)]
pub(crate) struct CallState<'a> {
    pub(crate) call_id: &'a str,
    pub(crate) state: &'static str,
    pub(crate) from: UserId,
    pub(crate) to: UserId,
    pub(crate) ts: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<&'static str>,
}
