//! Command-line flags of the load generator.

use anyhow::{anyhow, bail, Context, Result};

use super::STAMP;

pub(super) struct Args {
    /// The server; with `--bare`, the bare relay (default `http://127.0.0.1:8090`).
    pub(super) url: String,
    /// DM mode: a second node; receivers' sockets connect there (two-node measurement).
    pub(super) url2: Option<String>,
    /// DM mode: a third node; with it, pair `i` has its sender on node `i mod 3` and its
    /// receiver on node `(i + 1) mod 3`, so every DM crosses two nodes.
    pub(super) url3: Option<String>,
    /// `host:port` of the Redis the nodes share: its `PUBLISH`/`SPUBLISH` count over the run
    /// gives the bus messages per delivered DM.
    pub(super) redis: Option<String>,
    pub(super) pairs: usize,
    pub(super) duration: u64,
    pub(super) window: usize,
    pub(super) payload: usize,
    pub(super) idle: usize,
    /// The server's processes (one per node): their CPU and RSS are summed.
    pub(super) pids: Vec<u32>,
    /// Group mode: members of one chat (0 = DM pairs mode).
    pub(super) group: usize,
    /// Group mode: members with an open socket (default half).
    pub(super) online: Option<usize>,
    /// Group mode: messages per second from the owner.
    pub(super) rate: usize,
    /// Against `examples/bare_relay.rs`: no HTTP setup, synthetic uids, `/ws?uid=`.
    pub(super) bare: bool,
}

const USAGE: &str =
    "usage: loadgen [--url http://127.0.0.1:8088] [--url2 <second node> [--url3 <third node>]] \
[--redis <host:port of the shared Redis>] [--pairs 100] [--duration 10] \
[--window 32] [--payload 64] [--idle 0] [--pid <server pid>[,<pid of another node>…]] \
[--group <members> [--online <members with a socket>] [--rate <messages/s>]] \
[--bare (against examples/bare_relay.rs; --url defaults to http://127.0.0.1:8090)]";

pub(super) fn parse_args() -> Result<Args> {
    let mut url = None;
    let mut a = Args {
        url: String::new(),
        url2: None,
        url3: None,
        redis: None,
        pairs: 100,
        duration: 10,
        window: 32,
        payload: 64,
        idle: 0,
        pids: Vec::new(),
        group: 0,
        online: None,
        rate: 10,
        bare: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        if flag == "--bare" {
            a.bare = true;
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))?;
        let num = |v: &str| -> Result<usize> {
            v.parse()
                .with_context(|| format!("{flag} {v}: not a number"))
        };
        match flag.as_str() {
            "--url" => url = Some(value.trim_end_matches('/').to_owned()),
            "--url2" => a.url2 = Some(value.trim_end_matches('/').to_owned()),
            "--url3" => a.url3 = Some(value.trim_end_matches('/').to_owned()),
            "--redis" => a.redis = Some(value),
            "--pairs" => a.pairs = num(&value)?,
            "--duration" => a.duration = num(&value)? as u64,
            "--window" => a.window = num(&value)?,
            "--payload" => a.payload = num(&value)?,
            "--idle" => a.idle = num(&value)?,
            "--pid" => {
                a.pids = value
                    .split(',')
                    .map(|p| num(p).map(|n| n as u32))
                    .collect::<Result<_>>()?
            }
            "--group" => a.group = num(&value)?,
            "--online" => a.online = Some(num(&value)?),
            "--rate" => a.rate = num(&value)?,
            other => bail!("unknown flag {other}\n{USAGE}"),
        }
    }
    a.url = url.unwrap_or_else(|| {
        if a.bare {
            "http://127.0.0.1:8090".into()
        } else {
            "http://127.0.0.1:8088".into()
        }
    });
    if a.bare && (a.group > 0 || a.url2.is_some()) {
        bail!("--bare runs DM pairs on one relay: no --group, no --url2");
    }
    if a.url3.is_some() && a.url2.is_none() {
        bail!("--url3 needs --url2");
    }
    if a.pairs == 0 || a.window == 0 || a.duration == 0 {
        bail!("--pairs, --window and --duration must be at least 1");
    }
    if a.payload < STAMP {
        bail!("--payload must be at least {STAMP} bytes (the send instant travels in it)");
    }
    Ok(a)
}
