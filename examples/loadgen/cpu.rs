//! CPU time over the measured window: `utime + stime` (fields 14 and 15 of `/proc/<pid>/stat`)
//! of the server (`--pid`) and of the generator itself, sampled once when the senders start and
//! once at the end of the run (`run_end`), the same span over which deliveries are counted.

use std::thread::JoinHandle;
use std::time::Instant;

/// `AT_CLKTCK` in the auxiliary vector: what `sysconf(_SC_CLK_TCK)` answers.
const AT_CLKTCK: u64 = 17;

/// Clock ticks per second of `/proc/<pid>/stat` times. Read from `/proc/self/auxv` (the value
/// `sysconf(_SC_CLK_TCK)` returns, without `libc` and the `unsafe` the crate forbids); 100, the
/// Linux `USER_HZ` on every mainstream architecture, when that cannot be read.
fn ticks_per_s() -> u64 {
    const WORD: usize = std::mem::size_of::<usize>();
    let from_auxv = std::fs::read("/proc/self/auxv").ok().and_then(|raw| {
        let words: Vec<u64> = raw
            .chunks_exact(WORD)
            .map(|c| {
                let mut b = [0u8; WORD];
                b.copy_from_slice(c);
                usize::from_ne_bytes(b) as u64
            })
            .collect();
        words
            .chunks_exact(2)
            .find(|kv| kv[0] == AT_CLKTCK)
            .map(|kv| kv[1])
            .filter(|&hz| hz > 0)
    });
    from_auxv.unwrap_or(100)
}

/// `utime + stime` of a process (`"self"` or a pid), in clock ticks: every thread, live or ended.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2 (`comm`) is in parentheses and may hold spaces: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // field 3 is the first after ')'
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Warns when `--pid` is cargo rather than the server (still building when the generator
/// started?): cargo's own CPU time and RSS are not the server's.
pub(super) fn check_pid(pid: u32) {
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) if comm.trim() == "cargo" => eprintln!(
            "warning: --pid {pid} is cargo, not the server: CPU and RSS figures will be cargo's; \
             pass the pid of the server binary itself"
        ),
        Ok(_) => {}
        Err(_) => eprintln!("warning: --pid {pid}: no such process; CPU and RSS will be null"),
    }
}

#[derive(Clone, Copy)]
struct Sample {
    server: Option<u64>,
    own: Option<u64>,
}

/// The servers' CPU is the sum over `pids` (one process per node); none without pids.
fn sample(pids: &[u32]) -> Sample {
    let server = (!pids.is_empty())
        .then(|| {
            pids.iter()
                .map(|p| cpu_ticks(&p.to_string()))
                .sum::<Option<u64>>()
        })
        .flatten();
    Sample {
        server,
        own: cpu_ticks("self"),
    }
}

/// The first sample, and a thread that takes the second at the end of the window (a plain
/// thread, so a busy runtime cannot delay it).
pub(super) struct CpuWindow {
    first: Sample,
    second: JoinHandle<Sample>,
}

/// CPU seconds over the window.
pub(super) struct CpuUsed {
    pub(super) server_s: Option<f64>,
    pub(super) own_s: Option<f64>,
}

impl CpuWindow {
    /// Samples now and at `end`.
    pub(super) fn start(pids: Vec<u32>, end: tokio::time::Instant) -> Self {
        let end: Instant = end.into_std();
        let first = sample(&pids);
        let second = std::thread::spawn(move || {
            std::thread::sleep(end.saturating_duration_since(Instant::now()));
            sample(&pids)
        });
        Self { first, second }
    }

    /// Waits for the second sample.
    pub(super) fn finish(self) -> CpuUsed {
        let Ok(second) = self.second.join() else {
            return CpuUsed {
                server_s: None,
                own_s: None,
            };
        };
        let hz = ticks_per_s() as f64;
        let used = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?) as f64 / hz);
        CpuUsed {
            server_s: used(self.first.server, second.server),
            own_s: used(self.first.own, second.own),
        }
    }
}

impl CpuUsed {
    /// µs of server and generator CPU per message: (`server_cpu_us_per_msg`,
    /// `loadgen_cpu_us_per_msg`); null without a sample or without messages.
    pub(super) fn per_msg(&self, messages: u64) -> (Option<f64>, Option<f64>) {
        let per = |s: Option<f64>| {
            s.filter(|_| messages > 0)
                .map(|s| s * 1e6 / messages as f64)
        };
        (per(self.server_s), per(self.own_s))
    }
}
