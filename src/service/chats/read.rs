//! Read markers (docs/protocol.md §4.5 `POST /status/read`, §5.6 `messages_read`): the last message a
//! member has read in a chat, kept durably by the store and moved forward only.
//!
//! Who hears of a move: the caller's own online devices always; in a group chat also the other
//! members' online devices; in a channel nobody else (its members do not see each other, and a
//! channel's thousands of subscribers must not each cost a frame to every other).

use std::collections::HashMap;

use super::ChatsService;
use crate::model::{ChatKind, MessageId, Timestamp, UserId};
use crate::service::frames::{self, MessagesRead, ServerFrame};
use crate::service::{Authenticated, Error, Result};
use crate::store::ReadMarker;

impl ChatsService {
    /// `POST /status/read`: moves the caller's marker in `chat_id` to `message_id` when that
    /// message is newer (by send time, then id) than the one marked, and tells the audience
    /// (module docs) with `messages_read`. `NotAMember` unless the caller is a member (unknown
    /// chats included); `MessageNotFound` unless the message exists in that chat. Returns
    /// whether the marker moved.
    pub(crate) async fn mark_read(
        &self,
        auth: &Authenticated,
        chat_id: i64,
        message_id: MessageId,
    ) -> Result<bool> {
        let store = &self.core.store;
        if store.member(chat_id, auth.user).await?.is_none() {
            return Err(Error::NotAMember);
        }
        let Some(kind) = self.core.chat_kind(chat_id).await? else {
            return Err(Error::NotAMember);
        };
        let message = match store.message(message_id).await? {
            Some(m) if m.chat_id == Some(chat_id) => m,
            _ => return Err(Error::MessageNotFound),
        };
        let id = message_id.to_string();
        let marker = ReadMarker {
            message_id: id.clone(),
            at: message.created_at,
        };
        if !store
            .advance_read_marker(auth.user, chat_id, &marker)
            .await?
        {
            return Ok(false);
        }
        let frame = frames::to_bytes(&ServerFrame::MessagesRead(MessagesRead {
            user_id: auth.user,
            chat_id,
            last_read_message_id: &id,
            timestamp: Timestamp::now(),
        }));
        if kind == ChatKind::Chat {
            for member in self.core.chat_member_ids(chat_id).await?.iter() {
                if *member != auth.user {
                    self.core.send_ephemeral(*member, &frame, None);
                }
            }
        }
        self.core.send_ephemeral(auth.user, &frame, None);
        Ok(true)
    }

    /// The caller's markers in `chats` (one store read), by chat id.
    pub(super) async fn markers_of(
        &self,
        user: UserId,
        chats: &[i64],
    ) -> Result<HashMap<i64, String>> {
        if chats.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(self
            .core
            .store
            .read_markers(user, chats)
            .await?
            .into_iter()
            .map(|(chat, m)| (chat, m.message_id))
            .collect())
    }
}
