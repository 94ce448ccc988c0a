//! Acknowledgements and receipts of messages (PROTOCOL §5.3): `delivered` when a recipient
//! device acknowledges, `read` on `ack_read`, once per member in group chats.

use super::cache::ChatMessageMeta;
use super::frames::{self, MsgStatus};
use super::messages::MessagesService;
use super::{Authenticated, Error, Result};
use crate::model::{AckedEntry, ChatKind, Message, MessageId, Timestamp, UserId};

impl MessagesService {
    async fn status(
        &self,
        m: StatusOf,
        status: &'static str,
        reader: &Authenticated,
    ) -> Result<()> {
        let frame = MsgStatus {
            kind: "msg_status",
            message_id: m.id,
            status,
            from: reader.user,
            to: Some(m.from),
            chat_id: m.chat_id,
            client_id: None,
            ts: Timestamp::now(),
            duplicate: false,
            self_copy: false,
        };
        self.core
            .emit(&[(m.from, frames::to_bytes(&frame))], None)
            .await?;
        self.core.metrics.receipt(status == "read");
        if status == "read" {
            let own = MsgStatus {
                self_copy: true,
                ..frame
            };
            self.core
                .emit(
                    &[(reader.user, frames::to_bytes(&own))],
                    Some(reader.session),
                )
                .await?;
        }
        Ok(())
    }

    /// After a device acknowledged entries: the first recipient device to ack a message makes
    /// `delivered` for every device of its author.
    pub(crate) async fn acked(&self, auth: &Authenticated, acked: &[AckedEntry]) -> Result<()> {
        let ids: Vec<MessageId> = acked
            .iter()
            .filter(|a| !a.self_copy)
            .filter_map(|a| a.message_id)
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        // The receipt is queued before the flag is set: a crash in between can at worst repeat
        // a `delivered` (clients dedupe), never lose it. One failed receipt does not cost the
        // others.
        let mut first_error = None;
        for id in ids {
            // Chat messages sent through this node need no store read.
            if let Some(meta) = self.core.recent_chat_message(id) {
                if let Err(e) = self.chat_delivered(id, meta, auth).await {
                    tracing::warn!(error = %e, message_id = %id, "delivered receipt not stored");
                    first_error.get_or_insert(e);
                }
                continue;
            }
            // So do DMs sent through this node: the first acknowledgement claims the receipt.
            if let Some(from) = self.core.take_undelivered_dm(id) {
                if let Err(e) = self.dm_delivered(id, from, auth).await {
                    tracing::warn!(error = %e, message_id = %id, "delivered receipt not stored");
                    first_error.get_or_insert(e);
                }
                continue;
            }
            let result = match self.core.store.message(id).await {
                Ok(Some(m)) if m.chat_id.is_some() => self.stored_chat_delivered(&m, auth).await,
                Ok(Some(m)) if !m.delivered && m.to.is_some() => {
                    self.dm_delivered(id, m.from, auth).await
                }
                Ok(_) => Ok(()),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, message_id = %id, "delivered receipt not stored");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The recipient's first device acknowledged DM `id` by `from`: `delivered` for the
    /// author, then the flag.
    async fn dm_delivered(&self, id: MessageId, from: UserId, auth: &Authenticated) -> Result<()> {
        if from == auth.user {
            return Ok(());
        }
        let of = StatusOf {
            id,
            from,
            chat_id: None,
        };
        self.status(of, "delivered", auth).await?;
        self.core.store.mark_delivered(&[id]).await?;
        Ok(())
    }

    /// [`Self::chat_delivered`] for a message read from the store (its kind from the cache).
    async fn stored_chat_delivered(&self, m: &Message, auth: &Authenticated) -> Result<()> {
        let Some(chat_id) = m.chat_id else {
            return Ok(());
        };
        let Some(kind) = self.core.chat_kind(chat_id).await? else {
            return Ok(());
        };
        let meta = ChatMessageMeta {
            from: m.from,
            chat_id,
            kind,
        };
        self.chat_delivered(m.id, meta, auth).await
    }

    /// A group member's first device acknowledged a chat message: one `delivered` per member
    /// for the author (none in channels, none for the author's own devices). De-duplicated in
    /// ephemeral state for `QUEUE_TTL`.
    async fn chat_delivered(
        &self,
        id: MessageId,
        meta: ChatMessageMeta,
        auth: &Authenticated,
    ) -> Result<()> {
        if meta.kind != ChatKind::Chat || meta.from == auth.user {
            return Ok(());
        }
        let key = format!("dlv:{id}:{}", auth.user);
        let ttl = std::time::Duration::from_secs(self.core.config.messages.queue_ttl.max(1));
        if self.core.ephemeral.set_if_absent(&key, b"1", ttl).await? {
            let of = StatusOf {
                id,
                from: meta.from,
                chat_id: Some(meta.chat_id),
            };
            self.status(of, "delivered", auth).await?;
        }
        Ok(())
    }

    /// `ack_read`: the caller must have received the message: its DM recipient, or a member of
    /// its chat other than the author. Marks a DM read (and delivered) and emits the statuses;
    /// see [`Self::chat_read`] for chats.
    pub(crate) async fn read(&self, auth: &Authenticated, id: MessageId) -> Result<()> {
        let m = self
            .core
            .store
            .message(id)
            .await?
            .filter(|m| m.from != auth.user);
        let Some(m) = m else {
            return Err(Error::MessageNotFound);
        };
        if let Some(chat_id) = m.chat_id {
            return self.chat_read(&m, chat_id, auth).await;
        }
        if m.to != Some(auth.user) {
            return Err(Error::MessageNotFound);
        }
        // Receipts first, flags after (see `acked`). An acknowledgement still to come must
        // not send `delivered` after this `read`.
        self.core.take_undelivered_dm(id);
        if !m.delivered {
            self.status(StatusOf::of(&m), "delivered", auth).await?;
        }
        if !m.read {
            self.status(StatusOf::of(&m), "read", auth).await?;
        }
        self.core.store.mark_read(id).await?;
        Ok(())
    }

    /// `ack_read` of a chat message by a member: in a group chat `read` (after `delivered`, if
    /// this member had not acknowledged it yet) for the author, once per member; in a channel
    /// no status (PROTOCOL §5.3).
    async fn chat_read(&self, m: &Message, chat_id: i64, auth: &Authenticated) -> Result<()> {
        if self.core.store.member(chat_id, auth.user).await?.is_none() {
            return Err(Error::MessageNotFound);
        }
        let Some(kind) = self.core.chat_kind(chat_id).await? else {
            return Err(Error::MessageNotFound);
        };
        if kind != ChatKind::Chat {
            return Ok(());
        }
        let meta = ChatMessageMeta {
            from: m.from,
            chat_id,
            kind,
        };
        self.chat_delivered(m.id, meta, auth).await?;
        let key = format!("rd:{}:{}", m.id, auth.user);
        let ttl = std::time::Duration::from_secs(self.core.config.messages.queue_ttl.max(1));
        if self.core.ephemeral.set_if_absent(&key, b"1", ttl).await? {
            self.status(StatusOf::of(m), "read", auth).await?;
        }
        Ok(())
    }
}

/// The message a `msg_status` is about.
#[derive(Clone, Copy, Debug)]
struct StatusOf {
    id: MessageId,
    from: UserId,
    chat_id: Option<i64>,
}

impl StatusOf {
    fn of(m: &Message) -> Self {
        Self {
            id: m.id,
            from: m.from,
            chat_id: m.chat_id,
        }
    }
}
