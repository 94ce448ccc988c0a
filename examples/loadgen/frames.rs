//! The frames the generator writes and the fields of server frames it reads.

use std::borrow::Cow;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;

use super::STAMP;

pub(crate) fn ack(seq: i64) -> Message {
    Message::text(format!(r#"{{"type":"ack_received","up_to_seq":{seq}}}"#))
}

/// The fields of a server frame the generator reads, borrowed from the frame's text where they
/// hold no escapes (the payloads sent here never do); other fields are skipped unparsed.
#[derive(Deserialize)]
pub(crate) struct Frame<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(default)]
    pub(crate) seq: Option<i64>,
    #[serde(borrow, default)]
    pub(crate) payload: Option<Text<'a>>,
}

/// A JSON string, borrowed unless it holds escapes. (serde borrows a `Cow<'a, str>` field marked
/// `#[serde(borrow)]` but not an `Option<Cow<'a, str>>`, which it would always copy: hence the
/// newtype.)
#[derive(Deserialize)]
pub(crate) struct Text<'a>(#[serde(borrow)] pub(crate) Cow<'a, str>);

impl Frame<'_> {
    /// The send instant (ns after `Shared::start`) at the head of a `relay_delivery` payload.
    pub(crate) fn stamp(&self) -> Option<u64> {
        self.payload.as_ref()?.0.get(..STAMP)?.parse().ok()
    }
}

/// A `relay` frame: to a user (`target`) or into a chat (`chat_id`).
#[derive(Serialize)]
pub(crate) struct Relay<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) target: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) chat_id: Option<i64>,
    pub(crate) payload: &'a str,
    pub(crate) client_id: &'a str,
}

impl Relay<'_> {
    pub(crate) fn message(&self) -> Result<Message> {
        Ok(Message::text(serde_json::to_string(self)?))
    }
}
