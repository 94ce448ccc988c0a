//! Property tests of the gap computation (`DeviceQueue::trim`, what
//! [`QueueStore::trim_queues`](crate::store::QueueStore::trim_queues) does per queue): random
//! queues (seqs with holes, ascending queue times), random sweeps with random `QUEUE_MAX` and
//! expiry times, and appends between them.

use proptest::prelude::*;

use super::*;

/// Appends an entry at `seq` queued at `t` (ms).
fn push(q: &mut DeviceQueue, seq: i64, t: i64) {
    q.last_seq = seq;
    q.entries.insert(seq, Slot::Event(Bytes::new()));
    q.queued_at.insert(seq, Timestamp::from_millis(t));
}

fn gaps(q: &DeviceQueue) -> Vec<(i64, Gap)> {
    q.entries
        .iter()
        .filter_map(|(s, e)| match e {
            Slot::Gap(g) => Some((*s, *g)),
            _ => None,
        })
        .collect()
}

fn real(q: &DeviceQueue) -> Vec<i64> {
    q.entries
        .iter()
        .filter(|(_, e)| !matches!(e, Slot::Gap(_)))
        .map(|(s, _)| *s)
        .collect()
}

#[derive(Clone, Debug)]
enum Step {
    /// Appends entries: seq steps (holes model acknowledged entries) and time steps.
    Append(Vec<(i64, i64)>),
    /// A sweep: `max_len`, and the expiry time relative to the clock.
    Trim(u64, i64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        proptest::collection::vec((1i64..4, 0i64..50), 1..40).prop_map(Step::Append),
        (0u64..30, -100i64..100).prop_map(|(m, e)| Step::Trim(m, e)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn trim_keeps_count_order_and_bounds(steps in proptest::collection::vec(step(), 1..30)) {
        let mut q = DeviceQueue::default();
        let (mut clock, mut added, mut first_dropped) = (0i64, 0u64, None::<i64>);
        for s in steps {
            match s {
                Step::Append(v) => {
                    for (ds, dt) in v {
                        clock += dt;
                        let seq = q.last_seq + ds;
                        push(&mut q, seq, clock);
                        added += 1;
                    }
                }
                Step::Trim(max_len, ago) => {
                    let before = real(&q);
                    let expire_before = Timestamp::from_millis(clock + ago);
                    let got = q.trim(max_len, expire_before);
                    let after = real(&q);
                    let g = gaps(&q);
                    // Nothing is lost: every real entry is still queued or counted in the gap.
                    let counted: u64 = g.iter().map(|(_, g)| g.count).sum();
                    prop_assert_eq!(after.len() as u64 + counted, added);
                    // At most one gap, first, below every real entry, its range before it.
                    prop_assert!(g.len() <= 1);
                    if let Some((seq, gap)) = g.first() {
                        prop_assert_eq!(q.entries.keys().next(), Some(seq));
                        prop_assert!(gap.from_seq <= *seq);
                        prop_assert!(gap.count >= 1);
                        prop_assert!(after.first().is_none_or(|s| s > seq));
                    }
                    // The oldest go: what stays is the newest part of what was there.
                    prop_assert!(before.ends_with(&after));
                    let dropped = &before[..before.len() - after.len()];
                    if let Some(first) = dropped.first() {
                        first_dropped.get_or_insert(*first);
                    }
                    // A new gap exactly when a real entry went, at the newest dropped seq, from
                    // the first seq ever dropped (merged gaps keep the oldest).
                    prop_assert_eq!(got, dropped.last().copied());
                    if let Some(seq) = got {
                        prop_assert_eq!(g.first().map(|(s, _)| *s), Some(seq));
                        prop_assert_eq!(g.first().map(|(_, g)| g.from_seq), first_dropped);
                    }
                    // Bounds: QUEUE_MAX counting the gap (one gap alone stays), and no expired
                    // entry left at the head.
                    prop_assert!(q.entries.len() as u64 <= max_len.max(1));
                    if let Some(s) = after.first() {
                        prop_assert!(q.queued_at[s] >= expire_before);
                    }
                    // A second pass with the same limits changes nothing.
                    let entries = q.entries.len();
                    prop_assert_eq!(q.trim(max_len, expire_before), None);
                    prop_assert_eq!(q.entries.len(), entries);
                    prop_assert_eq!(q.entries.len(), q.queued_at.len());
                }
            }
        }
    }
}
