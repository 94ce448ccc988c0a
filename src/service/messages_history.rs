//! History pages as the service returns them (docs/protocol.md §4.6 "History"): the query, the
//! entries and the page, with the cut that keeps a WebSocket `history` reply within one frame.

use std::collections::BTreeMap;

use serde::Serialize;

use super::frames;
use crate::model::{MessageId, Timestamp, UserId};

/// Which slice of history to read.
#[derive(Clone, Copy, Debug)]
pub(crate) enum HistoryQuery {
    /// `page`/`per_page`.
    Page {
        /// 1-based page.
        page: u64,
        /// Page size.
        per_page: u64,
    },
    /// `before`/`limit`.
    Cursor {
        /// Exclusive upper bound.
        before: Option<MessageId>,
        /// Page size.
        limit: u64,
    },
}

/// One history entry.
#[derive(Debug, Serialize)]
pub(crate) struct HistoryItem {
    /// Id.
    pub message_id: MessageId,
    /// Author.
    pub from: UserId,
    /// DM recipient.
    pub to: Option<UserId>,
    /// Chat.
    pub chat_id: Option<i64>,
    /// Sent at.
    pub ts: Timestamp,
    /// Last edit.
    pub edited_at: Option<Timestamp>,
    /// Deleted (payload erased).
    pub deleted: bool,
    /// Pinned.
    pub pinned: bool,
    /// Reactions: emoji → users, in the order they reacted.
    pub reactions: BTreeMap<String, Vec<UserId>>,
    /// `queued` | `delivered` | `read`, only on DMs sent by the caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
}

/// A history page, oldest → newest.
#[derive(Debug, Serialize)]
pub(crate) struct HistoryPage {
    /// Payloads, parallel to `items`.
    pub messages: Vec<String>,
    /// Entries.
    pub items: Vec<HistoryItem>,
    /// Page (page mode).
    pub page: Option<u64>,
    /// Page size.
    pub per_page: u64,
    /// Messages in the conversation.
    pub total: u64,
    /// Page count (page mode).
    pub pages: Option<u64>,
    /// Older messages exist.
    pub has_more: bool,
    /// Cursor for the next (older) page.
    pub next_before: Option<MessageId>,
}

impl HistoryPage {
    /// Keeps the newest messages whose frame (payloads escaped, items serialized) stays within
    /// `max_frame` bytes, at least one: the WebSocket `history` reply is one frame, and no
    /// server frame passes 2 MiB (docs/protocol.md §1.5). A cut page has `has_more` and its cursor.
    pub(crate) fn fit_frame(&mut self, max_frame: usize) {
        let mut used = 256;
        let mut keep = 0;
        for (payload, item) in self.messages.iter().zip(&self.items).rev() {
            let item_len = serde_json::to_vec(item).map_or(usize::MAX / 4, |v| v.len());
            used += frames::escaped_len(payload) + item_len + 4;
            if used > max_frame && keep > 0 {
                break;
            }
            keep += 1;
        }
        let cut = self.messages.len() - keep;
        if cut > 0 {
            self.messages.drain(..cut);
            self.items.drain(..cut);
            self.has_more = true;
            self.next_before = self.items.first().map(|i| i.message_id);
        }
    }
}
