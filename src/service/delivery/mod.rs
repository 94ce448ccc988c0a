//! Delivery: the at-least-once machinery of docs/protocol.md §5.3 for every transport.
//!
//! - **Fan-out** ([`DeliveryService::fan_out`]): a durable frame whose queue entries are
//!   committed goes to the sockets of this node that want it, and in one note to the other
//!   nodes; a device without a socket here costs nothing (the frame is spliced with its `seq`
//!   only for a socket that takes it).
//! - **Events and receipts** ([`DeliveryService::emit`], [`Outbox`]): queue entries for every
//!   device of a user (events sealed, receipts in their compact encoding), then fan-out.
//! - **Connections** ([`Feed`]): the window of one socket ([`window`]), its backlog replay and
//!   `sync_done`, live frames, gap fallback to the store, gathered acknowledgements and the
//!   receipts they cause, written in one store call.
//! - **Expiry** ([`DeliveryService::sweep`]): `QUEUE_TTL`, `QUEUE_MAX` and `HISTORY_TTL`.
//!
//! Nothing under `ws/` touches the store: the socket task moves frames between the socket and
//! its [`Feed`].

use std::sync::Arc;

use bytes::Bytes;

use super::frames::{self, RelayDelivery, ServerFrame};
use super::hub::with_seq;
use super::{Authenticated, Core, Result};
use crate::model::{Message, NewEntry, QueueItem, QueuedEntry, SessionId, Timestamp, UserId};

mod feed;
mod receipts;
mod status;
pub(crate) mod window;

pub(crate) use feed::Feed;
pub(crate) use status::{Receipt, Status};
pub(crate) use window::EntryMeta;

/// The at-least-once delivery of durable frames (see the module docs).
#[derive(Clone, Debug)]
pub(crate) struct DeliveryService {
    core: Arc<Core>,
}

/// Queue entries being gathered for one store write, with the frame each device gets live
/// once the write is committed.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    entries: Vec<(SessionId, NewEntry)>,
    /// Parallel to `entries`: the device and the frame body (without `seq`) it gets live.
    live: Vec<(UserId, SessionId, Bytes)>,
}

impl Outbox {
    /// True when nothing was gathered.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn push(&mut self, user: UserId, session: SessionId, entry: NewEntry, frame: &Bytes) {
        self.entries.push((session, entry));
        self.live.push((user, session, frame.clone()));
    }

    /// The entries, for a store write that appends them; [`DeliveryService::deliver`] still
    /// delivers them live afterwards.
    pub(crate) fn take_entries(&mut self) -> Vec<(SessionId, NewEntry)> {
        std::mem::take(&mut self.entries)
    }
}

impl DeliveryService {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// A durable frame body (without `seq`) whose entries are committed, to each listed
    /// device: this node's sockets now, the other nodes in one note.
    pub(crate) fn fan_out(&self, base: &Bytes, meta: EntryMeta, to: Vec<(UserId, SessionId, i64)>) {
        if to.is_empty() {
            return;
        }
        for (user, session, seq) in &to {
            self.core
                .hub
                .send_durable(*user, *session, *seq, base, meta);
        }
        self.core.tell_durable(base, meta, to);
    }

    /// Fans out what `outbox` gathered, now that its entries got `seqs`: one delivery (and one
    /// cluster note) per frame body.
    pub(crate) fn deliver(&self, outbox: Outbox, seqs: &[i64]) {
        let mut batch: Vec<(UserId, SessionId, i64)> = Vec::new();
        let mut body: Option<Bytes> = None;
        for ((user, session, frame), seq) in outbox.live.into_iter().zip(seqs) {
            if body.as_ref().is_some_and(|b| b.as_ptr() != frame.as_ptr()) {
                if let Some(b) = body.take() {
                    self.fan_out(&b, EntryMeta::default(), std::mem::take(&mut batch));
                }
            }
            body = Some(frame);
            batch.push((user, session, *seq));
        }
        if let Some(b) = body {
            self.fan_out(&b, EntryMeta::default(), batch);
        }
    }

    /// Gathers the durable frame `frame` (serialized without `seq`) for every active device of
    /// `user` except the session `skip`. Events can carry PII (nicknames, keys): the queue keeps
    /// them sealed, bound to each device's session; live delivery uses the plaintext.
    pub(crate) async fn gather_event(
        &self,
        outbox: &mut Outbox,
        user: UserId,
        frame: &Bytes,
        skip: Option<SessionId>,
    ) -> Result<()> {
        let sessions = self.core.session_ids(user).await?;
        if sessions.iter().all(|s| Some(*s) == skip) {
            return Ok(());
        }
        // Each device's copy is sealed bound to its session, so it cannot be moved into
        // another device's queue.
        for s in sessions.iter().filter(|s| Some(**s) != skip) {
            let sealed = self
                .core
                .pii
                .seal("queue", "event", &s.0.to_string(), frame)?;
            outbox.push(user, *s, NewEntry::Event(Bytes::from(sealed)), frame);
        }
        Ok(())
    }

    /// Gathers a receipt for every active device of `user` except `skip` (a `self` copy is not
    /// counted in the metrics again).
    pub(crate) async fn gather_status(
        &self,
        outbox: &mut Outbox,
        user: UserId,
        status: &Status,
        skip: Option<SessionId>,
    ) -> Result<()> {
        let sessions = self.core.session_ids(user).await?;
        let (body, frame) = (status.encode(), status.frame());
        for s in sessions.iter().filter(|s| Some(**s) != skip) {
            outbox.push(user, *s, NewEntry::Status(body.clone()), &frame);
        }
        if !status.self_copy {
            self.core.metrics.receipt(status.receipt == Receipt::Read);
        }
        Ok(())
    }

    /// Queues the gathered entries in one store write, then delivers them live.
    pub(crate) async fn commit(&self, outbox: Outbox) -> Result<()> {
        if outbox.is_empty() {
            return Ok(());
        }
        let seqs = self.core.store.enqueue(&outbox.entries).await?;
        self.deliver(outbox, &seqs);
        Ok(())
    }

    /// Queues the durable frame `base` (serialized without `seq`) for every active device of
    /// each listed user, except the session `skip`, in one store write; then delivers live.
    pub(crate) async fn emit(
        &self,
        targets: &[(UserId, Bytes)],
        skip: Option<SessionId>,
    ) -> Result<()> {
        let mut outbox = Outbox::default();
        for (user, frame) in targets {
            self.gather_event(&mut outbox, *user, frame, skip).await?;
        }
        self.commit(outbox).await
    }

    /// A connection of `auth`'s device, whose session must still be active
    /// (`TokenRevoked` otherwise): its window starts at the highest seq assigned so far.
    pub(crate) async fn open(&self, auth: &Authenticated) -> Result<Feed> {
        let store = &self.core.store;
        if !matches!(store.session(auth.session).await?, Some(s) if s.active) {
            return Err(super::Error::TokenRevoked);
        }
        let h = store.last_seq(auth.session).await?;
        Ok(Feed::new(self.clone(), *auth, h))
    }

    /// The frame (with `seq`) and meaning of a queue entry of `session` read back from the
    /// store.
    fn replay_frame(&self, session: SessionId, entry: QueuedEntry) -> Result<window::Ready> {
        let (base, meta) = match &entry.item {
            QueueItem::Message { message, self_copy } => (
                Self::delivery_frame(message, *self_copy),
                EntryMeta {
                    message: Some(message.id),
                    receipt: !*self_copy,
                },
            ),
            QueueItem::Event(sealed) => (
                Bytes::from(self.core.pii.open_bound(
                    "queue",
                    "event",
                    &session.0.to_string(),
                    sealed,
                )?),
                EntryMeta::default(),
            ),
            QueueItem::Status(body) => match Status::decode(body) {
                Some(s) => (s.frame(), EntryMeta::default()),
                None => {
                    return Err(super::Error::Internal(format!(
                        "queued receipt at seq {} is unreadable",
                        entry.seq
                    )))
                }
            },
            QueueItem::Gap(g) => (gap_frame(entry.seq, g), EntryMeta::default()),
        };
        Ok(window::Ready {
            seq: entry.seq,
            frame: with_seq(&base, entry.seq),
            meta,
        })
    }

    /// The `relay_delivery` frame of a stored message, without `seq`.
    pub(crate) fn delivery_frame(m: &Message, self_copy: bool) -> Bytes {
        frames::to_bytes(&ServerFrame::RelayDelivery(RelayDelivery::of(m, self_copy)))
    }

    /// One expiry pass (docs/protocol.md §5.3 "Expiry and overflow", §4.6 retention): queues past
    /// `QUEUE_MAX` or `QUEUE_TTL` get their `gap`, history past `HISTORY_TTL` goes, and
    /// `client_id`s older than `QUEUE_TTL` are forgotten. Failures are logged; the next pass
    /// tries again.
    pub(crate) async fn sweep(&self) {
        let core = &self.core;
        let m = &core.config.messages;
        let now = Timestamp::now().millis();
        let ago = |secs: u64| Timestamp::from_millis(now - (secs as i64).saturating_mul(1000));
        match core.store.trim_queues(m.queue_max, ago(m.queue_ttl)).await {
            Ok(gaps) if !gaps.is_empty() => {
                tracing::info!(queues = gaps.len(), "queue entries expired or dropped")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "queue sweep failed"),
        }
        match core
            .store
            .purge_messages(ago(m.history_ttl), ago(m.queue_ttl))
            .await
        {
            Ok(n) if n > 0 => tracing::info!(messages = n, "history expired"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "history sweep failed"),
        }
    }
}

/// The `gap` frame of a gap entry (without `seq`).
fn gap_frame(seq: i64, g: &crate::model::Gap) -> Bytes {
    frames::to_bytes(&ServerFrame::Gap(frames::Gap {
        from_seq: g.from_seq,
        to_seq: seq,
        count: g.count,
        reason: if g.overflow { "overflow" } else { "expired" },
        ts: g.at,
    }))
}
