//! Prometheus metrics of one node, served by `GET /metrics` (docs/protocol.md §4.1).
//!
//! One [`Metrics`] per server, held by the services' shared core. Counters are plain
//! atomics; the hot paths resolve their label sets once (per route, per store operation) and
//! never take a lock to count. Labels never carry uids, ids, IPs or tokens: routes are the route
//! table's templates, frame types are the frame code's own lists of the types it decodes and
//! sends (anything else is `other`), and everything else is a fixed word.
//!
//! Families (all prefixed `melo_`):
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `http_requests_total` | counter | `method`, `route`, `status` |
//! | `http_request_duration_seconds` | histogram | `method`, `route` |
//! | `ws_connections` | gauge | |
//! | `ws_frames_total` | counter | `direction` (`in`/`out`), `type` |
//! | `ws_unacked_frames` | gauge | durable frames sent and not yet acknowledged |
//! | `ws_backlog_entries` | histogram | queue depth of a device when its socket connects |
//! | `messages_stored_total` | counter | `kind` (`dm`/`chat`) |
//! | `scheduled_messages_total` | counter | `outcome` (`scheduled`, `sent`, `discarded`) |
//! | `deliveries_total` | counter | `path` (`live`: written to a socket as it happened; `replay`: read back from the queue) |
//! | `receipts_total` | counter | `status` (`delivered`/`read`) |
//! | `rate_limited_total` | counter | `kind` (`http`, `ws`, `login`, `slow_mode`) |
//! | `push_total` | counter | `result` (`sent`, `gone`, `refused`, `failed`, `dropped`) |
//! | `bus_messages_total` | counter | `direction` (`out`: published; `in`: received from other nodes) |
//! | `bus_notes_total` | counter | `direction`: the notes those messages carried |
//! | `store_operation_duration_seconds` | histogram | `op` (trait method) |
//! | `store_errors_total` | counter | `op` |
//! | `ephemeral_operation_duration_seconds` | histogram | `op` |
//! | `ephemeral_errors_total` | counter | `op` |
//! | `build_info` | gauge (always 1) | `version`, `features`, `profile` |
//!
//! Beside them: the node bus's health, `bus_dropped_notes_total{reason}` and more (see
//! `src/metrics/bus.rs`), and on Linux the standard unprefixed `process_*` families
//! (`src/metrics/process.rs`).
//! docs/metrics.md lists every family for operators.

/// Implements a backend trait for a metering wrapper (a struct with `inner` and `ops:
/// OpMeters` fields and a `done(op, started, &result)` method): every method delegates to
/// `self.inner` and is timed under its own name, so labels are derived from the method names
/// and a new method costs one line here. `$names` receives the list of method names; items
/// after the list (methods that are not timed) go into the impl as they are.
macro_rules! metered {
    ($wrapper:ty, $trait:path, $names:ident {
        $(fn $name:ident(&self $(, $arg:ident : $ty:ty)* $(,)?) -> $ret:ty;)*
    } $($extra:tt)*) => {
        /// The operation labels of this trait, in declaration order.
        pub(crate) const $names: &[&str] = &[$(stringify!($name)),*];

        #[async_trait::async_trait]
        impl $trait for $wrapper {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    let started = std::time::Instant::now();
                    let r = self.inner.$name($($arg),*).await;
                    self.done(stringify!($name), started, &r);
                    r
                }
            )*
            $($extra)*
        }
    };
}

mod bus;
mod ephemeral;
mod listener;
#[cfg(target_os = "linux")]
mod process;
mod store;

pub(crate) use bus::{BusMeters, Dropped};
pub use ephemeral::MeteredEphemeral;
pub use store::MeteredStore;

use std::fmt;

use crate::service::frames;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The `Content-Type` of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Latency buckets in seconds: 100 µs to 10 s.
const LATENCY_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// A metrics error (registration of a duplicate family, or encoding).
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(String);

impl From<prometheus::Error> for MetricsError {
    fn from(e: prometheus::Error) -> Self {
        Self(e.to_string())
    }
}

/// Per-operation latency and error handles of a wrapped backend, resolved once (no label
/// lookup, so no lock, per call).
#[derive(Debug)]
pub(crate) struct OpMeters(std::collections::HashMap<&'static str, (Histogram, IntCounter)>);

impl OpMeters {
    /// Resolves the label handles of every operation in `ops` once.
    pub(crate) fn new(
        ops: &[&[&'static str]],
        duration: &HistogramVec,
        errors: &IntCounterVec,
    ) -> Self {
        Self(
            ops.iter()
                .flat_map(|list| list.iter())
                .map(|op| {
                    let handles = (
                        duration.with_label_values(&[op]),
                        errors.with_label_values(&[op]),
                    );
                    (*op, handles)
                })
                .collect(),
        )
    }

    /// One call of operation `op` that started at `started`; `failed` counts an error.
    pub(crate) fn observe(&self, op: &str, started: std::time::Instant, failed: bool) {
        if let Some((duration, errors)) = self.0.get(op) {
            duration.observe(started.elapsed().as_secs_f64());
            if failed {
                errors.inc();
            }
        }
    }
}

/// What became of a scheduled message (`melo_scheduled_messages_total{outcome}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScheduleStep {
    /// Accepted by `POST /schedule/message`.
    Scheduled = 0,
    /// Sent at its time.
    Sent = 1,
    /// Dropped at its time: its authorization no longer held.
    Discarded = 2,
}

/// The node's metric families.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    pub(crate) ws_connections: IntGauge,
    /// Frames by type, received and sent.
    frames: [FrameCounters; 2],
    pub(crate) ws_unacked: IntGauge,
    pub(crate) ws_backlog: Histogram,
    messages_stored: [IntCounter; 2],
    /// `[scheduled, sent, discarded]`.
    scheduled: [IntCounter; 3],
    deliveries: [IntCounter; 2],
    receipts: [IntCounter; 2],
    rate_limited: [IntCounter; 4],
    push: [IntCounter; 5],
    /// `[out, in]`.
    bus_messages: [IntCounter; 2],
    bus_notes: [IntCounter; 2],
    bus_health: BusMeters,
    pub(crate) store_duration: HistogramVec,
    pub(crate) store_errors: IntCounterVec,
    pub(crate) ephemeral_duration: HistogramVec,
    pub(crate) ephemeral_errors: IntCounterVec,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn counter(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, MetricsError> {
    let c = IntCounterVec::new(Opts::new(name, help).namespace("melo"), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<HistogramVec, MetricsError> {
    let opts = HistogramOpts::new(name, help)
        .namespace("melo")
        .buckets(LATENCY_BUCKETS.to_vec());
    let h = HistogramVec::new(opts, labels)?;
    r.register(Box::new(h.clone()))?;
    Ok(h)
}

/// The Cargo features this build has (`melo_build_info{features}`).
fn features() -> String {
    let all = [
        ("sqlite", cfg!(feature = "sqlite")),
        ("mysql", cfg!(feature = "mysql")),
        ("redis", cfg!(feature = "redis")),
        ("web-push", cfg!(feature = "web-push")),
        ("tls", cfg!(feature = "tls")),
        ("fuzzing", cfg!(feature = "fuzzing")),
    ];
    let on: Vec<&str> = all.iter().filter(|(_, on)| *on).map(|(f, _)| *f).collect();
    on.join(",")
}

/// `melo_build_info{version,features,profile} 1`: what this binary is, to join on in queries.
fn build_info(r: &Registry) -> Result<(), MetricsError> {
    let info = IntGaugeVec::new(
        Opts::new(
            "build_info",
            "Always 1: the crate version, the Cargo features and the build profile of this node",
        )
        .namespace("melo"),
        &["version", "features", "profile"],
    )?;
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    info.with_label_values(&[env!("CARGO_PKG_VERSION"), &features(), profile])
        .set(1);
    r.register(Box::new(info))?;
    Ok(())
}

/// Resolves `values` of a one-label family once.
fn fixed<const N: usize>(family: &IntCounterVec, values: [&str; N]) -> [IntCounter; N] {
    values.map(|v| family.with_label_values(&[v]))
}

fn gauge(r: &Registry, name: &str, help: &str) -> Result<IntGauge, MetricsError> {
    let g = IntGauge::with_opts(Opts::new(name, help).namespace("melo"))?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

impl Metrics {
    /// Fresh families in a new registry.
    pub fn new() -> Result<Self, MetricsError> {
        Self::with_registry(Registry::new())
    }

    /// Fresh families registered in `registry` (to expose them beside an embedder's own).
    /// On Linux this includes the standard `process_*` families, unless `registry` already has
    /// them (an embedder's own process collector): then those are left as they are.
    pub fn with_registry(registry: Registry) -> Result<Self, MetricsError> {
        let r = &registry;
        build_info(r)?;
        #[cfg(target_os = "linux")]
        match r.register(Box::new(process::ProcessCollector::new()?)) {
            Ok(()) | Err(prometheus::Error::AlreadyReg) => {}
            Err(e) => return Err(e.into()),
        }
        let backlog = Histogram::with_opts(
            HistogramOpts::new(
                "ws_backlog_entries",
                "Queued entries of a device when its socket connected (its queue depth)",
            )
            .namespace("melo")
            .buckets(vec![0.0, 1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0]),
        )?;
        r.register(Box::new(backlog.clone()))?;
        let frames = counter(
            r,
            "ws_frames_total",
            "WebSocket text frames by direction and type",
            &["direction", "type"],
        )?;
        let frames = [
            FrameCounters::new(&frames, "in", frames::client_types()),
            FrameCounters::new(&frames, "out", frames::server_types()),
        ];
        let stored = counter(
            r,
            "messages_stored_total",
            "Messages stored, by kind",
            &["kind"],
        )?;
        let scheduled = counter(
            r,
            "scheduled_messages_total",
            "Scheduled messages accepted, sent at their time, and discarded (authorization gone)",
            &["outcome"],
        )?;
        let deliveries = counter(
            r,
            "deliveries_total",
            "Durable entries written to sockets: live, or replayed from the queue",
            &["path"],
        )?;
        let receipts = counter(
            r,
            "receipts_total",
            "Delivery and read receipts queued for authors",
            &["status"],
        )?;
        let limited = counter(
            r,
            "rate_limited_total",
            "Requests and frames refused by a limit, by kind",
            &["kind"],
        )?;
        let push = counter(r, "push_total", "Push deliveries by result", &["result"])?;
        let bus_messages = counter(
            r,
            "bus_messages_total",
            "Node bus messages published, and received from other nodes",
            &["direction"],
        )?;
        let bus_notes = counter(
            r,
            "bus_notes_total",
            "Notes carried by node bus messages, by direction",
            &["direction"],
        )?;
        let dirs =
            |c: &IntCounterVec| [c.with_label_values(&["out"]), c.with_label_values(&["in"])];
        let (bus_messages, bus_notes) = (dirs(&bus_messages), dirs(&bus_notes));
        Ok(Self {
            http_requests: counter(
                r,
                "http_requests_total",
                "HTTP requests by method, route template and status",
                &["method", "route", "status"],
            )?,
            http_duration: histogram(
                r,
                "http_request_duration_seconds",
                "HTTP request latency by method and route template",
                &["method", "route"],
            )?,
            ws_connections: gauge(r, "ws_connections", "Open authenticated sockets")?,
            frames,
            ws_unacked: gauge(
                r,
                "ws_unacked_frames",
                "Durable frames sent to sockets and not yet acknowledged",
            )?,
            ws_backlog: backlog,
            messages_stored: fixed(&stored, ["dm", "chat"]),
            scheduled: fixed(&scheduled, ["scheduled", "sent", "discarded"]),
            deliveries: fixed(&deliveries, ["live", "replay"]),
            receipts: fixed(&receipts, ["delivered", "read"]),
            rate_limited: fixed(&limited, ["http", "ws", "login", "slow_mode"]),
            push: fixed(&push, ["sent", "gone", "failed", "dropped", "refused"]),
            bus_messages,
            bus_notes,
            bus_health: BusMeters::register(r)?,
            store_duration: histogram(
                r,
                "store_operation_duration_seconds",
                "Store operation latency by operation",
                &["op"],
            )?,
            store_errors: counter(
                r,
                "store_errors_total",
                "Store errors by operation",
                &["op"],
            )?,
            ephemeral_duration: histogram(
                r,
                "ephemeral_operation_duration_seconds",
                "Ephemeral-state operation latency by operation",
                &["op"],
            )?,
            ephemeral_errors: counter(
                r,
                "ephemeral_errors_total",
                "Ephemeral-state errors by operation",
                &["op"],
            )?,
            registry,
        })
    }

    /// The registry (add an embedder's own families to it).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> Result<Vec<u8>, MetricsError> {
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(out)
    }

    /// Counts one HTTP request of `route` (a template, or `unmatched`).
    pub(crate) fn http(&self, method: &http::Method, route: &str, status: u16, secs: f64) {
        let method = method_label(method);
        let status = status_label(status);
        self.http_requests
            .with_label_values(&[method, route, status])
            .inc();
        self.http_duration
            .with_label_values(&[method, route])
            .observe(secs);
    }

    /// Counts one WebSocket text frame of `kind`: received (a type the server decodes) or
    /// sent (a type it sends); any other `type` counts as `other`.
    pub(crate) fn frame(&self, incoming: bool, kind: &str) {
        self.frames[usize::from(!incoming)].count(kind);
    }

    /// Counts a stored message (`dm` or `chat`).
    pub(crate) fn message_stored(&self, chat: bool) {
        self.messages_stored[usize::from(chat)].inc();
    }

    /// Counts a scheduled message's step.
    pub(crate) fn scheduled(&self, outcome: ScheduleStep) {
        self.scheduled[outcome as usize].inc();
    }

    /// Counts `n` durable entries written to a socket, live or replayed from the queue.
    pub(crate) fn delivered(&self, live: bool, n: u64) {
        self.deliveries[usize::from(!live)].inc_by(n);
    }

    /// Counts one node bus message carrying `notes` notes, published (`out`) or received from
    /// another node.
    pub(crate) fn bus(&self, out: bool, notes: usize) {
        let i = usize::from(!out);
        self.bus_messages[i].inc();
        self.bus_notes[i].inc_by(notes as u64);
    }

    /// The bus health families (drops, losses, resyncs, queue, message age), for the cluster.
    pub(crate) fn bus_meters(&self) -> BusMeters {
        self.bus_health.clone()
    }

    /// Counts a queued receipt.
    pub(crate) fn receipt(&self, read: bool) {
        self.receipts[usize::from(read)].inc();
    }

    /// Counts a refusal by a limit.
    pub(crate) fn limited(&self, kind: Limit) {
        self.rate_limited[kind as usize].inc();
    }

    /// Counts a push outcome.
    pub(crate) fn push(&self, result: PushResult) {
        self.push[result as usize].inc();
    }
}

/// The `melo_ws_frames_total` counters of one direction: one per frame type of that
/// direction (from the frame code's own lists, [`frames::client_types`] and
/// [`frames::server_types`]), then `other`, resolved once.
struct FrameCounters {
    types: Vec<&'static str>,
    counters: Vec<IntCounter>,
}

impl FrameCounters {
    fn new(
        family: &IntCounterVec,
        direction: &str,
        types: impl Iterator<Item = &'static str>,
    ) -> Self {
        let types: Vec<&'static str> = types.collect();
        let counters = types
            .iter()
            .chain(std::iter::once(&"other"))
            .map(|t| family.with_label_values(&[direction, t]))
            .collect();
        Self { types, counters }
    }

    fn count(&self, kind: &str) {
        let i = self
            .types
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(self.types.len());
        if let Some(c) = self.counters.get(i) {
            c.inc();
        }
    }
}

/// Which limit refused (`melo_rate_limited_total{kind}`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Limit {
    /// The HTTP request budget.
    Http = 0,
    /// The per-socket frame budget.
    Ws = 1,
    /// Failed-login lockout.
    Login = 2,
    /// A chat's slow mode.
    SlowMode = 3,
}

/// A push delivery's outcome (`melo_push_total{result}`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum PushResult {
    /// Accepted by the push service.
    Sent = 0,
    /// The subscription is gone (404/410); it was deleted.
    Gone = 1,
    /// Any other failure.
    Failed = 2,
    /// Not attempted: too many deliveries in flight, or for the endpoint's host.
    Dropped = 3,
    /// The endpoint's host has no public address (docs/protocol.md §4.9); the registration was deleted.
    Refused = 4,
}

fn method_label(m: &http::Method) -> &'static str {
    match *m {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// Status codes as static labels (the set the server answers with; others are `other`).
fn status_label(status: u16) -> &'static str {
    const KNOWN: [(u16, &str); 22] = [
        (101, "101"),
        (200, "200"),
        (201, "201"),
        (204, "204"),
        (304, "304"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (409, "409"),
        (410, "410"),
        (413, "413"),
        (415, "415"),
        (422, "422"),
        (423, "423"),
        (429, "429"),
        (500, "500"),
        (501, "501"),
        (502, "502"),
        (503, "503"),
        (504, "504"),
    ];
    KNOWN
        .iter()
        .find(|(s, _)| *s == status)
        .map_or("other", |(_, l)| *l)
}

#[cfg(test)]
mod tests;
