//! The WebSocket wire format (docs/protocol.md §5), both directions, as types.
//!
//! - [`ClientFrame`] ([`client`]): every client → server frame, decoded in one pass over the
//!   frame's text ([`fields`]) without building a JSON tree; strings are borrowed from the text.
//!   Call frames are a [`CallFrame`] ([`call`]) with exactly the fields of §5.7.
//! - [`ServerFrame`] ([`server`]): every server → client frame, serialized once by
//!   [`to_bytes`] with `type` first. Durable frames are built without `seq`; the hub splices each
//!   device's `seq` in (see `hub::with_seq`).
//!
//! The transports only move bytes: `ws/client.rs` decodes a frame here and calls one service
//! method per variant; services build [`ServerFrame`]s.

use bytes::Bytes;

/// Declares a fieldless enum of frame `type`s from one list of `Variant = "wire_name"` pairs,
/// with `ALL` (every variant, in declaration order), `as_str` and `of` generated from that
/// list, so the three cannot drift apart (the metrics' frame labels are read from `ALL`).
macro_rules! wire_kinds {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $wire:literal,)+
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            $vis const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The wire spelling.
            $vis fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)+
                }
            }

            /// The variant spelled `kind`.
            $vis fn of(kind: &str) -> Option<Self> {
                match kind {
                    $($wire => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

pub(crate) mod call;
pub(crate) mod client;
#[cfg(test)]
mod client_tests;
mod fields;
#[cfg(test)]
mod kinds_tests;
pub(crate) mod server;
#[cfg(test)]
mod server_tests;

pub(crate) use call::{call_state, CallFrame, Media, Signal};
pub(crate) use client::{ClientFrame, Conversation, Incoming};
pub(crate) use server::*;

/// Every client → server frame `type` the server acts on (docs/protocol.md §5.4, §5.7): what
/// [`Incoming::decode`] accepts; any other `type` is `unknown_type`.
pub(crate) fn client_types() -> impl Iterator<Item = &'static str> {
    let plain = client::ClientKind::ALL.iter().map(|k| k.as_str());
    plain.chain(call::CallKind::ALL.iter().map(|k| k.as_str()))
}

/// Every server → client frame `type` (docs/protocol.md §5.2–§5.7): the tags of [`ServerFrame`] and the
/// call frames it forwards under their own `type`.
pub(crate) fn server_types() -> impl Iterator<Item = &'static str> {
    let plain = server::SERVER_TYPES.iter().copied();
    plain.chain(call::CallKind::ALL.iter().map(|k| k.as_str()))
}

/// Serializes a frame; frames are plain structs of strings and numbers, so this cannot fail in
/// practice — a failure yields an `error` frame rather than a panic.
pub(crate) fn to_bytes(frame: &ServerFrame<'_>) -> Bytes {
    match serde_json::to_vec(frame) {
        Ok(v) => Bytes::from(v),
        Err(e) => {
            tracing::error!(error = %e, "frame serialization failed");
            Bytes::from_static(br#"{"type":"error","reason":"internal_error","message":"serialization failed","ref":null}"#)
        }
    }
}

/// Largest server → client frame (docs/protocol.md §1.5).
pub(crate) const MAX_FRAME_OUT: usize = 2 * 1024 * 1024;

/// Room in a frame for everything but its user-supplied strings (ids, times, field names).
const FRAME_ENVELOPE: usize = 4 * 1024;

/// Bytes `s` takes inside a JSON string once escaped as `serde_json` does (`"` `\` and control
/// characters; everything else is copied).
pub(crate) fn escaped_len(s: &str) -> usize {
    s.len()
        + s.bytes()
            .map(|b| match b {
                b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
                0..=0x1f => 5,
                _ => 0,
            })
            .sum::<usize>()
}

/// True when a message with this payload and signature makes frames of at most
/// [`MAX_FRAME_OUT`] (a `relay_delivery`, an `edit`, a `history` of that message alone).
pub(crate) fn fits_frame(payload: &str, signature: Option<&str>) -> bool {
    escaped_len(payload) + signature.map_or(0, escaped_len) + FRAME_ENVELOPE <= MAX_FRAME_OUT
}
