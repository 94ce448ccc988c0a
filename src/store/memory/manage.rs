//! Message management (edit, delete, pin, react) and chat history of the memory backend; the
//! [`MessageStore`](crate::store::MessageStore) impl in `messages.rs` delegates here.

use std::collections::BTreeSet;

use super::messages::MessageMaps;
use crate::model::{MessageId, Timestamp, UserId};
use crate::store::{HistoryPageSpec, HistoryRows};

impl MessageMaps {
    /// See [`MessageStore::chat_history`](crate::store::MessageStore::chat_history).
    pub(super) fn chat_history(
        &self,
        chat_id: i64,
        before: Option<MessageId>,
        page: HistoryPageSpec,
    ) -> HistoryRows {
        match self.chat_index.get(&chat_id) {
            None => HistoryRows::default(),
            Some(set) => self.history_page(&set, before, page),
        }
    }

    /// One history page over a conversation's ids (see
    /// [`MessageStore::dm_history`](crate::store::MessageStore::dm_history)).
    pub(super) fn history_page(
        &self,
        set: &BTreeSet<MessageId>,
        before: Option<MessageId>,
        page: HistoryPageSpec,
    ) -> HistoryRows {
        let iter: Box<dyn Iterator<Item = &MessageId>> = match before {
            Some(bf) => Box::new(set.range(..bf).rev()),
            None => Box::new(set.iter().rev()),
        };
        let mut rows = HistoryRows::default();
        let mut bytes = 0;
        let ids = iter.skip(usize::try_from(page.skip).unwrap_or(usize::MAX));
        for id in ids.take(usize::try_from(page.take).unwrap_or(usize::MAX)) {
            let Some(m) = self.messages.get(id).map(|m| m.clone()) else {
                continue;
            };
            bytes += m.content_bytes();
            if bytes > page.max_bytes && !rows.messages.is_empty() {
                rows.cut = true;
                break;
            }
            rows.messages.push(m);
        }
        rows
    }

    /// See [`MessageStore::edit_message`](crate::store::MessageStore::edit_message).
    pub(super) fn edit(&self, id: MessageId, payload: &str, at: Timestamp) -> bool {
        match self.messages.get_mut(&id) {
            Some(mut m) if !m.deleted => {
                m.payload = payload.to_owned();
                m.edited_at = Some(at);
                true
            }
            _ => false,
        }
    }

    /// See [`MessageStore::delete_message`](crate::store::MessageStore::delete_message).
    pub(super) fn delete(&self, id: MessageId) -> bool {
        match self.messages.get_mut(&id) {
            Some(mut m) => {
                m.deleted = true;
                m.payload.clear();
                m.signature = None;
                true
            }
            None => false,
        }
    }

    /// See [`MessageStore::set_pinned`](crate::store::MessageStore::set_pinned).
    pub(super) fn pin(&self, id: MessageId, pinned: bool) -> bool {
        match self.messages.get_mut(&id) {
            Some(mut m) => {
                m.pinned = pinned;
                true
            }
            None => false,
        }
    }

    /// See [`MessageStore::set_reaction`](crate::store::MessageStore::set_reaction).
    pub(super) fn react(&self, id: MessageId, user: UserId, reaction: Option<&str>) -> bool {
        let Some(mut m) = self.messages.get_mut(&id) else {
            return false;
        };
        let current = m
            .reactions
            .iter()
            .find(|(_, users)| users.contains(&user))
            .map(|(emoji, _)| emoji.clone());
        if current.as_deref() == reaction {
            return true;
        }
        if let Some(old) = current {
            if let Some(users) = m.reactions.get_mut(&old) {
                users.retain(|u| *u != user);
                if users.is_empty() {
                    m.reactions.remove(&old);
                }
            }
        }
        if let Some(new) = reaction {
            m.reactions.entry(new.to_owned()).or_default().push(user);
        }
        true
    }
}
