//! System messages: written by the server (the embedder, through
//! [`Melo::send_system_message`](crate::Melo::send_system_message)), sent as [`UserId::SYSTEM`]
//! through the normal delivery.

use super::messages::{Recipients, SendOutcome, SendRequest};
use super::{Authenticated, Error, MessagesService, Result};
use crate::hooks::MessageTarget;
use crate::model::{SessionId, UserId};

impl MessagesService {
    /// A system message (sender [`UserId::SYSTEM`]) to a user or to every member of a chat,
    /// through the normal delivery: stored, sent to online sockets, queued for the others.
    pub(crate) async fn send_system(
        &self,
        target: MessageTarget,
        payload: String,
    ) -> Result<SendOutcome> {
        let store = &self.core.store;
        let (to, chat_id) = match target {
            MessageTarget::User(user) => (Some(user), None),
            MessageTarget::Chat(chat) => (None, Some(chat)),
        };
        let req = SendRequest {
            target: to,
            chat_id,
            payload,
            client_id: None,
            signature: None,
        };
        req.check()?;
        let recipients = match target {
            MessageTarget::User(user) => {
                if store.user(user).await?.is_none() {
                    return Err(Error::UserNotFound);
                }
                Recipients {
                    to: Some(user),
                    chat_id: None,
                    users: vec![user],
                    chat_kind: None,
                }
            }
            MessageTarget::Chat(chat) => {
                let Some(found) = store.chat(chat).await? else {
                    return Err(Error::NotFound);
                };
                Recipients {
                    to: None,
                    chat_id: Some(chat),
                    users: self.core.chat_member_ids(chat).await?.to_vec(),
                    chat_kind: Some(found.kind),
                }
            }
        };
        // The system sender has no session: nothing is queued for it, no device is skipped.
        let auth = Authenticated {
            user: UserId::SYSTEM,
            session: SessionId(0),
        };
        self.deliver(&auth, req, recipients, false).await
    }
}
