//! The delivery window of one connection (docs/protocol.md §5.3 "Sending", §1.5): a plain state
//! machine, no I/O. The connection's [`Feed`](super::Feed) drives it: it hands it live frames
//! from the hub and entries read from the store, applies the device's acknowledgements, and
//! writes out whatever the window releases.
//!
//! Rules it keeps:
//! - durable frames leave in ascending `seq`, each at most once per connection;
//! - at most [`MAX_FRAMES`] frames and [`MAX_BYTES`] bytes are sent and unacknowledged (a
//!   frame larger than the byte room still goes out when nothing is in flight);
//! - the backlog (entries with `seq <= H`, H the highest seq at admission) goes first, then
//!   `sync_done`, then everything newer;
//! - a live frame goes out directly only when it is the next seq this connection knows of
//!   and there is room; otherwise it is held (bounded) or dropped, and the window reads the
//!   store again (the store is the truth: whatever was dropped is still queued there);
//! - an acknowledgement removes only what this connection sent (`up_to_seq` larger than the
//!   highest seq sent counts as that seq), and costs a store write only when it removed
//!   something; acknowledgements are gathered and written in batches;
//! - entries the expiry sweep dropped while in flight can never be acknowledged by the store:
//!   once per full window (until the next acknowledgement), the window asks which of its
//!   in-flight seqs are still queued and forgets the others, so they cannot hold it shut.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use tokio::time::{Duration, Instant};

use crate::model::{AckSelector, AckedEntry, Acks, MessageId};

/// Most sent but unacknowledged durable frames per connection.
pub(crate) const MAX_FRAMES: usize = 256;
/// Most bytes of sent but unacknowledged durable frames per connection.
pub(crate) const MAX_BYTES: usize = 4 * 1024 * 1024;
/// Most live frames held while the window is full (count, bytes), before falling back to the
/// store.
const MAX_HELD: usize = 256;
const MAX_HELD_BYTES: usize = 4 * 1024 * 1024;
/// Acknowledgements are written at the latest this long after the first one gathered…
pub(crate) const ACK_DELAY: Duration = Duration::from_millis(5);
/// …or as soon as this many entries are gathered.
const ACK_BATCH: usize = 128;

/// What acknowledging a durable entry means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct EntryMeta {
    /// The message of a `relay_delivery` (recipient copy or self-copy): acknowledgeable by
    /// `message_id`.
    pub(crate) message: Option<MessageId>,
    /// A recipient's copy: its first acknowledgement makes `delivered` for the author.
    pub(crate) receipt: bool,
}

/// A durable frame ready to go out: its seq, its full text (seq included) and what it is.
#[derive(Clone, Debug)]
pub(crate) struct Ready {
    pub(crate) seq: i64,
    pub(crate) frame: Bytes,
    pub(crate) meta: EntryMeta,
}

/// What the window releases.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Out {
    /// A durable frame to write.
    Frame(Bytes),
    /// The backlog is out: write `sync_done` with these values.
    SyncDone {
        /// Backlog entries sent on this connection.
        count: u64,
        /// H.
        last_seq: i64,
    },
}

/// A store read the window needs: entries with `after < seq (<= upto)`, at most `limit` of
/// them and `max_bytes` of content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReadRequest {
    pub(crate) after: i64,
    pub(crate) upto: Option<i64>,
    pub(crate) limit: u64,
    pub(crate) max_bytes: u64,
}

#[derive(Clone, Copy, Debug)]
struct Sent {
    seq: i64,
    bytes: usize,
    meta: EntryMeta,
}

/// Acknowledgements gathered for the next store write.
#[derive(Debug, Default)]
struct PendingAcks {
    acks: Acks,
    receipts: Vec<AckedEntry>,
    count: usize,
    since: Option<Instant>,
}

/// The delivery state of one connection.
#[derive(Debug)]
pub(crate) struct Window {
    /// Highest seq at admission.
    h: i64,
    synced: bool,
    backlog: u64,
    /// Highest seq sent on this connection.
    sent_upto: i64,
    /// Every seq up to this one was sent or is known not to be queued.
    known_upto: i64,
    in_flight: VecDeque<Sent>,
    in_flight_bytes: usize,
    /// Live frames waiting for room, in seq order from `known_upto + 1` (bounded).
    held: BTreeMap<i64, Ready>,
    held_bytes: usize,
    /// An entry read from the store that did not fit yet: it goes out first.
    next: Option<Ready>,
    /// The store may hold entries this connection has not seen live: read it.
    dirty: bool,
    /// The in-flight seqs were checked against the store since the window last moved.
    reconciled: bool,
    pending: PendingAcks,
}

impl Window {
    /// A connection of a device whose highest assigned seq is `h`.
    pub(crate) fn new(h: i64) -> Self {
        Self {
            h,
            synced: false,
            backlog: 0,
            sent_upto: 0,
            known_upto: 0,
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            held: BTreeMap::new(),
            held_bytes: 0,
            next: None,
            dirty: false,
            reconciled: false,
            pending: PendingAcks::default(),
        }
    }

    /// Sent and unacknowledged frames.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// True once `sync_done` went out.
    #[cfg(test)]
    pub(crate) fn synced(&self) -> bool {
        self.synced
    }

    /// True when `frame` may go out now.
    fn fits(&self, bytes: usize) -> bool {
        self.in_flight.is_empty()
            || (self.in_flight.len() < MAX_FRAMES && self.in_flight_bytes + bytes <= MAX_BYTES)
    }

    fn send(&mut self, r: Ready, out: &mut Vec<Out>) {
        let bytes = r.frame.len();
        self.in_flight.push_back(Sent {
            seq: r.seq,
            bytes,
            meta: r.meta,
        });
        self.in_flight_bytes += bytes;
        self.sent_upto = self.sent_upto.max(r.seq);
        out.push(Out::Frame(r.frame));
    }

    /// The store read to make now, if any: before `sync_done`, the backlog; after it, when the
    /// live stream cannot be trusted (`dirty`). None while the window is full or an entry
    /// already read waits for room.
    pub(crate) fn read_request(&self) -> Option<ReadRequest> {
        if self.next.is_some() || (self.synced && !self.dirty) {
            return None;
        }
        let frames = MAX_FRAMES.saturating_sub(self.in_flight.len());
        let bytes = MAX_BYTES.saturating_sub(self.in_flight_bytes);
        if frames == 0 || (bytes == 0 && !self.in_flight.is_empty()) {
            return None;
        }
        Some(ReadRequest {
            after: self.sent_upto,
            upto: (!self.synced).then_some(self.h),
            limit: frames as u64,
            // The first entry comes whatever its size; it waits in `next` if it does not fit.
            max_bytes: bytes.max(1) as u64,
        })
    }

    /// The range of in-flight seqs to check against the store (`(after, upto)`), when the window
    /// is full and was not checked since it last moved.
    pub(crate) fn reconcile_request(&self) -> Option<(i64, i64)> {
        let full =
            self.in_flight.len() >= MAX_FRAMES || self.next.is_some() || !self.held.is_empty();
        if self.reconciled || !full {
            return None;
        }
        let low = self.in_flight.front()?.seq;
        Some((low - 1, self.sent_upto))
    }

    /// The seqs of the reconcile range still queued: the in-flight entries missing from them were
    /// dropped by the sweep and leave the window (no receipt: the device may never have them).
    pub(crate) fn on_reconcile(&mut self, queued: &[i64]) {
        self.reconciled = true;
        let before = self.in_flight.len();
        let mut freed = 0;
        self.in_flight.retain(|s| {
            let keep = queued.binary_search(&s.seq).is_ok();
            if !keep {
                freed += s.bytes;
            }
            keep
        });
        self.in_flight_bytes -= freed;
        if self.in_flight.len() < before {
            // What the sweep dropped may have become a gap entry: read the store again.
            self.dirty = true;
        }
    }

    /// Entries read for `req` (ascending, all above `req.after`); `complete` when the read
    /// returned everything in its range (fewer than `limit`, not cut by bytes).
    pub(crate) fn on_read(
        &mut self,
        req: ReadRequest,
        entries: Vec<Ready>,
        complete: bool,
        out: &mut Vec<Out>,
    ) {
        let mut stopped = false;
        for r in entries {
            if r.seq <= self.sent_upto {
                continue;
            }
            if !self.fits(r.frame.len()) {
                // Kept for when acknowledgements make room; the rest is read again then.
                self.next = Some(r);
                stopped = true;
                break;
            }
            if !self.synced {
                self.backlog += 1;
            }
            self.send(r, out);
        }
        if stopped || !complete {
            return;
        }
        if !self.synced {
            self.synced = true;
            // Entries appended during the backlog were not taken live: read them next.
            self.dirty = true;
            self.known_upto = self.h.max(self.sent_upto);
            out.push(Out::SyncDone {
                count: self.backlog,
                last_seq: self.h,
            });
            return;
        }
        // Every entry committed before this read was returned by it, including the held live
        // frames (the hub handed them over before the read began).
        if req.upto.is_none() {
            self.dirty = false;
            self.known_upto = self.known_upto.max(self.sent_upto);
            self.held.clear();
            self.held_bytes = 0;
        }
    }

    /// A durable frame from the hub, committed to the store before it was handed over.
    pub(crate) fn on_live(&mut self, r: Ready, out: &mut Vec<Out>) {
        if r.seq <= self.sent_upto || r.seq <= self.known_upto {
            return;
        }
        if !self.synced || self.dirty || r.seq != self.known_upto + 1 + self.held.len() as i64 {
            // Before sync_done, after a loss, or out of order: the store has it.
            self.drop_held();
            return;
        }
        if self.held.is_empty() && self.next.is_none() && self.fits(r.frame.len()) {
            self.known_upto = r.seq;
            self.send(r, out);
            return;
        }
        if self.held.len() >= MAX_HELD || self.held_bytes + r.frame.len() > MAX_HELD_BYTES {
            self.drop_held();
            return;
        }
        self.held_bytes += r.frame.len();
        self.held.insert(r.seq, r);
    }

    /// Live frames may have been lost before they reached this connection (another node's bus
    /// notes): the store is read before live frames are trusted again.
    pub(crate) fn suspect_loss(&mut self) {
        if self.synced {
            self.drop_held();
        }
    }

    /// Forgets the held live frames: they are read back from the store.
    fn drop_held(&mut self) {
        self.held.clear();
        self.held_bytes = 0;
        self.dirty = true;
    }

    /// Sends what waits and now fits: the entry read ahead, then held live frames in order.
    pub(crate) fn release(&mut self, out: &mut Vec<Out>) {
        if let Some(r) = self.next.take() {
            if !self.fits(r.frame.len()) {
                self.next = Some(r);
                return;
            }
            if !self.synced {
                self.backlog += 1;
            }
            self.send(r, out);
        }
        while let Some((&seq, r)) = self.held.first_key_value() {
            let len = r.frame.len();
            if seq > self.sent_upto && (seq != self.known_upto + 1 || !self.fits(len)) {
                return;
            }
            let Some(r) = self.held.remove(&seq) else {
                return;
            };
            self.held_bytes -= len;
            if seq > self.sent_upto {
                self.known_upto = seq;
                self.send(r, out);
            }
        }
    }

    /// Applies an acknowledgement of the device; returns true when it removed something.
    pub(crate) fn ack(&mut self, sel: AckSelector, now: Instant) -> bool {
        let before = self.in_flight.len();
        match sel {
            AckSelector::UpTo(n) => {
                let n = n.min(self.sent_upto);
                while self.in_flight.front().is_some_and(|s| s.seq <= n) {
                    if let Some(s) = self.in_flight.pop_front() {
                        self.acked(s);
                    }
                }
                if self.in_flight.len() < before {
                    let p = &mut self.pending.acks;
                    p.upto = p.upto.max(n);
                    p.seqs.retain(|s| *s > n);
                }
            }
            AckSelector::Seq(n) => {
                if let Ok(i) = self.in_flight.binary_search_by_key(&n, |s| s.seq) {
                    self.remove_at(i);
                }
            }
            AckSelector::Message(id) => {
                if let Some(i) = self
                    .in_flight
                    .iter()
                    .position(|s| s.meta.message == Some(id))
                {
                    self.remove_at(i);
                }
            }
        }
        let removed = self.in_flight.len() < before;
        if removed {
            self.pending.since.get_or_insert(now);
            self.reconciled = false;
        }
        removed
    }

    /// An `ack_read` of message `id`: removes its entry like an acknowledgement, without the
    /// `delivered` receipt (the read made its own).
    pub(crate) fn ack_read(&mut self, id: MessageId, now: Instant) {
        if self.ack(AckSelector::Message(id), now) {
            self.pending.receipts.retain(|r| r.message_id != id);
        }
    }

    fn remove_at(&mut self, i: usize) {
        if let Some(s) = self.in_flight.remove(i) {
            let p = &mut self.pending.acks;
            if s.seq > p.upto {
                // Ascending: in-flight seqs are unique and each is removed once.
                let at = p.seqs.partition_point(|x| *x < s.seq);
                p.seqs.insert(at, s.seq);
            }
            self.acked(s);
        }
    }

    fn acked(&mut self, s: Sent) {
        self.in_flight_bytes -= s.bytes;
        self.pending.count += 1;
        if let (true, Some(message_id)) = (s.meta.receipt, s.meta.message) {
            self.pending.receipts.push(AckedEntry {
                seq: s.seq,
                message_id,
            });
        }
    }

    /// When the gathered acknowledgements must be written at the latest.
    pub(crate) fn ack_deadline(&self) -> Option<Instant> {
        self.pending.since.map(|t| t + ACK_DELAY)
    }

    /// True when the gathered acknowledgements should be written now (a full batch, or the
    /// deadline passed).
    pub(crate) fn acks_due(&self, now: Instant) -> bool {
        self.pending.count >= ACK_BATCH || self.ack_deadline().is_some_and(|d| now >= d)
    }

    /// The gathered acknowledgements (what the store removes, and the message copies whose
    /// acknowledgement makes a receipt), leaving none.
    pub(crate) fn take_acks(&mut self) -> Option<(Acks, Vec<AckedEntry>)> {
        let p = std::mem::take(&mut self.pending);
        (!p.acks.is_empty()).then_some((p.acks, p.receipts))
    }
}

#[cfg(test)]
#[path = "window_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "window_props.rs"]
mod props;
