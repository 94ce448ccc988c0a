//! The bus wire format: one sealed message carries one note or a bundle of them, stamped with
//! its origin node, its destination, the origin's counter for that destination and the time,
//! so replays, copies moved to another topic and stale copies are refused, and losses show.

use std::sync::atomic::Ordering;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{Cluster, ALL, MAX_BUNDLE, TOPIC};
use crate::crypto::Pii;

/// Encoding version of a bundle of encoded notes (one bus message for many notes).
const BUNDLE: u8 = 2;

/// Seals one bus message (a note or a bundle) for the bus.
pub(crate) fn seal(pii: &Pii, msg: &[u8]) -> Option<Bytes> {
    pii.seal("ephemeral", "bus", TOPIC, msg)
        .ok()
        .map(Bytes::from)
}

/// Opens a bus message sealed by [`seal`]; `None` when it does not open.
pub(crate) fn open(pii: &Pii, msg: &[u8]) -> Option<Bytes> {
    pii.open("ephemeral", "bus", TOPIC, msg)
        .ok()
        .map(Bytes::from)
}

/// Packs encoded notes into one bus message: `[2][count u32]([len u32][note])*`.
pub(crate) fn bundle(notes: &[Bytes]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + notes.iter().map(|n| n.len() + 4).sum::<usize>());
    b.put_u8(BUNDLE);
    b.put_u32(notes.len() as u32);
    for n in notes {
        b.put_u32(n.len() as u32);
        b.put_slice(n);
    }
    b.freeze()
}

/// The encoded notes of a bus message (a bundle, or one note); malformed bundles are empty.
pub(crate) fn unbundle(mut b: Bytes) -> Vec<Bytes> {
    if b.first() != Some(&BUNDLE) {
        return vec![b];
    }
    b.advance(1);
    let Some(n) = (b.remaining() >= 4).then(|| b.get_u32() as usize) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(n.min(MAX_BUNDLE));
    for _ in 0..n {
        if b.remaining() < 4 {
            return Vec::new();
        }
        let len = b.get_u32() as usize;
        if b.remaining() < len {
            return Vec::new();
        }
        out.push(b.split_to(len));
    }
    out
}

/// Bytes in front of every bus message, inside the seal: origin node, destination ([`ALL`] or
/// a node), the origin's message counter for that destination and the time it was sealed (ms).
const STAMP_LEN: usize = 32;
/// Bus messages sealed longer ago (or further in the future) than this are refused.
const BUS_MAX_AGE_MS: i64 = 30_000;
/// Nodes remembered for replay checks before the ones no longer heard from are forgotten.
const MAX_REMEMBERED_NODES: usize = 1024;

impl Cluster {
    /// Seals one bus message for `dest` ([`ALL`] or a node) with this node's id, the next
    /// counter for that destination and the time, so that a copy replayed onto the bus (by
    /// anyone who can publish to Redis), or moved to another node's topic, is refused.
    pub(crate) fn seal_message(&self, pii: &Pii, dest: u64, msg: &[u8]) -> Option<Bytes> {
        let n = {
            let mut c = self.sealed.entry(dest).or_insert(0);
            *c += 1;
            *c
        };
        let mut b = Vec::with_capacity(STAMP_LEN + msg.len());
        b.extend_from_slice(&self.node.to_be_bytes());
        b.extend_from_slice(&dest.to_be_bytes());
        b.extend_from_slice(&n.to_be_bytes());
        b.extend_from_slice(&crate::model::Timestamp::now().millis().to_be_bytes());
        b.extend_from_slice(msg);
        seal(pii, &b)
    }

    /// Opens a bus message of [`Self::seal_message`]: `None` when it does not open, is meant
    /// for another node, is older than 30 s (or as far in the future), or is not newer than
    /// the last one accepted from its node on its topic (a replay). With the origin and the
    /// message comes whether messages of that node on that topic were missed since the last
    /// one accepted (its counter skipped ahead): the caller repairs from the store.
    pub(crate) fn open_message(&self, pii: &Pii, raw: &[u8]) -> Option<(u64, Bytes, bool)> {
        let mut b = open(pii, raw)?;
        if b.len() < STAMP_LEN {
            return None;
        }
        let node = b.get_u64();
        let dest = b.get_u64();
        let n = b.get_u64();
        let at = b.get_i64();
        if dest != ALL && dest != self.node {
            return None;
        }
        let age = crate::model::Timestamp::now().millis().saturating_sub(at);
        if !(-BUS_MAX_AGE_MS..=BUS_MAX_AGE_MS).contains(&age) {
            return None;
        }
        let key = (node, dest != ALL);
        if self.accepted.len() >= MAX_REMEMBERED_NODES && !self.accepted.contains_key(&key) {
            self.accepted
                .retain(|(k, _), _| *k == self.node || self.heard.contains_key(k));
        }
        self.heard_bus();
        let mut last = self.accepted.entry(key).or_insert(0);
        if n <= *last {
            return None;
        }
        // The first message heard from a node on `hub` says nothing about earlier ones; on this
        // node's own topic its counter starts at 1 (node ids are new on every start), so a first
        // message numbered higher means the ones before it were lost.
        let missed = match (*last, dest != ALL) {
            (0, true) => n - 1,
            (0, false) => 0,
            (last, _) => n - last - 1,
        };
        *last = n;
        drop(last);
        let gap = missed > 0;
        if gap {
            self.gaps.fetch_add(1, Ordering::Relaxed);
        }
        // The metrics count other nodes' messages (a gap in this node's own counter is the
        // mirror of its own dropped notes, counted as those).
        if node != self.node {
            if gap {
                self.meters.gap(dest != ALL, missed);
            }
            self.meters.received(age);
        }
        Some((node, b, gap))
    }
}
