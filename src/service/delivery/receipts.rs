//! Receipts (docs/protocol.md §5.3 "Acknowledging"): `delivered` when a recipient device first
//! acknowledges a message copy, `read` on `ack_read`; once per member in group chats, none in
//! channels, none for self-copies.

use super::{DeliveryService, Outbox, Receipt, Status};
use crate::model::{AckedEntry, Acks, ChatKind, Message, MessageId, Timestamp, UserId};
use crate::service::cache::{ChatMessageMeta, DmClaim};
use crate::service::{Authenticated, Error, Result};

impl DeliveryService {
    /// The receipts caused by `acked`, the recipient copies `auth`'s device just acknowledged:
    /// their entries go into `outbox` and the DMs to flag into `acks.delivered`, so the store
    /// writes them with the acknowledgement. One failed lookup does not cost the others: the
    /// first error is returned after all were tried.
    /// The DMs whose receipt this call claimed from the node's cache go to `claimed`, so a
    /// caller whose write then fails gives them back ([`Self::unclaim`]).
    pub(super) async fn receipts(
        &self,
        auth: &Authenticated,
        acked: &[AckedEntry],
        acks: &mut Acks,
        outbox: &mut Outbox,
        claimed: &mut Vec<(MessageId, UserId)>,
    ) -> Result<()> {
        let mut first_error = None;
        for a in acked {
            let id = a.message_id;
            let claim = self.core.claim_undelivered_dm(id);
            let result = if let Some(meta) = self.core.recent_chat_message(id) {
                // Chat messages sent through this node need no store read.
                self.chat_delivered(id, meta, auth, outbox).await
            } else if let DmClaim::First(from) = claim {
                // Nor do DMs sent through this node: the first acknowledgement claims the receipt.
                let r = self.dm_delivered(id, from, auth, acks, outbox).await;
                match r {
                    Ok(()) => claimed.push((id, from)),
                    Err(_) => self.core.unclaim_dm(id, from),
                }
                r
            } else if claim == DmClaim::Claimed {
                // Another device's acknowledgement sent it; its flag may not be written yet.
                Ok(())
            } else {
                match self.core.store.message(id).await {
                    Ok(Some(m)) if m.chat_id.is_some() => {
                        self.stored_chat_delivered(&m, auth, outbox).await
                    }
                    Ok(Some(m)) if !m.delivered && m.to.is_some() => {
                        self.dm_delivered(id, m.from, auth, acks, outbox).await
                    }
                    Ok(_) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, message_id = %id, "delivered receipt not made");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Gives back claims whose receipts were not written.
    pub(super) fn unclaim(&self, claimed: &[(MessageId, UserId)]) {
        for (id, from) in claimed {
            self.core.unclaim_dm(*id, *from);
        }
    }

    fn status(id: MessageId, receipt: Receipt, reader: UserId, m: (UserId, Option<i64>)) -> Status {
        Status {
            message_id: id,
            receipt,
            from: reader,
            to: m.0,
            chat_id: m.1,
            ts: Timestamp::now(),
            self_copy: false,
        }
    }

    /// The recipient's first device acknowledged DM `id` by `from`: `delivered` for every
    /// device of the author, and the flag.
    async fn dm_delivered(
        &self,
        id: MessageId,
        from: UserId,
        auth: &Authenticated,
        acks: &mut Acks,
        outbox: &mut Outbox,
    ) -> Result<()> {
        if from == auth.user {
            return Ok(());
        }
        let status = Self::status(id, Receipt::Delivered, auth.user, (from, None));
        self.gather_status(outbox, from, &status, None).await?;
        acks.delivered.push(id);
        Ok(())
    }

    /// [`Self::chat_delivered`] for a message read from the store (its kind from the cache).
    async fn stored_chat_delivered(
        &self,
        m: &Message,
        auth: &Authenticated,
        outbox: &mut Outbox,
    ) -> Result<()> {
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
        self.chat_delivered(m.id, meta, auth, outbox).await
    }

    /// A group member's first device acknowledged a chat message: one `delivered` per member
    /// for the author (none in channels, none for the author's own devices). De-duplicated in
    /// ephemeral state for `QUEUE_TTL`.
    async fn chat_delivered(
        &self,
        id: MessageId,
        meta: ChatMessageMeta,
        auth: &Authenticated,
        outbox: &mut Outbox,
    ) -> Result<()> {
        if meta.kind != ChatKind::Chat || meta.from == auth.user {
            return Ok(());
        }
        let key = format!("dlv:{id}:{}", auth.user);
        let ttl = std::time::Duration::from_secs(self.core.config.messages.queue_ttl.max(1));
        if self.core.ephemeral.set_if_absent(&key, b"1", ttl).await? {
            let status = Self::status(
                id,
                Receipt::Delivered,
                auth.user,
                (meta.from, Some(meta.chat_id)),
            );
            self.gather_status(outbox, meta.from, &status, None).await?;
        }
        Ok(())
    }

    /// `ack_read`: the caller must have received the message: its DM recipient, or a member of
    /// its chat other than the author. A DM gets `delivered` (unless it had it) and `read`
    /// (unless it had it) for the author's devices, `read` with `self: true` for the reader's
    /// other devices, and its flags; see [`Self::chat_read`] for chats. A repeated `ack_read`
    /// writes nothing.
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
        // An acknowledgement still to come must not send `delivered` after this `read`.
        let claim = self.core.claim_undelivered_dm(id);
        let undelivered = match claim {
            DmClaim::First(_) => true,
            DmClaim::Claimed => false,
            DmClaim::Unknown => !m.delivered,
        };
        let result = self.read_dm(auth, &m, undelivered).await;
        if let (Err(_), DmClaim::First(from)) = (&result, claim) {
            self.core.unclaim_dm(id, from);
        }
        result
    }

    /// The receipts and flags of `ack_read` of DM `m` by its recipient.
    async fn read_dm(&self, auth: &Authenticated, m: &Message, undelivered: bool) -> Result<()> {
        let id = m.id;
        if !undelivered && m.read {
            return Ok(());
        }
        let mut outbox = Outbox::default();
        if undelivered {
            let status = Self::status(id, Receipt::Delivered, auth.user, (m.from, None));
            self.gather_status(&mut outbox, m.from, &status, None)
                .await?;
        }
        if !m.read {
            let status = Self::status(id, Receipt::Read, auth.user, (m.from, None));
            self.gather_status(&mut outbox, m.from, &status, None)
                .await?;
            let own = Status {
                self_copy: true,
                ..status
            };
            self.gather_status(&mut outbox, auth.user, &own, Some(auth.session))
                .await?;
        }
        // Receipts first, flags after: a crash in between can repeat a receipt (clients
        // dedupe), never lose one.
        self.commit(outbox).await?;
        self.core.store.mark_read(id).await?;
        Ok(())
    }

    /// `ack_read` of a chat message by a member: in a group chat `read` (after `delivered`, if
    /// this member had not acknowledged it yet) for the author, once per member; in a channel
    /// no status (docs/protocol.md §5.3).
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
        let mut outbox = Outbox::default();
        self.chat_delivered(m.id, meta, auth, &mut outbox).await?;
        let key = format!("rd:{}:{}", m.id, auth.user);
        let ttl = std::time::Duration::from_secs(self.core.config.messages.queue_ttl.max(1));
        if self.core.ephemeral.set_if_absent(&key, b"1", ttl).await? {
            let status = Self::status(m.id, Receipt::Read, auth.user, (m.from, Some(chat_id)));
            self.gather_status(&mut outbox, m.from, &status, None)
                .await?;
            let own = Status {
                self_copy: true,
                ..status
            };
            self.gather_status(&mut outbox, auth.user, &own, Some(auth.session))
                .await?;
        }
        self.commit(outbox).await
    }
}
