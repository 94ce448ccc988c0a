//! The publish queue: notes wait here for the one publisher task (`server::spawn_cluster`),
//! which bundles them into bus messages. Queuing never blocks; a full queue drops the note,
//! counts it and skips a message number, so the receivers see the loss.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Cluster, Note, ALL};
use crate::metrics::Dropped;

impl Cluster {
    /// Queues `note` for every node (never blocks).
    pub(crate) fn publish(&self, note: &Note) {
        self.publish_encoded(ALL, note.encode(self.node));
    }

    /// Queues an encoded note for `dest` ([`ALL`] or a node; never blocks).
    pub(crate) fn publish_encoded(&self, dest: u64, note: Bytes) {
        // Counted in first, so that the publisher never takes it out of the gauge before.
        self.meters.queued();
        if self.tx.try_send((dest, note)).is_err() {
            self.meters.dequeued(1);
            self.note_dropped(dest);
        }
    }

    /// Counts a note for `dest` that never reached the bus, and skips a message number so
    /// that the receivers see the loss and repair from the store.
    pub(crate) fn note_dropped(&self, dest: u64) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.meters.dropped(Dropped::QueueFull, 1);
        *self.sealed.entry(dest).or_insert(0) += 1;
    }

    /// The publisher's queue; taken once by the task that drains it.
    pub(crate) fn take_outbox(&self) -> Option<mpsc::Receiver<(u64, Bytes)>> {
        self.rx.lock().ok().and_then(|mut r| r.take())
    }

    /// The publisher took `n` notes off the queue.
    pub(crate) fn dequeued(&self, n: usize) {
        self.meters.dequeued(n);
    }

    /// Counts one bus message of `notes` notes handed to the bus.
    pub(crate) fn count_published(&self, notes: usize) {
        self.published.fetch_add(1, Ordering::Relaxed);
        self.published_notes
            .fetch_add(notes as u64, Ordering::Relaxed);
    }
}
