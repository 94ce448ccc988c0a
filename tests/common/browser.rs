//! Browser tests: headless Chromium (Debian's `chromium` and `chromium-driver`) driven over
//! WebDriver (fantoccini), against the `melo` binary serving its web client at `/app/`.
//!
//! Tests go through the web client only: they fill fields, click buttons and read what the page
//! shows. When `chromedriver` or `chromium` is missing they are skipped with a message, unless
//! `MELO_TEST_BROWSER=1` (CI) makes that a failure.
//!
//! Environment:
//! - `MELO_TEST_CHROMEDRIVER`, `MELO_TEST_CHROMIUM`: the programs (default `/usr/bin/...`);
//! - `MELO_TEST_WEB_DIR`: serve the client from this directory (`WEB_CLIENT_DIR`) instead of the
//!   copy built into the binary, so client edits need no rebuild;
//! - `MELO_TEST_ARTIFACTS`: where screenshots go (default `<target>/tmp/browser-artifacts`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use super::binary::{self, Server};

/// How long a wait for something on a page lasts before the test fails (a slow, shared box).
pub const WAIT: Duration = Duration::from_secs(30);

fn program(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

/// Whether browser tests must run (CI): then a missing browser fails the test.
fn required() -> bool {
    std::env::var("MELO_TEST_BROWSER").is_ok_and(|v| v == "1" || v == "true")
}

/// The directory for screenshots (created).
pub fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("MELO_TEST_ARTIFACTS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-artifacts"));
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for a child that binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// One `chromedriver` process; every [`Profile`] is a session of it.
pub struct Driver {
    child: Child,
    url: String,
    chromium: PathBuf,
    /// User data directories of the profiles (kept until the driver goes).
    profiles: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts chromedriver, or `None` (test skipped) when the browser is not installed and
    /// `MELO_TEST_BROWSER` is not set.
    pub async fn start() -> Option<Driver> {
        let driver = program("MELO_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = program("MELO_TEST_CHROMIUM", "/usr/bin/chromium");
        for p in [&driver, &chromium] {
            if !p.exists() {
                assert!(
                    !required(),
                    "MELO_TEST_BROWSER=1 but {} is missing (apt-get install chromium chromium-driver)",
                    p.display()
                );
                eprintln!(
                    "skipping browser test: {} not installed (apt-get install chromium \
                     chromium-driver; MELO_TEST_BROWSER=1 makes this a failure)",
                    p.display()
                );
                return None;
            }
        }
        let port = free_port();
        let log = artifacts_dir().join(format!("chromedriver-{port}.log"));
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(Driver {
            child,
            url,
            chromium,
            profiles: tempfile::tempdir().expect("profiles dir"),
        })
    }

    /// A browser profile named `name`: its own user data directory (cookies, localStorage,
    /// IndexedDB, service workers), kept across [`Profile::close`] and [`Driver::reopen`].
    pub async fn profile(&self, name: &str) -> Profile {
        self.open_profile(name, &[]).await
    }

    /// Like [`profile`](Self::profile) with extra Chromium switches.
    pub async fn open_profile(&self, name: &str, extra_args: &[&str]) -> Profile {
        let data_dir = self.profiles.path().join(name);
        std::fs::create_dir_all(&data_dir).expect("profile dir");
        let mut args: Vec<String> = vec![
            "--headless=new".into(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1280,860".into(),
            // Calls: fake microphone and camera, permission granted without a prompt.
            "--use-fake-device-for-media-stream".into(),
            "--use-fake-ui-for-media-stream".into(),
            // Keep WebRTC on 127.0.0.0/8: loopback candidates, no mDNS names for host addresses.
            "--allow-loopback-in-peer-connection".into(),
            "--disable-features=WebRtcHideLocalIpsWithMdns".into(),
            // Headless pages in the background must keep their timers and sockets running.
            "--disable-background-timer-throttling".into(),
            "--disable-renderer-backgrounding".into(),
            "--disable-backgrounding-occluded-windows".into(),
            format!("--user-data-dir={}", data_dir.display()),
        ];
        args.extend(extra_args.iter().map(|a| (*a).to_owned()));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium.display().to_string(),
                "args": args,
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let Value::Object(caps) = caps else {
            unreachable!("object literal")
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("browser session for {name}: {e}"));
        Profile {
            client,
            name: name.to_owned(),
        }
    }

    /// Opens a profile again after [`Profile::close`] (same user data: the client logs in again
    /// with its stored device token).
    pub async fn reopen(&self, name: &str) -> Profile {
        self.profile(name).await
    }
}

/// One browser window with its own profile.
pub struct Profile {
    pub client: Client,
    pub name: String,
}

/// `POST /session/{id}/se/log` `{"type": "browser"}`: chromedriver's console log of the page.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

impl Profile {
    /// Opens the web client of `server` (`/app/`), optionally with a query such as `?relay=1`.
    pub async fn open_app(&self, server: &WebServer, query: &str) {
        let url = format!("{}/app/{query}", server.base_url());
        self.client
            .goto(&url)
            .await
            .unwrap_or_else(|e| panic!("{}: open {url}: {e}", self.name));
    }

    /// The first element matching `css` once it is displayed (fails after [`WAIT`]).
    pub async fn wait_for(&self, css: &str) -> Element {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                if e.is_displayed().await.unwrap_or(false) {
                    return e;
                }
            }
            if Instant::now() > deadline {
                self.screenshot(&format!("timeout-{}", sanitize(css))).await;
                panic!("{}: {css} did not appear within {WAIT:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Waits until the text of the first element matching `css` contains `needle`; returns it.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let mut last = String::new();
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                if let Ok(t) = e.text().await {
                    if t.contains(needle) {
                        return t;
                    }
                    last = t;
                }
            }
            if Instant::now() > deadline {
                self.screenshot(&format!("timeout-{}", sanitize(css))).await;
                panic!(
                    "{}: {css} did not show {needle:?} within {WAIT:?} (last: {last:?})",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Waits until some element matching `css` has attribute `attr` equal to `value`.
    pub async fn wait_for_attr(&self, css: &str, attr: &str, value: &str) -> Element {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            seen.clear();
            if let Ok(all) = self.client.find_all(Locator::Css(css)).await {
                for e in all {
                    let v = e.attr(attr).await.ok().flatten();
                    if v.as_deref() == Some(value) {
                        return e;
                    }
                    seen.push(v);
                }
            }
            if Instant::now() > deadline {
                self.screenshot(&format!("timeout-{}", sanitize(css))).await;
                panic!(
                    "{}: no {css} with {attr}={value:?} within {WAIT:?} (seen: {seen:?})",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Every element matching `css` now (no waiting).
    pub async fn all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_default()
    }

    /// The texts of every element matching `css` now.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for e in self.all(css).await {
            out.push(e.text().await.unwrap_or_default());
        }
        out
    }

    /// Clears the field matching `css` and types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.wait_for(css).await;
        e.clear()
            .await
            .unwrap_or_else(|err| panic!("{}: clear {css}: {err}", self.name));
        e.send_keys(text)
            .await
            .unwrap_or_else(|err| panic!("{}: type into {css}: {err}", self.name));
    }

    /// Clicks the element matching `css` once it is displayed and enabled.
    pub async fn click(&self, css: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let e = self.wait_for(css).await;
            if e.is_enabled().await.unwrap_or(false) && e.click().await.is_ok() {
                return;
            }
            if Instant::now() > deadline {
                self.screenshot(&format!("click-{}", sanitize(css))).await;
                panic!("{}: could not click {css} within {WAIT:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Saves a PNG of the window as `<artifacts>/<profile>-<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let path = artifacts_dir().join(format!("{}-{}.png", self.name, sanitize(name)));
        match self.client.screenshot().await {
            Ok(png) => {
                if let Err(e) = std::fs::write(&path, png) {
                    eprintln!("screenshot {}: {e}", path.display());
                }
            }
            Err(e) => eprintln!("screenshot {}: {e}", path.display()),
        }
        path
    }

    /// Console entries of level SEVERE since the last call (chromedriver's browser log).
    pub async fn console_errors(&self) -> Vec<String> {
        let log = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .unwrap_or_else(|e| panic!("{}: browser log: {e}", self.name));
        log.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Fails the test when the page logged an error (an uncaught exception, a failed load, a
    /// `console.error`).
    pub async fn assert_no_console_errors(&self) {
        let errors = self.console_errors().await;
        assert!(
            errors.is_empty(),
            "{}: console errors: {errors:#?}",
            self.name
        );
    }

    /// Runs `script` in the page (for reading state only: tests act through the UI).
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("{}: script: {e}", self.name))
    }

    /// Ends the browser session (the profile's data stays for [`Driver::reopen`]).
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(60)
        .collect()
}

/// The `melo` binary on SQLite in a temporary directory, serving the web client.
pub struct WebServer {
    pub dir: tempfile::TempDir,
    pub server: Option<Server>,
    env: Vec<(String, String)>,
    port: u16,
}

impl WebServer {
    /// A server with the browser-test settings plus `extra` (`NAME`, `value`).
    pub fn start(extra: &[(&str, &str)]) -> WebServer {
        let dir = tempfile::tempdir().expect("tempdir");
        // A fixed port so that a restarted server keeps the pages' origin.
        let port = free_port();
        let mut env: Vec<(String, String)> = vec![
            ("HTTP_PORT".into(), port.to_string()),
            ("WS_PORT".into(), "0".into()),
            ("BCRYPT_COST".into(), "4".into()),
            ("RATE_LIMIT_CALLS".into(), "100000".into()),
            ("FAILED_LOGIN_LIMIT".into(), "1000".into()),
            ("FAILED_LOGIN_IP_LIMIT".into(), "100000".into()),
            ("WS_MAX_CONNECTIONS_PER_IP".into(), "1000".into()),
            // No public STUN server: every test's traffic stays on 127.0.0.0/8.
            ("STUN_URLS".into(), String::new()),
        ];
        if let Some(web) = std::env::var_os("MELO_TEST_WEB_DIR").filter(|v| !v.is_empty()) {
            env.push(("WEB_CLIENT_DIR".into(), web.to_string_lossy().into_owned()));
        }
        for (k, v) in extra {
            env.retain(|(name, _)| name != k);
            env.push(((*k).to_owned(), (*v).to_owned()));
        }
        let mut s = WebServer {
            dir,
            server: None,
            env,
            port,
        };
        s.launch();
        s
    }

    fn launch(&mut self) {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let server = binary::start_with(self.dir.path(), &env);
        assert_eq!(server.port, self.port, "the server took the chosen port");
        self.server = Some(server);
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The SQLite files (database, WAL, shared memory) and key files under the data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("melo-data")
    }

    /// SIGKILL: no graceful shutdown, nothing flushed beyond what was committed.
    pub fn kill(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
    }

    /// Starts the server again on the same port and data.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

/// Every file below `dir`, recursively.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Files below `dir` whose bytes contain `needle` (UTF-8 and UTF-16LE, as SQLite may store
/// either).
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let utf8 = needle.as_bytes().to_vec();
    let utf16: Vec<u8> = needle
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    files_below(dir)
        .into_iter()
        .filter(|p| {
            std::fs::read(p).is_ok_and(|bytes| {
                [&utf8, &utf16]
                    .iter()
                    .any(|n| bytes.windows(n.len()).any(|w| w == n.as_slice()))
            })
        })
        .collect()
}
