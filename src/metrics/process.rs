//! The standard `process_*` families of the Prometheus client libraries (same names, types and
//! units as the Go and Python clients' process collectors), read from `/proc/self` at each
//! scrape. Linux only: elsewhere the module is not built and the families are absent.
//!
//! | name | kind | from |
//! |---|---|---|
//! | `process_cpu_seconds_total` | counter | `/proc/self/stat` utime + stime |
//! | `process_resident_memory_bytes` | gauge | `/proc/self/stat` rss × page size |
//! | `process_virtual_memory_bytes` | gauge | `/proc/self/stat` vsize |
//! | `process_threads` | gauge | `/proc/self/stat` num_threads |
//! | `process_start_time_seconds` | gauge | `/proc/stat` btime + `/proc/self/stat` starttime |
//! | `process_open_fds` | gauge | entries of `/proc/self/fd` |
//! | `process_max_fds` | gauge | `/proc/self/limits` "Max open files" soft limit (absent when unlimited) |
//!
//! A file that cannot be read or parsed leaves its families out of that scrape, rather than
//! reporting a zero that did not happen.

use std::sync::{Mutex, PoisonError};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge, IntGauge, Opts};

use super::MetricsError;

/// The fields of `/proc/self/stat` the families use.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Stat {
    /// User and system CPU time, in clock ticks.
    pub(super) cpu_ticks: u64,
    pub(super) threads: i64,
    /// Since boot, in clock ticks.
    pub(super) start_ticks: u64,
    pub(super) vsize: u64,
    /// In pages.
    pub(super) rss_pages: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may hold spaces
/// and parentheses itself, so the fields are counted from the last `)`.
pub(super) fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `f[0]` is field 3 (state): field N is `f[N - 3]`.
    let num = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        cpu_ticks: num(14)?.checked_add(num(15)?)?,
        threads: f.get(20 - 3)?.parse().ok()?,
        start_ticks: num(22)?,
        vsize: num(23)?,
        rss_pages: num(24)?,
    })
}

/// The soft "Max open files" limit of `/proc/<pid>/limits`; `None` when unlimited.
pub(super) fn parse_max_fds(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The `btime` (boot time, seconds since the epoch) of `/proc/stat`.
pub(super) fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// Reads the `process_*` families from `/proc/self` when scraped.
pub(super) struct ProcessCollector {
    descs: Vec<Desc>,
    cpu: Counter,
    resident: IntGauge,
    virtual_memory: IntGauge,
    threads: IntGauge,
    start_time: Gauge,
    open_fds: IntGauge,
    max_fds: IntGauge,
    /// Clock ticks per second and the page size.
    ticks: f64,
    page: u64,
    /// Seconds since the epoch at boot (it does not change while the process runs).
    boot_time: Option<u64>,
    /// One scrape at a time: the CPU counter is moved by the difference to its last value.
    scrape: Mutex<()>,
}

impl ProcessCollector {
    pub(super) fn new() -> Result<Self, MetricsError> {
        let int = |name: &str, help: &str| IntGauge::with_opts(Opts::new(name, help));
        let cpu = Counter::with_opts(Opts::new(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
        ))?;
        let resident = int(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
        )?;
        let virtual_memory = int(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
        )?;
        let threads = int("process_threads", "Number of OS threads in the process.")?;
        let start_time = Gauge::with_opts(Opts::new(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
        ))?;
        let open_fds = int("process_open_fds", "Number of open file descriptors.")?;
        let max_fds = int(
            "process_max_fds",
            "Maximum number of open file descriptors.",
        )?;
        let mut descs = Vec::new();
        descs.extend(cpu.desc().into_iter().cloned());
        for g in [&resident, &virtual_memory, &threads, &open_fds, &max_fds] {
            descs.extend(g.desc().into_iter().cloned());
        }
        descs.extend(start_time.desc().into_iter().cloned());
        Ok(Self {
            descs,
            cpu,
            resident,
            virtual_memory,
            threads,
            start_time,
            open_fds,
            max_fds,
            ticks: rustix::param::clock_ticks_per_second().max(1) as f64,
            page: rustix::param::page_size() as u64,
            boot_time: std::fs::read_to_string("/proc/stat")
                .ok()
                .as_deref()
                .and_then(parse_boot_time),
            scrape: Mutex::new(()),
        })
    }
}

fn gauge(g: &IntGauge, v: u64) -> Vec<MetricFamily> {
    g.set(i64::try_from(v).unwrap_or(i64::MAX));
    g.collect()
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _one = self.scrape.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::with_capacity(7);
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        if let Some(stat) = stat.as_deref().and_then(parse_stat) {
            let cpu = stat.cpu_ticks as f64 / self.ticks;
            let past = self.cpu.get();
            if cpu > past {
                self.cpu.inc_by(cpu - past);
            }
            out.extend(self.cpu.collect());
            out.extend(gauge(
                &self.resident,
                stat.rss_pages.saturating_mul(self.page),
            ));
            out.extend(gauge(&self.virtual_memory, stat.vsize));
            out.extend(gauge(&self.threads, stat.threads.max(0) as u64));
            if let Some(boot) = self.boot_time {
                self.start_time
                    .set(boot as f64 + stat.start_ticks as f64 / self.ticks);
                out.extend(self.start_time.collect());
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            out.extend(gauge(&self.open_fds, dir.count() as u64));
        }
        let limits = std::fs::read_to_string("/proc/self/limits").ok();
        if let Some(max) = limits.as_deref().and_then(parse_max_fds) {
            out.extend(gauge(&self.max_fds, max));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        // A command name with spaces and a `)` of its own.
        let text = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 2311 0 0 0 \
                    150 45 0 0 20 0 17 0 98765 1234567890 4321 18446744073709551615 \
                    1 1 0 0 0 0 0 4096 17663 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                cpu_ticks: 195,
                threads: 17,
                start_ticks: 98_765,
                vsize: 1_234_567_890,
                rss_pages: 4321,
            })
        );
        assert_eq!(parse_stat("4242 (cut short) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn limits_and_boot_time() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_fds(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_max_fds(unlimited), None);
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1733470000\nprocesses 9\n"),
            Some(1_733_470_000)
        );
        assert_eq!(parse_boot_time("cpu 1\n"), None);
    }

    /// The families read this process: it has started, holds memory, threads and files.
    #[test]
    fn reads_this_process() {
        let c = ProcessCollector::new().expect("collector");
        let families = c.collect();
        let value = |name: &str| -> f64 {
            let f = families
                .iter()
                .find(|f| f.name() == name)
                .unwrap_or_else(|| panic!("{name} missing"));
            let m = &f.get_metric()[0];
            if name.ends_with("_total") {
                m.get_counter().get_value()
            } else {
                m.get_gauge().get_value()
            }
        };
        assert!(value("process_resident_memory_bytes") > 1_000_000.0);
        assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
        assert!(value("process_threads") >= 1.0);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        let started = value("process_start_time_seconds");
        assert!(
            started <= now + 1.0 && started > now - 86_400.0,
            "{started}"
        );
        // CPU time only grows, however often it is read.
        let first = value("process_cpu_seconds_total");
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        let again = c.collect();
        let second = again
            .iter()
            .find(|f| f.name() == "process_cpu_seconds_total")
            .map(|f| f.get_metric()[0].get_counter().get_value())
            .expect("cpu");
        assert!(second >= first);
    }
}
