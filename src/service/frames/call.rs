//! Call frames (docs/protocol.md §5.7): the typed [`CallFrame`] a client sends, and the
//! [`CallForward`] the peer gets. A call frame has exactly the fields §5.7 names — `type`,
//! `target`, `call_id`, `media`, `payload` {`signal`, `sdp`, `candidate`, `media`}, `sdp`,
//! `candidate` (an opaque object) and the common `client_id`; anything else is dropped, so it is
//! never forwarded. SDP is at most 64 KiB and a whole call frame at most 128 KiB (§1.5).

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::client::Refusal;
use super::fields::{opt_raw, opt_str, take_str, Fields, Json, Payload, PayloadFields};
use super::{to_bytes, CallState, ServerFrame};
use crate::model::{Timestamp, UserId};

/// Largest `sdp` (bytes of the string).
pub(crate) const MAX_SDP: usize = 64 * 1024;
/// Largest call frame (bytes of its text).
pub(crate) const MAX_CALL_FRAME: usize = 128 * 1024;

wire_kinds! {
    /// A call frame's `type`, as sent (both spellings of §5.7; forwarded unchanged).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum CallKind {
        CallStart = "call_start",
        CallSignal = "call_signal",
        Offer = "offer",
        Answer = "answer",
        Candidate = "candidate",
        Ice = "ice",
        Ringing = "ringing",
        CallAccept = "call_accept",
        Accept = "accept",
        CallReject = "call_reject",
        Reject = "reject",
        Hangup = "hangup",
        CallEnd = "call_end",
        CallConnected = "call_connected",
        CallEndState = "call_end_state",
    }
}

/// Serialized as its wire spelling (a forwarded frame's `type`, `payload.signal`).
impl Serialize for CallKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl CallKind {
    /// What this type does in the state machine (`None` for `call_signal`: its
    /// `payload.signal` says).
    fn signal(self) -> Option<Signal> {
        Some(match self {
            Self::CallStart => Signal::Start,
            Self::CallSignal => return None,
            Self::Offer => Signal::Offer,
            Self::Answer => Signal::Answer,
            Self::Candidate | Self::Ice => Signal::Candidate,
            Self::Ringing => Signal::Ringing,
            Self::CallAccept | Self::Accept => Signal::Accept,
            Self::CallReject | Self::Reject => Signal::Reject,
            Self::Hangup | Self::CallEnd => Signal::Hangup,
            Self::CallConnected => Signal::Connected,
            Self::CallEndState => Signal::EndState,
        })
    }

    /// A `payload.signal` value: `offer`, `answer`, `candidate`, `ice`, `ringing`, `accept`,
    /// `reject`, `hangup`.
    fn of_payload_signal(s: &str) -> Option<Self> {
        let k = Self::of(s)?;
        matches!(
            k,
            Self::Offer
                | Self::Answer
                | Self::Candidate
                | Self::Ice
                | Self::Ringing
                | Self::Accept
                | Self::Reject
                | Self::Hangup
        )
        .then_some(k)
    }
}

/// The role of a call frame in the state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
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

/// `media` (also stored in the call record).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Media {
    Audio,
    Video,
}

/// The `payload` object of a call frame.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct CallPayload<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) signal: Option<CallKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sdp: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) candidate: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) media: Option<Media>,
}

/// A client's call frame.
#[derive(Clone, Debug)]
pub(crate) struct CallFrame<'a> {
    pub(crate) kind: CallKind,
    /// What the frame does (from `type`, or `payload.signal` for `call_signal`).
    pub(crate) signal: Signal,
    pub(crate) target: UserId,
    pub(crate) call_id: Option<Cow<'a, str>>,
    pub(crate) media: Option<Media>,
    pub(crate) payload: Option<CallPayload<'a>>,
    pub(crate) sdp: Option<Cow<'a, str>>,
    pub(crate) candidate: Option<&'a RawValue>,
    pub(crate) client_id: Option<Cow<'a, str>>,
}

/// A call frame as the peer gets it: the sender's frame with `call_id`, `from` and `ts` added.
#[derive(Serialize)]
pub(crate) struct CallForward<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: CallKind,
    pub(crate) call_id: &'a str,
    pub(crate) from: UserId,
    pub(crate) target: UserId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) media: Option<Media>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) payload: Option<&'a CallPayload<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sdp: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) candidate: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_id: Option<&'a str>,
    pub(crate) ts: Timestamp,
}

impl<'a> CallFrame<'a> {
    /// The call's media: `media`, else `payload.media`, else audio.
    pub(crate) fn media(&self) -> Media {
        self.media
            .or_else(|| self.payload.as_ref().and_then(|p| p.media))
            .unwrap_or(Media::Audio)
    }

    /// The frame forwarded to the peer; `media` replaces the sender's (for `call_start`).
    pub(crate) fn forward(&self, call_id: &str, from: UserId, media: Option<Media>) -> Bytes {
        to_bytes(&ServerFrame::Call(CallForward {
            kind: self.kind,
            call_id,
            from,
            target: self.target,
            media: media.or(self.media),
            payload: self.payload.as_ref(),
            sdp: self.sdp.as_deref(),
            candidate: self.candidate,
            client_id: self.client_id.as_deref(),
            ts: Timestamp::now(),
        }))
    }

    /// The `call_start` the callee gets when a call begins with an offer.
    pub(crate) fn synthesized_start(
        call_id: &str,
        from: UserId,
        callee: UserId,
        media: Media,
    ) -> Bytes {
        to_bytes(&ServerFrame::Call(CallForward {
            kind: CallKind::CallStart,
            call_id,
            from,
            target: callee,
            media: Some(media),
            payload: None,
            sdp: None,
            candidate: None,
            client_id: None,
            ts: Timestamp::now(),
        }))
    }

    /// Decodes a call frame of type `kind` whose text is `len` bytes.
    pub(super) fn decode(kind: CallKind, mut f: Fields<'a>, len: usize) -> Result<Self, Refusal> {
        if len > MAX_CALL_FRAME {
            return Err(Refusal::invalid("a call frame is at most 128 KiB"));
        }
        let payload = match f.payload.take() {
            None | Some(Payload::Other(Json::Null)) => None,
            Some(Payload::Object(p)) => Some(payload(p)?),
            Some(Payload::Other(_)) if kind == CallKind::CallSignal => {
                return Err(Refusal::invalid("call_signal needs payload.signal"))
            }
            Some(Payload::Other(_)) => return Err(Refusal::invalid("payload must be an object")),
        };
        let signal = match kind.signal() {
            Some(s) => s,
            None => payload
                .as_ref()
                .and_then(|p| p.signal)
                .and_then(CallKind::signal)
                .ok_or(Refusal::invalid("call_signal needs payload.signal"))?,
        };
        let target = match &f.target {
            None => return Err(Refusal::invalid("call frames need a target")),
            Some(Json::Str(s)) => s.parse::<UserId>().ok(),
            Some(_) => None,
        }
        .ok_or(Refusal::invalid("target must be a uid"))?;
        let call_id =
            take_str(&mut f.call_id).map_err(|_| Refusal::invalid("call_id must be a string"))?;
        let media = media(&f.media)?;
        let sdp = sdp(&mut f.sdp)?;
        let candidate = candidate(f.candidate)?;
        let client_id = take_str(&mut f.client_id)
            .map_err(|_| Refusal::invalid("client_id must be a string"))?;
        Ok(Self {
            kind,
            signal,
            target,
            call_id,
            media,
            payload,
            sdp,
            candidate,
            client_id,
        })
    }
}

/// A `call_state` frame.
pub(crate) fn call_state(
    call_id: &str,
    state: &'static str,
    from: UserId,
    to: UserId,
    reason: Option<&'static str>,
) -> Bytes {
    to_bytes(&ServerFrame::CallState(CallState {
        call_id,
        state,
        from,
        to,
        ts: Timestamp::now(),
        reason,
    }))
}

fn payload(mut p: PayloadFields<'_>) -> Result<CallPayload<'_>, Refusal> {
    let signal = match &p.signal {
        None | Some(Json::Null) => None,
        Some(Json::Str(s)) => {
            Some(CallKind::of_payload_signal(s).ok_or(Refusal::invalid("unknown payload.signal"))?)
        }
        Some(_) => return Err(Refusal::invalid("call_signal needs payload.signal")),
    };
    Ok(CallPayload {
        signal,
        sdp: sdp(&mut p.sdp)?,
        candidate: candidate(p.candidate)?,
        media: media(&p.media)?,
    })
}

fn media(v: &Option<Json<'_>>) -> Result<Option<Media>, Refusal> {
    match opt_str(v) {
        Ok(None) => Ok(None),
        Ok(Some("audio")) => Ok(Some(Media::Audio)),
        Ok(Some("video")) => Ok(Some(Media::Video)),
        _ => Err(Refusal::invalid("media must be audio or video")),
    }
}

fn sdp<'a>(v: &mut Option<Json<'a>>) -> Result<Option<Cow<'a, str>>, Refusal> {
    match take_str(v) {
        Ok(Some(s)) if s.len() > MAX_SDP => Err(Refusal::invalid("sdp is at most 64 KiB")),
        Ok(s) => Ok(s),
        Err(_) => Err(Refusal::invalid("sdp must be a string")),
    }
}

fn candidate(v: Option<&RawValue>) -> Result<Option<&RawValue>, Refusal> {
    match opt_raw(v) {
        Some(raw) if !raw.get().starts_with('{') => {
            Err(Refusal::invalid("candidate must be an object"))
        }
        other => Ok(other),
    }
}
