//! Call frames: refusal reasons, the signal vocabulary (both spellings of PROTOCOL §5.7) and
//! the frames the server sends.

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::model::{Timestamp, UserId};

/// Why a call frame was refused (the `error` reason on the socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// No active call of the sender, or the sender's device is not engaged in it.
    NotFound,
    /// The caller is already in a call.
    InProgress,
    /// Calls connect accepted contacts only.
    NotAContact,
    /// The target is the caller.
    InvalidTarget,
    /// The frame is malformed; the text says how.
    Invalid(&'static str),
    /// A backend failed.
    Unavailable,
}

impl CallError {
    /// The PROTOCOL reason code.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotFound => "call_not_found",
            Self::InProgress => "call_in_progress",
            Self::NotAContact => "not_a_contact",
            Self::InvalidTarget => "invalid_target",
            Self::Invalid(_) => "invalid_frame",
            Self::Unavailable => "internal_error",
        }
    }

    /// Human-readable message.
    pub fn message(self) -> &'static str {
        match self {
            Self::NotFound => "no active call of this device with that peer",
            Self::InProgress => "you are already in a call",
            Self::NotAContact => "calls connect accepted contacts only",
            Self::InvalidTarget => "the target is yourself",
            Self::Invalid(why) => why,
            Self::Unavailable => "internal error",
        }
    }
}

impl From<crate::ephemeral::EphemeralError> for CallError {
    fn from(e: crate::ephemeral::EphemeralError) -> Self {
        tracing::warn!(error = %e, "call state unavailable");
        Self::Unavailable
    }
}

pub(super) type CallResult<T> = Result<T, CallError>;

/// The role of a signal in the state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Signal {
    Start,
    Offer,
    Answer,
    Candidate,
    Ringing,
    Accept,
    Reject,
    Hangup,
    Connected,
    EndState,
}

impl Signal {
    pub(super) fn of_type(kind: &str) -> Option<Self> {
        Some(match kind {
            "call_start" => Self::Start,
            "offer" => Self::Offer,
            "answer" => Self::Answer,
            "candidate" | "ice" => Self::Candidate,
            "ringing" => Self::Ringing,
            "call_accept" | "accept" => Self::Accept,
            "call_reject" | "reject" => Self::Reject,
            "hangup" | "call_end" => Self::Hangup,
            "call_connected" => Self::Connected,
            "call_end_state" => Self::EndState,
            _ => return None,
        })
    }

    pub(super) fn of_call_signal(signal: &str) -> Option<Self> {
        match signal {
            "offer" | "answer" | "candidate" | "ice" | "ringing" | "accept" | "reject"
            | "hangup" => Self::of_type(signal),
            _ => None,
        }
    }
}

/// The frame types this service handles.
pub fn is_call_frame(kind: &str) -> bool {
    kind == "call_signal" || Signal::of_type(kind).is_some()
}

#[derive(Serialize)]
struct CallState<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    call_id: &'a str,
    state: &'static str,
    from: UserId,
    to: UserId,
    ts: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

pub(super) fn media_of(frame: &Map<String, Value>) -> CallResult<String> {
    let media = frame
        .get("media")
        .or_else(|| frame.get("payload").and_then(|p| p.get("media")));
    match media {
        None | Some(Value::Null) => Ok("audio".into()),
        Some(Value::String(m)) if m == "audio" || m == "video" => Ok(m.clone()),
        Some(_) => Err(CallError::Invalid("media must be audio or video")),
    }
}

/// The sender's object with `call_id`, `from` and `ts` added (and `media` for `call_start`).
pub(super) fn forwarded(
    mut frame: Map<String, Value>,
    call_id: &str,
    from: UserId,
    media: Option<&str>,
) -> Bytes {
    frame.insert("call_id".into(), call_id.into());
    frame.insert(
        "from".into(),
        serde_json::to_value(from).unwrap_or_default(),
    );
    if let Some(m) = media {
        frame.insert("media".into(), m.into());
    }
    frame.insert(
        "ts".into(),
        serde_json::to_value(Timestamp::now()).unwrap_or_default(),
    );
    super::frames::to_bytes(&frame)
}

pub(super) fn state_frame(
    call_id: &str,
    state: &'static str,
    from: UserId,
    to: UserId,
    reason: Option<&'static str>,
) -> Bytes {
    super::frames::to_bytes(&CallState {
        kind: "call_state",
        call_id,
        state,
        from,
        to,
        ts: Timestamp::now(),
        reason,
    })
}
