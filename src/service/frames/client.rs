//! Client → server frames (docs/protocol.md §5.4, §5.7): [`ClientFrame`], one variant per `type`.
//!
//! [`Incoming::decode`] reads a frame's text once ([`Fields`]) and then checks each field the
//! frame's type uses, in the order the answers below were always given:
//! `invalid_json` (not JSON, not an object), `invalid_frame` (no string `type`, a missing or
//! mistyped field, a bad uid, both or neither of `target`/`chat_id`) and `unknown_type`.
//! Fields a type does not use are ignored, whatever they hold.

use std::borrow::Cow;

use super::call::{CallFrame, CallKind};
use super::fields::{opt_i64, opt_str, opt_u64, Fields, Json, Payload};
use crate::model::{MessageId, UserId};
use crate::service::{SendRequest, WsReason};

/// `target` xor `chat_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Conversation {
    Direct(UserId),
    Chat(i64),
}

/// `relay`: a message whose payload is a string field.
#[derive(Debug)]
pub(crate) struct Relay<'a> {
    pub(crate) to: Conversation,
    pub(crate) payload: Cow<'a, str>,
    pub(crate) client_id: Option<Cow<'a, str>>,
    pub(crate) signature: Option<Cow<'a, str>>,
}

/// `chat_message`: a message whose payload is the frame's exact text.
#[derive(Debug)]
pub(crate) struct ChatMessage<'a> {
    pub(crate) to: Conversation,
    pub(crate) client_id: Option<Cow<'a, str>>,
    pub(crate) text: &'a str,
}

/// `get_history`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct GetHistory {
    pub(crate) to: Conversation,
    pub(crate) before: Option<MessageId>,
    /// 1–100, default 50.
    pub(crate) limit: u64,
}

/// `ack_received`: at least one of the three.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct AckReceived {
    pub(crate) message_id: Option<MessageId>,
    pub(crate) seq: Option<i64>,
    pub(crate) up_to_seq: Option<i64>,
}

wire_kinds! {
    /// The `type` of a client frame other than a call frame ([`CallKind`]).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum ClientKind {
        Ping = "ping",
        Relay = "relay",
        ChatMessage = "chat_message",
        GetHistory = "get_history",
        AckReceived = "ack_received",
        AckRead = "ack_read",
        TypingStart = "typing_start",
        TypingStop = "typing_stop",
        Presence = "presence",
    }
}

/// A client frame.
#[derive(Debug)]
pub(crate) enum ClientFrame<'a> {
    Ping,
    Relay(Relay<'a>),
    ChatMessage(ChatMessage<'a>),
    GetHistory(GetHistory),
    AckReceived(AckReceived),
    AckRead(MessageId),
    TypingStart(Conversation),
    TypingStop(Conversation),
    /// `presence`: `away` true for `away`, false for `online`.
    Presence {
        away: bool,
    },
    Call(CallFrame<'a>),
}

/// Why a frame is refused: the `error` reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) reason: WsReason,
    pub(crate) message: Cow<'static, str>,
}

impl Refusal {
    /// `invalid_frame`.
    pub(crate) fn invalid(message: &'static str) -> Self {
        Self {
            reason: WsReason::InvalidFrame,
            message: Cow::Borrowed(message),
        }
    }
}

/// A decoded text frame.
#[derive(Debug)]
pub(crate) struct Incoming<'a> {
    /// The `type`, when it is a string.
    pub(crate) kind: Option<Cow<'a, str>>,
    /// The `ref` of an `error` answer: the string `client_id`, else the `type`; for
    /// `unknown_type` the type itself.
    pub(crate) reference: Option<Cow<'a, str>>,
    /// The frame, or why it is refused.
    pub(crate) frame: Result<ClientFrame<'a>, Refusal>,
}

const EXACTLY_ONE: &str = "exactly one of target and chat_id";

impl<'a> Incoming<'a> {
    /// Decodes one text frame.
    pub(crate) fn decode(text: &'a str) -> Self {
        let Ok(mut f) = Fields::read(text) else {
            return Self {
                kind: None,
                reference: None,
                frame: Err(Refusal {
                    reason: WsReason::InvalidJson,
                    message: Cow::Borrowed("frame is not a JSON object"),
                }),
            };
        };
        let client_id = match &f.client_id {
            Some(Json::Str(s)) => Some(s.clone()),
            _ => None,
        };
        let Some(Json::Str(kind)) = f.kind.take() else {
            return Self {
                kind: None,
                reference: client_id,
                frame: Err(Refusal::invalid("missing string field `type`")),
            };
        };
        let frame = ClientFrame::decode(&kind, f, text);
        let reference = match &frame {
            Err(r) if r.reason == WsReason::UnknownType => Some(kind.clone()),
            _ => client_id.or_else(|| Some(kind.clone())),
        };
        Self {
            kind: Some(kind),
            reference,
            frame,
        }
    }
}

impl<'a> ClientFrame<'a> {
    fn decode(kind: &str, mut f: Fields<'a>, text: &'a str) -> Result<Self, Refusal> {
        let Some(known) = ClientKind::of(kind) else {
            return match CallKind::of(kind) {
                Some(k) => CallFrame::decode(k, f, text.len()).map(Self::Call),
                None => Err(Refusal {
                    reason: WsReason::UnknownType,
                    message: format!("unknown frame type {kind:?}").into(),
                }),
            };
        };
        match known {
            ClientKind::Ping => Ok(Self::Ping),
            ClientKind::Relay => relay(&mut f).map(Self::Relay),
            ClientKind::ChatMessage => {
                let (to, client_id) = match (address(&f), take_client_id(&mut f)) {
                    (Ok(to), Ok(client_id)) => (to, client_id),
                    _ => return Err(Refusal::invalid("chat_message needs target or chat_id")),
                };
                let to = to.ok_or(Refusal::invalid(EXACTLY_ONE))?;
                Ok(Self::ChatMessage(ChatMessage {
                    to,
                    client_id,
                    text,
                }))
            }
            ClientKind::GetHistory => history(&f).map(Self::GetHistory),
            ClientKind::AckReceived => ack_received(&f).map(Self::AckReceived),
            ClientKind::AckRead => match opt_str(&f.message_id) {
                Ok(Some(id)) => id.parse().ok(),
                _ => None,
            }
            .map(Self::AckRead)
            .ok_or(Refusal::invalid("ack_read needs a message_id")),
            ClientKind::TypingStart | ClientKind::TypingStop => {
                let to = address(&f)
                    .ok()
                    .flatten()
                    .ok_or(Refusal::invalid(EXACTLY_ONE))?;
                Ok(if known == ClientKind::TypingStart {
                    Self::TypingStart(to)
                } else {
                    Self::TypingStop(to)
                })
            }
            ClientKind::Presence => match &f.status {
                Some(Json::Str(s)) if s == "away" => Ok(Self::Presence { away: true }),
                Some(Json::Str(s)) if s == "online" => Ok(Self::Presence { away: false }),
                _ => Err(Refusal::invalid("status must be online or away")),
            },
        }
    }
}

impl Relay<'_> {
    /// The service request (the one copy of the payload).
    pub(crate) fn into_request(self) -> SendRequest {
        request(
            self.to,
            self.payload.into_owned(),
            self.client_id.map(Cow::into_owned),
            self.signature.map(Cow::into_owned),
        )
    }
}

impl ChatMessage<'_> {
    /// The service request: the frame's text is the payload.
    pub(crate) fn into_request(self) -> SendRequest {
        request(
            self.to,
            self.text.to_owned(),
            self.client_id.map(Cow::into_owned),
            None,
        )
    }
}

fn request(
    to: Conversation,
    payload: String,
    client_id: Option<String>,
    signature: Option<String>,
) -> SendRequest {
    let (target, chat_id) = match to {
        Conversation::Direct(t) => (Some(t), None),
        Conversation::Chat(c) => (None, Some(c)),
    };
    SendRequest {
        target,
        chat_id,
        payload,
        client_id,
        signature,
    }
}

/// `target` (a uid string) and `chat_id` (an integer, or a string of digits): `Ok(None)`
/// unless exactly one names a conversation; `Err` when either is mistyped.
fn address(f: &Fields<'_>) -> Result<Option<Conversation>, ()> {
    let target = match opt_str(&f.target).map_err(|_| ())? {
        Some(s) => Some(s.parse::<UserId>()?),
        None => None,
    };
    let chat = match &f.chat_id {
        None | Some(Json::Null) => None,
        Some(Json::Int(n)) => Some(Some(*n)),
        Some(Json::UInt(n)) => Some(Some(i64::try_from(*n).map_err(|_| ())?)),
        Some(Json::Str(s)) => Some(s.parse::<i64>().ok()),
        Some(_) => return Err(()),
    };
    Ok(match (target, chat) {
        (Some(t), None) => Some(Conversation::Direct(t)),
        (None, Some(Some(n))) if n >= 1 => Some(Conversation::Chat(n)),
        _ => None,
    })
}

fn take_client_id<'a>(f: &mut Fields<'a>) -> Result<Option<Cow<'a, str>>, ()> {
    super::fields::take_str(&mut f.client_id).map_err(|_| ())
}

fn relay<'a>(f: &mut Fields<'a>) -> Result<Relay<'a>, Refusal> {
    let needs = || Refusal::invalid("relay needs target or chat_id and a string payload");
    let to = address(f).map_err(|()| needs())?;
    let Some(Payload::Other(Json::Str(payload))) = f.payload.take() else {
        return Err(needs());
    };
    let client_id = take_client_id(f).map_err(|()| needs())?;
    let signature = super::fields::take_str(&mut f.signature).map_err(|_| needs())?;
    Ok(Relay {
        to: to.ok_or(Refusal::invalid(EXACTLY_ONE))?,
        payload,
        client_id,
        signature,
    })
}

fn history(f: &Fields<'_>) -> Result<GetHistory, Refusal> {
    // The system messages' conversation can be read back (never written to).
    let system = matches!(
        opt_str(&f.target),
        Ok(Some(crate::service::validate::SYSTEM_UID))
    ) && matches!(f.chat_id, None | Some(Json::Null));
    let address = if system {
        Ok(Some(Conversation::Direct(UserId::SYSTEM)))
    } else {
        address(f)
    };
    let (to, before, limit) = match (address, opt_str(&f.before), opt_u64(&f.limit)) {
        (Ok(to), Ok(before), Ok(limit)) => (to, before, limit),
        _ => return Err(Refusal::invalid("get_history needs target or chat_id")),
    };
    let before = match before.map(str::parse::<MessageId>) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(())) => return Err(Refusal::invalid("before must be a message_id")),
    };
    let limit = limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(Refusal::invalid("limit must be 1..=100"));
    }
    Ok(GetHistory {
        to: to.ok_or(Refusal::invalid(EXACTLY_ONE))?,
        before,
        limit,
    })
}

fn ack_received(f: &Fields<'_>) -> Result<AckReceived, Refusal> {
    let (message_id, seq, up_to_seq) = match (
        opt_str(&f.message_id),
        opt_i64(&f.seq),
        opt_i64(&f.up_to_seq),
    ) {
        (Ok(m), Ok(s), Ok(u)) => (m, s, u),
        _ => return Err(Refusal::invalid("ack_received fields are mistyped")),
    };
    let message_id = match message_id.map(str::parse::<MessageId>) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(())) => return Err(Refusal::invalid("message_id must be 32 hex characters")),
    };
    if message_id.is_none() && seq.is_none() && up_to_seq.is_none() {
        return Err(Refusal::invalid(
            "one of message_id, seq, up_to_seq is required",
        ));
    }
    Ok(AckReceived {
        message_id,
        seq,
        up_to_seq,
    })
}
