//! The `melo` binary operators run, as a child process configured through `.env` in its
//! working directory.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::Client;

/// The `melo` binary cargo built for this test run.
pub fn melo_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_melo"))
}

/// `melo ARGS` in `dir` to completion, with `env` on top of a clean environment (no `DB_URL`,
/// `REDIS_URL`, `MELO_DATA_DIR` or `RUST_BACKTRACE`; `RUST_LOG=warn`).
pub fn run_melo(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(melo_binary());
    cmd.current_dir(dir)
        .args(args)
        .env_remove("DB_URL")
        .env_remove("REDIS_URL")
        .env_remove("MELO_DATA_DIR")
        .env_remove("RUST_BACKTRACE")
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run melo")
}

pub struct Server {
    pub child: Child,
    pub client: Client,
    pub port: u16,
    /// Later announcements (`melo websocket listening on ws://ADDR`).
    announced: std::sync::mpsc::Receiver<String>,
}

/// A test that panics before `stop` must not leave the server running (it would hold the test
/// run's output pipe open and hang whatever reads it).
impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Server {
    pub fn http_addr(&self) -> SocketAddr {
        let base = self.client.base.strip_prefix("http://").expect("http URL");
        base.parse().expect("HTTP address")
    }

    /// The second WebSocket listener, from its start-up line.
    pub fn ws_addr(&self) -> SocketAddr {
        let line = self
            .announced
            .recv_timeout(Duration::from_secs(60))
            .expect("server announced its WebSocket listener");
        line.strip_prefix("ws://")
            .unwrap_or_else(|| panic!("ws:// URL: {line}"))
            .parse()
            .expect("WebSocket address")
    }
}

pub fn start(workdir: &Path) -> Server {
    start_with(workdir, &[])
}

/// The binary in `workdir` with `env` set on top of a clean environment (`RUST_LOG=warn`).
pub fn start_with(workdir: &Path, env: &[(&str, &str)]) -> Server {
    start_args(workdir, &[], env)
}

/// `melo ARGS` in `workdir` with `env` set on top of a clean environment (`RUST_LOG=warn`).
pub fn start_args(workdir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(melo_binary());
    cmd.current_dir(workdir)
        .args(args)
        .env_remove("DB_URL")
        .env_remove("REDIS_URL")
        .env_remove("MELO_DATA_DIR")
        .env("RUST_LOG", "warn")
        // Tests run in parallel: not the default 127.0.0.1:9090.
        .env("METRICS_ADDR", "127.0.0.1:0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn melo");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let (ws_tx, announced) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("melo listening on ") {
                let _ = tx.send(url.to_owned());
            } else if let Some(url) = line.strip_prefix("melo websocket listening on ") {
                let _ = ws_tx.send(url.to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("server announced its address");
    let port = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    Server {
        child,
        client: Client::new(url),
        port,
        announced,
    }
}

/// Sends SIGTERM.
pub fn terminate(s: &Server) {
    let pid = s.child.id().to_string();
    let ok = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "SIGTERM delivered");
}

/// Waits up to `limit` for the process to exit with status 0 (kills it and panics otherwise).
pub fn wait_exit(mut s: Server, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Some(status) = s.child.try_wait().expect("wait") {
            assert!(status.success(), "graceful exit on SIGTERM: {status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = s.child.kill();
    panic!("server did not stop within {limit:?} of SIGTERM");
}

/// SIGTERM, then a clean exit within 10 s.
pub fn stop(s: Server) {
    terminate(&s);
    wait_exit(s, Duration::from_secs(10));
}
