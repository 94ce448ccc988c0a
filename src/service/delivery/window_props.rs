//! Property tests of the [`Window`]: a model of one device's queue in the store, driven the way
//! [`Feed`](super::super::Feed) drives the window (pump: release, reconcile, read until the
//! window asks for nothing), under random commits, live hand-overs in any order (concurrent
//! writers commit and hand over independently), pumps, acknowledgements, acknowledgement
//! writes and expiry sweeps. After every step the bounds hold; at the end, once the client has
//! acknowledged everything, every entry ever queued was delivered exactly once in seq order or
//! is covered by a delivered `gap` entry.
//!
//! Frames are slices of a shared buffer at offset `seq` (one buffer for messages, one for gap
//! entries), so a released frame tells its seq and kind by its pointer and may be megabytes
//! long without copying.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use proptest::prelude::*;
use tokio::time::Instant;

use super::*;

/// Longest frame the tests make: larger than [`MAX_BYTES`] (the oversized-frame rule).
const MAX_FRAME: usize = MAX_BYTES + 1024;
/// Seqs stay below this (offsets into the shared buffer).
const MAX_SEQ: usize = 4096;

/// A queued entry of the model store.
#[derive(Clone, Copy, Debug)]
enum Entry {
    /// A message copy (`message_id` = seq) of this many frame bytes.
    Msg(usize),
    /// A gap entry covering `from..=` its own seq.
    Gap { from: i64 },
}

#[derive(Clone, Debug)]
enum Op {
    /// A new entry of `size` bytes is committed; its live frame waits for [`Op::Live`].
    Push(usize),
    /// The hub hands over one committed frame (`pick` among those waiting, so out of order).
    Live(usize),
    /// The connection pumps (it does so after live frames that need a read).
    Pump,
    /// The client acknowledges; `pick` chooses a seq around what exists (possibly unknown).
    AckUpTo(i64),
    AckSeq(i64),
    AckMessage(i64),
    /// The gathered acknowledgements are written to the store, then the window pumps.
    Flush,
    /// The sweep drops the `n` oldest entries, replaced by one gap entry at the newest
    /// dropped seq (merging a leading gap), as `QueueStore::trim_queues` does.
    Expire(usize),
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 1usize..200,
        2 => 100_000usize..1_200_000,
        1 => Just(MAX_BYTES),
        1 => (MAX_BYTES - 10)..MAX_FRAME,
    ]
}

/// A backlog: small frames only (the frame bound binds) or mixed sizes (the byte bound binds).
fn backlog() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        proptest::collection::vec(1usize..200, 240..400),
        proptest::collection::vec(size(), 0..300),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => size().prop_map(Op::Push),
        5 => any::<usize>().prop_map(Op::Live),
        2 => Just(Op::Pump),
        2 => (-3i64..400).prop_map(Op::AckUpTo),
        2 => (-3i64..400).prop_map(Op::AckSeq),
        1 => (-3i64..400).prop_map(Op::AckMessage),
        2 => Just(Op::Flush),
        1 => (1usize..40).prop_map(Op::Expire),
    ]
}

struct Harness {
    buffer: Bytes,
    gap_buffer: Bytes,
    /// Seqs released as a gap entry.
    sent_gaps: BTreeSet<i64>,
    /// The `from` of every gap entry read (a read-ahead entry may go out after a later sweep
    /// merged it away).
    gap_from: BTreeMap<i64, i64>,
    /// The device's queue.
    store: BTreeMap<i64, Entry>,
    last_seq: i64,
    h: i64,
    window: Window,
    /// Seqs of the frames released, in order.
    delivered: Vec<i64>,
    /// Index in `delivered` where `sync_done` went out, with its values.
    sync_done: Option<(usize, u64, i64)>,
    /// Gap entries delivered: (from, to).
    gaps: Vec<(i64, i64)>,
    /// Every entry ever queued (not gaps).
    pushed: BTreeSet<i64>,
    /// Committed entries not yet handed over live.
    pending_live: Vec<Ready>,
    now: Instant,
}

impl Harness {
    fn new(backlog: &[usize]) -> Self {
        let mut h = Self {
            buffer: Bytes::from(vec![0u8; MAX_SEQ + MAX_FRAME]),
            gap_buffer: Bytes::from(vec![0u8; MAX_SEQ + 64]),
            sent_gaps: BTreeSet::new(),
            gap_from: BTreeMap::new(),
            store: BTreeMap::new(),
            last_seq: 0,
            h: 0,
            window: Window::new(0),
            delivered: Vec::new(),
            sync_done: None,
            gaps: Vec::new(),
            pushed: BTreeSet::new(),
            pending_live: Vec::new(),
            now: Instant::now(),
        };
        for s in backlog {
            h.append(*s);
        }
        h.h = h.last_seq;
        h.window = Window::new(h.h);
        h.pump();
        h
    }

    fn append(&mut self, size: usize) -> i64 {
        self.last_seq += 1;
        self.store.insert(self.last_seq, Entry::Msg(size));
        self.pushed.insert(self.last_seq);
        self.last_seq
    }

    fn size_of(e: Entry) -> usize {
        match e {
            Entry::Msg(n) => n,
            Entry::Gap { .. } => 40,
        }
    }

    fn ready(&self, seq: i64, e: Entry) -> Ready {
        let off = usize::try_from(seq).expect("positive seq");
        let buffer = match e {
            Entry::Msg(_) => &self.buffer,
            Entry::Gap { .. } => &self.gap_buffer,
        };
        Ready {
            seq,
            frame: buffer.slice(off..off + Self::size_of(e)),
            meta: match e {
                Entry::Msg(_) => EntryMeta {
                    message: Some(MessageId::from_u128(seq as u128)),
                    receipt: true,
                },
                Entry::Gap { .. } => EntryMeta::default(),
            },
        }
    }

    fn take(&mut self, out: Vec<Out>) {
        for o in out {
            match o {
                Out::Frame(f) => {
                    let at = f.as_ptr() as usize;
                    let gap = self.gap_buffer.as_ptr() as usize;
                    if (gap..gap + self.gap_buffer.len()).contains(&at) {
                        let seq = (at - gap) as i64;
                        let Some(from) = self.gap_from.get(&seq) else {
                            panic!("gap frame {seq} was never read");
                        };
                        self.gaps.push((*from, seq));
                        self.sent_gaps.insert(seq);
                        self.delivered.push(seq);
                    } else {
                        self.delivered
                            .push((at - self.buffer.as_ptr() as usize) as i64);
                    }
                }
                Out::SyncDone { count, last_seq } => {
                    assert!(self.sync_done.is_none(), "one sync_done");
                    self.sync_done = Some((self.delivered.len(), count, last_seq));
                }
            }
        }
    }

    /// What `Feed::pump` does, against the model store.
    fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut out = Vec::new();
            self.window.release(&mut out);
            self.take(out);
            if let Some((after, upto)) = self.window.reconcile_request() {
                let queued: Vec<i64> = self
                    .store
                    .range(after + 1..=upto)
                    .map(|(s, _)| *s)
                    .collect();
                self.window.on_reconcile(&queued);
                continue;
            }
            let Some(req) = self.window.read_request() else {
                return;
            };
            let (mut entries, mut bytes, mut cut) = (Vec::new(), 0u64, false);
            let upto = req.upto.unwrap_or(i64::MAX);
            for (&seq, &e) in self.store.range(req.after + 1..) {
                if seq > upto || entries.len() as u64 >= req.limit {
                    break;
                }
                let n = Self::size_of(e) as u64;
                if !entries.is_empty() && bytes + n > req.max_bytes {
                    cut = true;
                    break;
                }
                bytes += n;
                if let Entry::Gap { from } = e {
                    self.gap_from.insert(seq, from);
                }
                entries.push(self.ready(seq, e));
            }
            let complete = !cut && (entries.len() as u64) < req.limit;
            let mut out = Vec::new();
            self.window.on_read(req, entries, complete, &mut out);
            self.take(out);
        }
        panic!("pump does not settle");
    }

    fn check_bounds(&self) {
        let w = &self.window;
        assert!(
            w.in_flight.len() <= MAX_FRAMES,
            "at most {MAX_FRAMES} in flight"
        );
        let bytes: usize = w.in_flight.iter().map(|s| s.bytes).sum();
        assert_eq!(bytes, w.in_flight_bytes, "byte count matches the frames");
        assert!(
            bytes <= MAX_BYTES || w.in_flight.len() == 1,
            "over {MAX_BYTES} bytes only for one frame alone: {} frames, {bytes} bytes",
            w.in_flight.len()
        );
        assert!(
            w.in_flight
                .iter()
                .zip(w.in_flight.iter().skip(1))
                .all(|(a, b)| a.seq < b.seq),
            "in-flight seqs ascend"
        );
        assert!(w.held.len() <= MAX_HELD && w.held_bytes <= MAX_HELD_BYTES);
        assert!(
            self.delivered.windows(2).all(|p| p[0] < p[1]),
            "frames leave in strictly ascending seq, each once: {:?}",
            self.delivered
        );
    }

    /// An acknowledgement: removes exactly the in-flight entries it names, nothing otherwise.
    fn ack(&mut self, sel: AckSelector) {
        let before: Vec<i64> = self.window.in_flight.iter().map(|s| s.seq).collect();
        let pending = self.window.pending.acks.clone();
        let expected: Vec<i64> = match sel {
            AckSelector::UpTo(n) => before.iter().copied().filter(|s| *s > n).collect(),
            AckSelector::Seq(n) => before.iter().copied().filter(|s| *s != n).collect(),
            AckSelector::Message(id) => {
                let hit = before.iter().position(|s| {
                    MessageId::from_u128(*s as u128) == id && !self.sent_gaps.contains(s)
                });
                let mut v = before.clone();
                if let Some(i) = hit {
                    v.remove(i);
                }
                v
            }
        };
        let removed = self.window.ack(sel, self.now);
        let after: Vec<i64> = self.window.in_flight.iter().map(|s| s.seq).collect();
        assert_eq!(after, expected, "{sel:?} removes exactly what it names");
        assert_eq!(removed, after.len() < before.len());
        if !removed {
            assert_eq!(
                self.window.pending.acks, pending,
                "a no-op ack gathers nothing"
            );
        }
    }

    /// Writes the gathered acknowledgements as `DeliveryStore::ack` does.
    fn flush(&mut self) {
        if let Some((acks, receipts)) = self.window.take_acks() {
            assert!(acks.seqs.windows(2).all(|p| p[0] < p[1]));
            assert!(acks.seqs.iter().all(|s| *s > acks.upto));
            for r in &receipts {
                assert_eq!(r.message_id, MessageId::from_u128(r.seq as u128));
            }
            self.store
                .retain(|s, _| *s > acks.upto && !acks.seqs.contains(s));
        }
        self.pump();
    }

    fn expire(&mut self, n: usize) {
        let dropped: Vec<(i64, Entry)> = self.store.iter().take(n).map(|(s, e)| (*s, *e)).collect();
        if !dropped.iter().any(|(_, e)| matches!(e, Entry::Msg(_))) {
            return;
        }
        let mut from = dropped[0].0;
        for (s, e) in &dropped {
            if let Entry::Gap { from: f } = e {
                from = from.min(*f);
            }
            self.store.remove(s);
        }
        let last = dropped[dropped.len() - 1].0;
        self.store.insert(last, Entry::Gap { from });
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Push(size) => {
                if self.last_seq as usize + 1 >= MAX_SEQ {
                    return;
                }
                let seq = self.append(size);
                let r = self.ready(seq, Entry::Msg(size));
                self.pending_live.push(r);
            }
            Op::Live(pick) => {
                if !self.pending_live.is_empty() {
                    let r = self.pending_live.remove(pick % self.pending_live.len());
                    self.live(r);
                }
            }
            Op::Pump => self.pump(),
            Op::AckUpTo(n) => self.ack(AckSelector::UpTo(n)),
            Op::AckSeq(n) => self.ack(AckSelector::Seq(n)),
            Op::AckMessage(n) => self.ack(AckSelector::Message(MessageId::from_u128(n as u128))),
            Op::Flush => self.flush(),
            Op::Expire(n) => {
                self.expire(n);
                // The sweep tells nobody; the window finds out when it is full (reconcile).
            }
        }
        self.check_bounds();
    }

    fn live(&mut self, r: Ready) {
        let mut out = Vec::new();
        self.window.on_live(r, &mut out);
        self.take(out);
    }

    /// The hub hands over what it still holds; the client acknowledges everything it gets until
    /// the queue is empty.
    fn drain(&mut self) {
        for r in std::mem::take(&mut self.pending_live) {
            self.live(r);
        }
        self.pump();
        for _ in 0..100_000 {
            if self.store.is_empty() {
                return;
            }
            self.ack(AckSelector::UpTo(i64::MAX));
            self.flush();
            self.check_bounds();
            if !self.store.is_empty()
                && self.window.in_flight() == 0
                && self.window.read_request().is_none()
            {
                // Nothing in flight and nothing to read, yet the store holds entries: only
                // acceptable for entries the window already sent (their acknowledgement is
                // what the client owes).
                let stuck: Vec<i64> = self.store.keys().copied().collect();
                panic!("entries never delivered: {stuck:?}");
            }
        }
        panic!("drain does not settle");
    }

    fn check_delivery(&self) {
        let (at, count, last_seq) = self.sync_done.expect("sync_done went out");
        assert_eq!(last_seq, self.h, "sync_done names H");
        assert_eq!(
            count, at as u64,
            "sync_done counts the backlog frames before it"
        );
        assert!(
            self.delivered[..at].iter().all(|s| *s <= self.h),
            "backlog first"
        );
        assert!(
            self.delivered[at..].iter().all(|s| *s > self.h),
            "then newer only"
        );
        let delivered: BTreeSet<i64> = self.delivered.iter().copied().collect();
        for s in &self.pushed {
            let covered = self.gaps.iter().any(|(from, to)| from <= s && s <= to);
            assert!(
                delivered.contains(s) || covered,
                "seq {s} neither delivered nor in a delivered gap"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn window_bounds_order_and_completeness(
        backlog in backlog(),
        ops in proptest::collection::vec(op(), 0..300),
    ) {
        let mut h = Harness::new(&backlog);
        h.check_bounds();
        for op in &ops {
            h.apply(op);
        }
        h.drain();
        h.check_delivery();
    }

    #[test]
    fn acks_of_unknown_or_old_seqs_change_nothing(
        backlog in proptest::collection::vec(1usize..100, 1..50),
        bogus in proptest::collection::vec(prop_oneof![i64::MIN..1, 10_000i64..i64::MAX], 1..20),
    ) {
        let mut h = Harness::new(&backlog);
        let in_flight: Vec<i64> = h.window.in_flight.iter().map(|s| s.seq).collect();
        // Acknowledge the first half for real, then the same seqs again and bogus ones.
        let half = in_flight.len() / 2;
        for s in &in_flight[..half] {
            prop_assert!(h.window.ack(AckSelector::Seq(*s), h.now));
        }
        let left: Vec<i64> = h.window.in_flight.iter().map(|s| s.seq).collect();
        let pending = h.window.pending.acks.clone();
        if let Some(last) = half.checked_sub(1).map(|i| in_flight[i]) {
            prop_assert!(!h.window.ack(AckSelector::UpTo(last), h.now), "old up_to_seq");
        }
        for s in in_flight[..half].iter().chain(&bogus) {
            prop_assert!(!h.window.ack(AckSelector::Seq(*s), h.now));
            prop_assert!(!h.window.ack(AckSelector::Message(MessageId::from_u128(*s as u128)), h.now));
        }
        for s in &bogus {
            if *s < 1 {
                prop_assert!(!h.window.ack(AckSelector::UpTo(*s), h.now));
            }
        }
        let now: Vec<i64> = h.window.in_flight.iter().map(|s| s.seq).collect();
        prop_assert_eq!(now, left);
        prop_assert_eq!(&h.window.pending.acks, &pending);
    }
}
