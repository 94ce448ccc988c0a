//! Message management: edit, delete, pin, react (docs/protocol.md §4.6 "Message management"). Each
//! change is persisted and queued as a durable event for every device of every participant
//! except the calling device (the caller's other devices get it with `self: true`).

use std::sync::Arc;

use super::frames::{self, MessageEvent, ServerFrame};
use super::{Authenticated, Core, Error, Result, MAX_PAYLOAD};
use crate::model::{ChatRole, Message, MessageId, Timestamp, UserId};

/// Longest reaction, in characters.
const MAX_REACTION_CHARS: usize = 32;

/// Which message a management request names, and the optional conversation it must be in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MessageRef {
    /// The message.
    pub message_id: MessageId,
    /// The DM peer, when given.
    pub target: Option<UserId>,
    /// The chat, when given.
    pub chat_id: Option<i64>,
}

/// Edit, delete, pin and react.
#[derive(Clone, Debug)]
pub(crate) struct ManageService {
    core: Arc<Core>,
    delivery: super::DeliveryService,
}

/// A located message and who takes part in its conversation.
struct Located {
    message: Message,
    participants: Vec<UserId>,
    /// The caller's chat role (chats only).
    role: Option<ChatRole>,
}

impl ManageService {
    pub(crate) fn new(core: Arc<Core>, delivery: super::DeliveryService) -> Self {
        Self { core, delivery }
    }

    /// The message, if it is in a conversation of the caller and matches the given one.
    async fn locate(&self, auth: &Authenticated, r: MessageRef) -> Result<Located> {
        let store = &self.core.store;
        let Some(m) = store.message(r.message_id).await? else {
            return Err(Error::MessageNotFound);
        };
        match m.chat_id {
            Some(chat) => {
                if r.target.is_some() || r.chat_id.is_some_and(|c| c != chat) {
                    return Err(Error::MessageNotFound);
                }
                let Some(me) = store.member(chat, auth.user).await? else {
                    return Err(Error::MessageNotFound);
                };
                let participants = self.core.chat_member_ids(chat).await?.to_vec();
                Ok(Located {
                    message: m,
                    participants,
                    role: Some(me.role),
                })
            }
            None => {
                let Some(to) = m.to else {
                    return Err(Error::MessageNotFound);
                };
                let peer = if auth.user == m.from {
                    to
                } else if auth.user == to {
                    m.from
                } else {
                    return Err(Error::MessageNotFound);
                };
                if r.chat_id.is_some() || r.target.is_some_and(|t| t != peer) {
                    return Err(Error::MessageNotFound);
                }
                Ok(Located {
                    participants: vec![m.from, to],
                    message: m,
                    role: None,
                })
            }
        }
    }

    /// Queues the event for every participant device except the caller's.
    async fn announce<'e>(
        &self,
        auth: &Authenticated,
        l: &Located,
        frame: fn(MessageEvent<'e>) -> ServerFrame<'e>,
        ev: MessageEvent<'e>,
    ) -> Result<()> {
        let base = frames::to_bytes(&frame(ev));
        let own = frames::to_bytes(&frame(MessageEvent {
            self_copy: true,
            ..ev
        }));
        let targets: Vec<_> = l
            .participants
            .iter()
            .map(|u| {
                (
                    *u,
                    if *u == auth.user {
                        own.clone()
                    } else {
                        base.clone()
                    },
                )
            })
            .collect();
        self.delivery.emit(&targets, Some(auth.session)).await
    }

    fn event<'a>(auth: &Authenticated, m: &Message) -> MessageEvent<'a> {
        MessageEvent {
            message_id: m.id,
            from: auth.user,
            to: m.to,
            chat_id: m.chat_id,
            payload: None,
            pinned: None,
            reaction: None,
            ts: Timestamp::now(),
            self_copy: false,
        }
    }

    /// `POST /messages/edit`: the author replaces the payload.
    pub(crate) async fn edit(
        &self,
        auth: &Authenticated,
        r: MessageRef,
        new_data: &str,
    ) -> Result<()> {
        if new_data.is_empty() || new_data.len() > MAX_PAYLOAD {
            return Err(Error::field("new_data", "must be 1 byte to 1 MiB"));
        }
        let l = self.locate(auth, r).await?;
        if l.message.from != auth.user {
            return Err(Error::Forbidden);
        }
        // The edited message is replayed with its signature: both must fit one frame.
        if !super::frames::fits_frame(new_data, l.message.signature.as_deref()) {
            return Err(Error::field(
                "new_data",
                "too long once JSON-escaped: a delivered frame would pass 2 MiB",
            ));
        }
        if !self
            .core
            .store
            .edit_message(l.message.id, new_data, Timestamp::now())
            .await?
        {
            return Err(Error::MessageNotFound);
        }
        let ev = MessageEvent {
            payload: Some(new_data),
            ..Self::event(auth, &l.message)
        };
        self.announce(auth, &l, ServerFrame::Edit, ev).await
    }

    /// `POST /messages/delete`: the author erases the payload; the message keeps its place.
    pub(crate) async fn delete(&self, auth: &Authenticated, r: MessageRef) -> Result<()> {
        let l = self.locate(auth, r).await?;
        if l.message.from != auth.user {
            return Err(Error::Forbidden);
        }
        if !self.core.store.delete_message(l.message.id).await? {
            return Err(Error::MessageNotFound);
        }
        let ev = Self::event(auth, &l.message);
        self.announce(auth, &l, ServerFrame::Delete, ev).await
    }

    /// `POST /messages/pin`: chat owner/admin, or either DM participant.
    pub(crate) async fn pin(
        &self,
        auth: &Authenticated,
        r: MessageRef,
        pinned: bool,
    ) -> Result<()> {
        let l = self.locate(auth, r).await?;
        if l.role == Some(ChatRole::Member) {
            return Err(Error::Forbidden);
        }
        if !self.core.store.set_pinned(l.message.id, pinned).await? {
            return Err(Error::MessageNotFound);
        }
        let ev = MessageEvent {
            pinned: Some(pinned),
            ..Self::event(auth, &l.message)
        };
        self.announce(auth, &l, ServerFrame::Pin, ev).await
    }

    /// `POST /messages/react`: any participant; `""` removes the caller's reaction.
    pub(crate) async fn react(
        &self,
        auth: &Authenticated,
        r: MessageRef,
        reaction: &str,
    ) -> Result<()> {
        if reaction.chars().count() > MAX_REACTION_CHARS {
            return Err(Error::field("reaction", "must be at most 32 characters"));
        }
        let l = self.locate(auth, r).await?;
        let value = (!reaction.is_empty()).then_some(reaction);
        if !self
            .core
            .store
            .set_reaction(l.message.id, auth.user, value)
            .await?
        {
            return Err(Error::MessageNotFound);
        }
        let ev = MessageEvent {
            reaction: Some(reaction),
            ..Self::event(auth, &l.message)
        };
        self.announce(auth, &l, ServerFrame::React, ev).await
    }
}
