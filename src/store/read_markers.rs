//! [`ReadMarkerStore`]: durable read markers, the last message each user has read in each chat
//! (docs/protocol.md §4.5 `POST /status/read`, `last_read_message_id` of `GET /chats/list`).
//!
//! A marker only moves forward, ordered by (`at`, `message_id`). Markers are per (user, chat):
//! leaving a chat (or being removed) deletes the user's marker there, erasing an account deletes
//! all of the user's markers, and reads return markers of chats the user is a member of only.

use std::fmt;

use async_trait::async_trait;

use super::StoreResult;
use crate::model::{Timestamp, UserId};

/// The longest message id a marker holds, in bytes (imported markers keep the original
/// server's text).
pub const READ_MARKER_ID_MAX_BYTES: usize = 64;

/// A read marker: the last message a user has read in a chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadMarker {
    /// The message id as clients know it (32 hex for Melo's; imported markers keep the original
    /// server's text, at most [`READ_MARKER_ID_MAX_BYTES`] bytes).
    pub message_id: String,
    /// The send time of that message; markers are ordered by (`at`, `message_id`, bytewise).
    /// Imported markers use `Timestamp` 0 so that any newer read moves them.
    pub at: Timestamp,
}

impl ReadMarker {
    /// Whether `self` is strictly newer than `other` by (`at`, `message_id`).
    pub fn is_newer_than(&self, other: &ReadMarker) -> bool {
        (self.at, self.message_id.as_bytes()) > (other.at, other.message_id.as_bytes())
    }
}

/// Durable read markers: at most one per (user, chat).
///
/// Persists and queries only: membership and message checks are the service's. The stores
/// delete a user's marker in a chat when the membership is removed
/// ([`ChatStore::remove_member`](super::ChatStore::remove_member)) and all of a user's markers
/// on [`EraseStore::erase_user`](super::EraseStore::erase_user).
#[async_trait]
pub trait ReadMarkerStore: Send + Sync + fmt::Debug {
    /// Moves `user`'s marker in `chat` to `marker` when there is none or `marker` is newer by
    /// (`at`, `message_id`); atomically (two concurrent calls never move it back). True when it
    /// moved. An empty `message_id`, or one longer than [`READ_MARKER_ID_MAX_BYTES`], is refused
    /// ([`StoreError::Backend`](super::StoreError::Backend)): the service validates first.
    async fn advance_read_marker(
        &self,
        user: UserId,
        chat: i64,
        marker: &ReadMarker,
    ) -> StoreResult<bool>;
    /// `user`'s markers in those of `chats` that have one and that `user` is a member of, in
    /// any order (an id listed twice is returned once).
    async fn read_markers(
        &self,
        user: UserId,
        chats: &[i64],
    ) -> StoreResult<Vec<(i64, ReadMarker)>>;
}

/// The error of an empty marker id or one over [`READ_MARKER_ID_MAX_BYTES`].
pub(crate) fn check_marker_id(id: &str) -> StoreResult<()> {
    if id.is_empty() || id.len() > READ_MARKER_ID_MAX_BYTES {
        return Err(super::StoreError::Backend(
            "read marker message id empty or over 64 bytes".into(),
        ));
    }
    Ok(())
}
