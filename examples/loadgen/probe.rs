//! What the generator reads from outside itself: the servers' memory (`/proc`), the node bus's
//! traffic from the shared Redis (`INFO commandstats`) and from every node's `/metrics`.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::timeout;

/// VmRSS summed over the server's processes (one per node); none without pids.
pub(super) fn rss_sum_kb(pids: &[u32]) -> Option<u64> {
    (!pids.is_empty())
        .then(|| pids.iter().map(|p| rss_kb(*p)).sum::<Option<u64>>())
        .flatten()
}

/// How many `PUBLISH` and `SPUBLISH` commands the Redis at `addr` has run (`INFO commandstats`;
/// on a Redis Cluster, ask each master and add them up): the node bus's messages.
pub(super) async fn redis_publishes(addr: &str) -> Result<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("--redis {addr}"))?;
    s.write_all(b"*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n")
        .await?;
    // A bulk string: `$<len>\r\n<text>\r\n`.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            bail!("--redis {addr}: connection closed");
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(head) = text.find("\r\n") {
            let len: usize = text[1..head].parse().context("INFO reply")?;
            if buf.len() >= head + 2 + len {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let calls = |cmd: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Ok(calls("publish") + calls("spublish"))
}

/// Bus notes the nodes received from each other so far: `melo_bus_notes_total{direction="in"}`
/// of every node's `GET /metrics`, summed; `None` when a node does not serve it.
pub(super) async fn bus_notes_received(urls: &[String]) -> Option<u64> {
    use http_body_util::BodyExt;
    let client: Client<_, http_body_util::Full<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut total = 0;
    for u in urls {
        let req = http::Request::get(format!("{u}/metrics"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .ok()?;
        let resp = timeout(Duration::from_secs(5), client.request(req))
            .await
            .ok()?
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        let text = String::from_utf8_lossy(&body);
        total += text
            .lines()
            .find_map(|l| l.strip_prefix(r#"melo_bus_notes_total{direction="in"} "#))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(total)
}

/// VmRSS of a process in kB.
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
