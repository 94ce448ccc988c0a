//! [`BusMeters`]: the node bus's health (`melo_bus_*` besides the message and note counts of
//! [`Metrics::bus`](super::Metrics::bus)): notes that never reached the bus, losses the
//! receivers detected, resyncs, forgotten nodes, the publish queue and the age of the messages
//! received. Every label is a fixed word (no node ids: their number is unbounded).
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `bus_dropped_notes_total` | counter | `reason` (`queue_full`, `seal_failed`, `publish_failed`) |
//! | `bus_gaps_total` | counter | `topic` (`all`: the topic every node hears; `node`: this node's own) |
//! | `bus_missed_messages_total` | counter | |
//! | `bus_resyncs_total` | counter | `direction` (`out`: this node asked; `in`: it was asked) |
//! | `bus_nodes_forgotten_total` | counter | |
//! | `bus_nodes` | gauge | |
//! | `bus_publish_queue_notes` | gauge | |
//! | `bus_message_age_seconds` | histogram | |

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Opts, Registry};

use super::{counter, gauge, MetricsError};

/// Ages of received bus messages, in seconds: 1 ms to 30 s (older ones are refused).
const AGE_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Why notes of this node never reached the bus (`melo_bus_dropped_notes_total{reason}`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Dropped {
    /// The publish queue was full.
    QueueFull = 0,
    /// The bus message could not be sealed.
    SealFailed = 1,
    /// The bus refused or could not take the message.
    PublishFailed = 2,
}

/// Handles of the bus families, resolved once; clones count into the same series.
#[derive(Clone, Debug)]
pub(crate) struct BusMeters {
    dropped: [IntCounter; 3],
    /// `[all, node]`.
    gaps: [IntCounter; 2],
    missed: IntCounter,
    /// `[out, in]`.
    resyncs: [IntCounter; 2],
    forgotten: IntCounter,
    nodes: IntGauge,
    queue: IntGauge,
    age: Histogram,
}

impl BusMeters {
    /// The families, registered in `r`.
    pub(super) fn register(r: &Registry) -> Result<Self, MetricsError> {
        let dropped = counter(
            r,
            "bus_dropped_notes_total",
            "Notes of this node that never reached the node bus, by reason",
            &["reason"],
        )?;
        let gaps = counter(
            r,
            "bus_gaps_total",
            "Times another node's message counter skipped ahead (its messages were lost), by topic",
            &["topic"],
        )?;
        let resyncs = counter(
            r,
            "bus_resyncs_total",
            "Requests to announce sockets again: sent to another node (out) or received (in)",
            &["direction"],
        )?;
        let plain = |name: &str, help: &str| -> Result<IntCounter, MetricsError> {
            let c = IntCounter::with_opts(Opts::new(name, help).namespace("melo"))?;
            r.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let age = Histogram::with_opts(
            HistogramOpts::new(
                "bus_message_age_seconds",
                "Age of bus messages from other nodes when received (seal time to receipt)",
            )
            .namespace("melo")
            .buckets(AGE_BUCKETS.to_vec()),
        )?;
        r.register(Box::new(age.clone()))?;
        Ok(Self {
            dropped: super::fixed(&dropped, ["queue_full", "seal_failed", "publish_failed"]),
            gaps: super::fixed(&gaps, ["all", "node"]),
            missed: plain(
                "bus_missed_messages_total",
                "Bus messages of other nodes found missing by the gaps in their counters",
            )?,
            resyncs: super::fixed(&resyncs, ["out", "in"]),
            forgotten: plain(
                "bus_nodes_forgotten_total",
                "Other nodes forgotten, with their sockets, after 20 s without a message",
            )?,
            nodes: gauge(
                r,
                "bus_nodes",
                "Other nodes heard from within the last 20 s (updated every 5 s)",
            )?,
            queue: gauge(
                r,
                "bus_publish_queue_notes",
                "Notes waiting in this node's publish queue",
            )?,
            age,
        })
    }

    /// Counts `n` notes that never reached the bus.
    pub(crate) fn dropped(&self, why: Dropped, n: usize) {
        self.dropped[why as usize].inc_by(n as u64);
    }

    /// A gap of `missed` messages in another node's counter on `hub` or this node's own topic.
    pub(crate) fn gap(&self, own_topic: bool, missed: u64) {
        self.gaps[usize::from(own_topic)].inc();
        self.missed.inc_by(missed);
    }

    /// A resync this node asked for (`out`), or was asked for.
    pub(crate) fn resync(&self, out: bool) {
        self.resyncs[usize::from(!out)].inc();
    }

    /// `n` nodes forgotten.
    pub(crate) fn forgotten(&self, n: usize) {
        self.forgotten.inc_by(n as u64);
    }

    /// Other nodes heard from recently.
    pub(crate) fn nodes(&self, n: usize) {
        self.nodes.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// A note entered the publish queue.
    pub(crate) fn queued(&self) {
        self.queue.inc();
    }

    /// `n` notes left the publish queue for the publisher.
    pub(crate) fn dequeued(&self, n: usize) {
        self.queue.sub(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// A message from another node sealed `age_ms` ago (clamped at 0: clocks differ).
    pub(crate) fn received(&self, age_ms: i64) {
        self.age.observe(age_ms.max(0) as f64 / 1000.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_into_fixed_labels() {
        let r = Registry::new();
        let m = BusMeters::register(&r).expect("register");
        m.dropped(Dropped::QueueFull, 3);
        m.dropped(Dropped::PublishFailed, 2);
        m.gap(true, 4);
        m.gap(false, 1);
        m.resync(true);
        m.forgotten(2);
        m.nodes(5);
        m.queued();
        m.queued();
        m.dequeued(1);
        m.received(40);
        m.received(-7);
        let mut out = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &r.gather(), &mut out)
            .expect("encode");
        let text = String::from_utf8(out).expect("utf-8");
        for line in [
            "melo_bus_dropped_notes_total{reason=\"queue_full\"} 3",
            "melo_bus_dropped_notes_total{reason=\"seal_failed\"} 0",
            "melo_bus_dropped_notes_total{reason=\"publish_failed\"} 2",
            "melo_bus_gaps_total{topic=\"node\"} 1",
            "melo_bus_gaps_total{topic=\"all\"} 1",
            "melo_bus_missed_messages_total 5",
            "melo_bus_resyncs_total{direction=\"out\"} 1",
            "melo_bus_resyncs_total{direction=\"in\"} 0",
            "melo_bus_nodes_forgotten_total 2",
            "melo_bus_nodes 5",
            "melo_bus_publish_queue_notes 1",
            "melo_bus_message_age_seconds_bucket{le=\"0.001\"} 1",
            "melo_bus_message_age_seconds_bucket{le=\"0.05\"} 2",
            "melo_bus_message_age_seconds_count 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
