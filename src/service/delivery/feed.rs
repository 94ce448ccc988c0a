//! [`Feed`]: the delivery of one connection, driving its [`Window`] with store reads and writes.

use bytes::Bytes;
use tokio::time::Instant;

use super::window::{EntryMeta, Out, Ready, Window};
use super::{DeliveryService, Outbox};
use crate::model::{AckSelector, MessageId, Timestamp};
use crate::service::frames::{self, ServerFrame, SyncDone};
use crate::service::{Authenticated, Result};

/// The delivery of one socket's device (docs/protocol.md §5.3): backlog, `sync_done`, live frames,
/// acknowledgements and their receipts. The socket task feeds it what the hub and the client
/// send and writes out the frames it returns; every store call of a connection is made here.
#[derive(Debug)]
pub(crate) struct Feed {
    delivery: DeliveryService,
    auth: Authenticated,
    window: Window,
    out: Vec<Out>,
}

impl Feed {
    pub(super) fn new(delivery: DeliveryService, auth: Authenticated, h: i64) -> Self {
        Self {
            delivery,
            auth,
            window: Window::new(h),
            out: Vec::new(),
        }
    }

    /// Sent and unacknowledged durable frames.
    pub(crate) fn in_flight(&self) -> usize {
        self.window.in_flight()
    }

    /// Appends what the window released to `frames`: the number of durable frames, and
    /// whether `sync_done` was among them.
    fn drain(&mut self, frames: &mut Vec<Bytes>) -> (u64, bool) {
        let (mut durable, mut synced) = (0, false);
        let metrics = &self.delivery.core.metrics;
        for o in self.out.drain(..) {
            match o {
                Out::Frame(f) => {
                    durable += 1;
                    frames.push(f);
                }
                Out::SyncDone { count, last_seq } => {
                    metrics.ws_backlog.observe(count as f64);
                    frames.push(frames::to_bytes(&ServerFrame::SyncDone(SyncDone {
                        count,
                        last_seq,
                        ts: Timestamp::now(),
                    })));
                    synced = true;
                }
            }
        }
        (durable, synced)
    }

    /// Sends whatever the window allows, reading the store as it needs (the backlog before
    /// `sync_done`, or after live frames were lost). Appends the frames to write to `frames`;
    /// returns true when `sync_done` is among them.
    pub(crate) async fn pump(&mut self, frames: &mut Vec<Bytes>) -> Result<bool> {
        let mut synced = false;
        let metrics = self.delivery.core.metrics.clone();
        loop {
            self.window.release(&mut self.out);
            let (live, s) = self.drain(frames);
            metrics.delivered(true, live);
            synced |= s;
            if let Some((after, upto)) = self.window.reconcile_request() {
                let store = &self.delivery.core.store;
                let queued = store.queue_seqs(self.auth.session, after, upto).await?;
                self.window.on_reconcile(&queued);
                continue;
            }
            let Some(req) = self.window.read_request() else {
                return Ok(synced);
            };
            let rows = self
                .delivery
                .core
                .store
                .queue_after(
                    self.auth.session,
                    req.after,
                    req.upto,
                    req.limit,
                    req.max_bytes,
                )
                .await?;
            let complete = !rows.cut && (rows.entries.len() as u64) < req.limit;
            let mut ready = Vec::with_capacity(rows.entries.len());
            for entry in rows.entries {
                ready.push(self.delivery.replay_frame(self.auth.session, entry)?);
            }
            self.window.on_read(req, ready, complete, &mut self.out);
            let (replayed, s) = self.drain(frames);
            metrics.delivered(false, replayed);
            synced |= s;
        }
    }

    /// A durable frame from the hub (its entry is committed). Appends what may go out now;
    /// returns true when the window then needs a store read ([`Self::pump`]).
    pub(crate) fn on_live(
        &mut self,
        seq: i64,
        frame: Bytes,
        meta: EntryMeta,
        frames: &mut Vec<Bytes>,
    ) -> bool {
        self.window
            .on_live(Ready { seq, frame, meta }, &mut self.out);
        let (live, _) = self.drain(frames);
        self.delivery.core.metrics.delivered(true, live);
        self.window.read_request().is_some()
    }

    /// Live frames for this connection may have been lost on the way (bus notes of another
    /// node): the next [`Self::pump`] reads the store.
    pub(crate) fn suspect_loss(&mut self) {
        self.window.suspect_loss();
    }

    /// Applies an `ack_received`; the store write waits for [`Self::flush_acks`]. False when it
    /// acknowledged nothing this connection has in flight.
    pub(crate) fn ack(&mut self, sel: AckSelector) -> bool {
        self.window.ack(sel, Instant::now())
    }

    /// When the gathered acknowledgements must be written at the latest.
    pub(crate) fn ack_deadline(&self) -> Option<Instant> {
        self.window.ack_deadline()
    }

    /// True when the gathered acknowledgements should be written now, without waiting for the
    /// socket to go quiet.
    pub(crate) fn acks_due(&self) -> bool {
        self.window.acks_due(Instant::now())
    }

    /// Writes the gathered acknowledgements with the receipts they cause in one store call,
    /// then delivers the receipts and releases what the freed window allows.
    pub(crate) async fn flush_acks(&mut self, frames: &mut Vec<Bytes>) -> Result<bool> {
        let Some((mut acks, acked)) = self.window.take_acks() else {
            return Ok(false);
        };
        let mut outbox = Outbox::default();
        let mut claimed = Vec::new();
        // A failed receipt lookup must not keep the acknowledgement from being written.
        let receipts = self
            .delivery
            .receipts(&self.auth, &acked, &mut acks, &mut outbox, &mut claimed)
            .await;
        acks.receipts = outbox.take_entries();
        let written = self.delivery.core.store.ack(self.auth.session, &acks).await;
        let seqs = match written {
            Ok(seqs) => seqs,
            Err(e) => {
                // Nothing was written: the entries stay queued and come again, and their
                // acknowledgement must then make the receipts this one claimed.
                self.delivery.unclaim(&claimed);
                return Err(e.into());
            }
        };
        self.delivery.deliver(outbox, &seqs);
        receipts?;
        self.pump(frames).await
    }

    /// `ack_read` of message `id`: its receipts, and the acknowledgement of its entry if this
    /// connection has it in flight (without a `delivered` of its own: the read made it).
    pub(crate) async fn read(&mut self, id: MessageId) -> Result<()> {
        self.delivery.read(&self.auth, id).await?;
        self.window.ack_read(id, Instant::now());
        Ok(())
    }
}
