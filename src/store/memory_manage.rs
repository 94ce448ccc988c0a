//! Message management (edit, delete, pin, react) and chat history of the memory backend; the
//! [`MessageStore`](super::MessageStore) impl in `memory_messages.rs` delegates here.

use super::memory_messages::MessageMaps;
use crate::model::{Message, MessageId, Timestamp, UserId};

impl MessageMaps {
    /// See [`MessageStore::chat_history`](super::MessageStore::chat_history).
    pub(super) fn chat_history(
        &self,
        chat_id: i64,
        before: Option<MessageId>,
        skip: u64,
        take: u64,
    ) -> Vec<Message> {
        let ids: Vec<MessageId> = match self.chat_index.get(&chat_id) {
            None => return Vec::new(),
            Some(set) => {
                let iter: Box<dyn Iterator<Item = &MessageId>> = match before {
                    Some(bf) => Box::new(set.range(..bf).rev()),
                    None => Box::new(set.iter().rev()),
                };
                iter.skip(usize::try_from(skip).unwrap_or(usize::MAX))
                    .take(usize::try_from(take).unwrap_or(usize::MAX))
                    .copied()
                    .collect()
            }
        };
        ids.into_iter()
            .filter_map(|id| self.messages.get(&id).map(|m| m.clone()))
            .collect()
    }

    /// See [`MessageStore::edit_message`](super::MessageStore::edit_message).
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

    /// See [`MessageStore::delete_message`](super::MessageStore::delete_message).
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

    /// See [`MessageStore::set_pinned`](super::MessageStore::set_pinned).
    pub(super) fn pin(&self, id: MessageId, pinned: bool) -> bool {
        match self.messages.get_mut(&id) {
            Some(mut m) => {
                m.pinned = pinned;
                true
            }
            None => false,
        }
    }

    /// See [`MessageStore::set_reaction`](super::MessageStore::set_reaction).
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
