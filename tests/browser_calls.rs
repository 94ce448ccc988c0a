//! Browser tests of the web client's calls and push: two (or three) Chromium profiles with fake
//! microphones register, become contacts and call each other through the UI only. The calls
//! reach `connected` on both sides and the call panels show audio bytes flowing; one call is
//! forced through a local coturn (relay-only ICE) and shows that its selected candidate pair is
//! a relay. The service worker's push handler is driven over CDP.
//!
//! Skipped (with a message) without chromium/chromedriver — or without coturn
//! (`/usr/bin/turnserver`, or `MELO_TEST_TURNSERVER`) for the TURN test — unless
//! `MELO_TEST_BROWSER=1`. coturn's log goes to the artifacts directory as `coturn-<port>.log`.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::browser::{artifacts_dir, Driver, Profile, WebServer, WAIT};
use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse 42";

/// A phone number no other profile of this test process uses.
fn phone() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("+7999{:03}{:04}", std::process::id() % 1000, n)
}

/// Registers a new account in `p` through the form; returns its uid.
async fn register(p: &Profile, server: &WebServer, query: &str, nickname: &str) -> String {
    p.open_app(server, query).await;
    p.click("#tab-register").await;
    p.fill("#reg-phone", &phone()).await;
    p.fill("#reg-name", nickname).await;
    p.fill("#reg-nickname", nickname).await;
    p.fill("#reg-password", PASSWORD).await;
    p.click("#register-submit").await;
    p.wait_for("body[data-auth='in']").await;
    let me = p.wait_for("#me[data-uid]").await;
    let deadline = Instant::now() + WAIT;
    loop {
        let uid = me.attr("data-uid").await.ok().flatten().unwrap_or_default();
        if uid.len() == 8 {
            return uid;
        }
        assert!(Instant::now() < deadline, "{}: no uid shown", p.name);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Logs `p` in as an existing account (a second device of that user).
async fn login(p: &Profile, server: &WebServer, uid: &str) {
    p.open_app(server, "").await;
    p.fill("#login-identifier", uid).await;
    p.fill("#login-password", PASSWORD).await;
    p.click("#login-submit").await;
    p.wait_for("body[data-auth='in']").await;
    p.wait_for_attr("#me", "data-uid", uid).await;
}

/// `a` asks `b` (uid `b_uid`) to be a contact in the Contacts view; `b` accepts.
async fn make_contacts(a: &Profile, a_uid: &str, b: &Profile, b_uid: &str) {
    a.click("#nav-contacts").await;
    a.fill("#contact-uid", b_uid).await;
    a.click("#contact-request-btn").await;
    a.wait_for(&format!("#outgoing-requests [data-uid='{b_uid}']"))
        .await;
    b.click("#nav-contacts").await;
    b.click(&format!(
        "#incoming-requests [data-uid='{a_uid}'] button[data-action='accept']"
    ))
    .await;
    b.wait_for(&format!("#contacts-list [data-uid='{a_uid}']"))
        .await;
    a.wait_for(&format!("#contacts-list [data-uid='{b_uid}']"))
        .await;
}

/// Opens the DM with `peer` from the contact list and presses its Call button.
async fn call(p: &Profile, peer: &str) {
    p.click("#nav-contacts").await;
    p.click(&format!(
        "#contacts-list [data-uid='{peer}'] button[data-action='message']"
    ))
    .await;
    p.wait_for("[data-view='conversation']").await;
    p.click("#call-start").await;
}

/// The number in attribute `attr` of the call panel's stats line.
async fn stat(p: &Profile, attr: &str) -> u64 {
    let e = p.wait_for("#call-root .call-stats").await;
    e.attr(attr)
        .await
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Waits until the panel shows audio bytes received, then until that number grows: audio keeps
/// flowing. Returns the two readings.
async fn audio_flows(p: &Profile) -> (u64, u64) {
    let deadline = Instant::now() + WAIT;
    let first = loop {
        let n = stat(p, "data-bytes-received").await;
        if n > 0 {
            break n;
        }
        if Instant::now() > deadline {
            p.screenshot("no-audio").await;
            panic!("{}: no audio bytes received within {WAIT:?}", p.name);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let deadline = Instant::now() + WAIT;
    loop {
        let n = stat(p, "data-bytes-received").await;
        if n > first {
            assert!(
                stat(p, "data-bytes-sent").await > 0,
                "{}: nothing sent",
                p.name
            );
            return (first, n);
        }
        if Instant::now() > deadline {
            p.screenshot("audio-stalled").await;
            panic!("{}: audio bytes received stayed at {first}", p.name);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How many requests to a path ending in `suffix` the page made since it loaded (the browser's
/// resource timing entries: reading state only).
async fn requests_to(p: &Profile, suffix: &str) -> usize {
    let v = p
        .eval(&format!(
            "const all = performance.getEntriesByType('resource'); \
             return [all.length, all.filter((e) => new URL(e.name).pathname.endsWith({suffix:?})).length];"
        ))
        .await;
    let total = v[0].as_u64().unwrap_or(0);
    // A full buffer (250 entries by default) would record nothing more and prove nothing.
    assert!(total < 240, "{}: {total} resource entries", p.name);
    usize::try_from(v[1].as_u64().expect("count")).expect("count")
}

async fn state(p: &Profile, s: &str) {
    p.wait_for_attr("#call-root .call-panel", "data-call-state", s)
        .await;
}

/// The panel's text, for messages.
async fn panel_text(p: &Profile) -> String {
    p.wait_for("#call-root .call-panel")
        .await
        .text()
        .await
        .unwrap_or_default()
}

/// A connected call from `a` to `b`: ring, accept, connected on both sides, audio both ways.
async fn connected_call(a: &Profile, b: &Profile, a_uid: &str, b_uid: &str, shots: &str) {
    call(a, b_uid).await;
    state(a, "ringing").await;
    state(b, "incoming").await;
    let shown = panel_text(b).await;
    assert!(shown.contains("Accept"), "{shown}");
    b.screenshot(&format!("{shots}-incoming")).await;
    b.click("#call-accept").await;
    state(a, "connected").await;
    state(b, "connected").await;
    let (a1, a2) = audio_flows(a).await;
    let (b1, b2) = audio_flows(b).await;
    eprintln!("{shots}: A received {a1} -> {a2} bytes, B received {b1} -> {b2} bytes");
    a.wait_for_text("#call-root .call-stats", "Audio received")
        .await;
    a.wait_for_text("#call-root .call-duration", "00:").await;
    assert_eq!(
        a.wait_for("#call-root .call-panel")
            .await
            .attr("data-peer")
            .await
            .ok()
            .flatten()
            .as_deref(),
        Some(b_uid)
    );
    assert_eq!(
        b.wait_for("#call-root .call-panel")
            .await
            .attr("data-peer")
            .await
            .ok()
            .flatten()
            .as_deref(),
        Some(a_uid)
    );
    a.screenshot(&format!("{shots}-connected")).await;
}

/// `by` hangs up; both panels say the call ended, keep the totals, and are closed.
async fn hang_up(by: &Profile, other: &Profile) {
    by.click("#call-hangup").await;
    for p in [by, other] {
        state(p, "ended").await;
        p.wait_for_text("#call-root .call-status", "Call ended")
            .await;
        p.wait_for_text("#call-root .call-stats", "Audio received")
            .await;
        p.click("#call-close").await;
    }
}

async fn two_contacts(
    driver: &Driver,
    server: &WebServer,
    query: &str,
) -> (Profile, String, Profile, String) {
    let a = driver.profile("alice").await;
    let b = driver.profile("bob").await;
    let a_uid = register(&a, server, query, "alice").await;
    let b_uid = register(&b, server, query, "bob").await;
    make_contacts(&a, &a_uid, &b, &b_uid).await;
    (a, a_uid, b, b_uid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_connects_carries_audio_both_ways_and_hangs_up_on_both_sides() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let server = WebServer::start(&[("STUN_URLS", "")]);
    let (a, a_uid, b, b_uid) = two_contacts(&driver, &server, "").await;
    connected_call(&a, &b, &a_uid, &b_uid, "call").await;
    // Not through a relay: no TURN server is configured.
    let route = a
        .wait_for("#call-root .call-stats")
        .await
        .attr("data-route")
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    assert_ne!(route, "relay");
    // Mute is a toggle the page reports.
    a.click("#call-mute").await;
    a.wait_for_attr("#call-mute", "aria-pressed", "true").await;
    hang_up(&a, &b).await;
    // B declines the next call: both sides see it refused.
    call(&a, &b_uid).await;
    state(&b, "incoming").await;
    b.click("#call-reject").await;
    state(&a, "rejected").await;
    a.wait_for_text("#call-root .call-status", "bob declined the call")
        .await;
    a.click("#call-close").await;
    // A gives up while it rings: B sees a missed call.
    call(&a, &b_uid).await;
    state(&b, "incoming").await;
    a.click("#call-hangup").await;
    state(&b, "missed").await;
    b.wait_for_text("#call-root .call-status", "Missed call from alice")
        .await;
    // Three calls, one fetch of the ICE servers: the answer is kept until shortly before its
    // `ttl` runs out (TURN credentials expire).
    assert_eq!(
        requests_to(&a, "/ice_servers").await,
        1,
        "alice fetched the ICE servers more than once"
    );
    for p in [&a, &b] {
        p.assert_no_console_errors().await;
    }
}

/// coturn on 127.0.0.1 with TURN REST credentials (`use-auth-secret`), killed on drop.
struct Coturn {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Coturn {
    fn program() -> Option<PathBuf> {
        let p = std::env::var_os("MELO_TEST_TURNSERVER")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/turnserver"));
        p.exists().then_some(p)
    }

    async fn start(program: &PathBuf, secret: &str) -> Coturn {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_udp_port();
        // A relay port range unlikely to collide with other tests: 200 ports somewhere in
        // 40000..60000, chosen by the listening port.
        let min = 40_000 + u32::from(port % 100) * 200;
        let log = artifacts_dir().join(format!("coturn-{port}.log"));
        let child = Command::new(program)
            .args([
                "-n",
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                &format!("--listening-port={port}"),
                &format!("--min-port={min}"),
                &format!("--max-port={}", min + 199),
                "--use-auth-secret",
                &format!("--static-auth-secret={secret}"),
                "--realm=melo",
                "--allow-loopback-peers",
                "--no-tls",
                "--no-dtls",
                "--no-tcp",
                "--no-cli",
                "--fingerprint",
                "--verbose",
                "--simple-log",
                "--no-stdout-log",
                &format!("--log-file={}", log.display()),
                &format!("--pidfile={}", dir.path().join("turn.pid").display()),
                &format!("--db={}", dir.path().join("turndb").display()),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn turnserver");
        let c = Coturn {
            child,
            port,
            log,
            _dir: dir,
        };
        // Ready when it logs its listener.
        let deadline = Instant::now() + WAIT;
        while !c.log_text().contains("UDP listener opened") {
            assert!(
                Instant::now() < deadline,
                "coturn did not start: {}",
                c.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        c
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free udp port")
        .port()
}

fn required() -> bool {
    std::env::var("MELO_TEST_BROWSER").is_ok_and(|v| v == "1" || v == "true")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_only_call_goes_through_coturn() {
    let Some(turnserver) = Coturn::program() else {
        assert!(
            !required(),
            "MELO_TEST_BROWSER=1 but turnserver (coturn) is missing"
        );
        eprintln!("skipping: /usr/bin/turnserver not installed (apt-get install coturn)");
        return;
    };
    let Some(driver) = Driver::start().await else {
        return;
    };
    let secret = "browser-test-turn-secret";
    let turn = Coturn::start(&turnserver, secret).await;
    let turn_url = format!("turn:127.0.0.1:{}?transport=udp", turn.port);
    let server = WebServer::start(&[
        ("STUN_URLS", ""),
        ("TURN_URLS", turn_url.as_str()),
        ("TURN_SECRET", secret),
    ]);
    // Bob asks for relays through the URL, Alice through her settings.
    let a = driver.profile("alice").await;
    let b = driver.profile("bob").await;
    let a_uid = register(&a, &server, "", "alice").await;
    let b_uid = register(&b, &server, "?relay=1", "bob").await;
    a.click("#nav-settings").await;
    let relay = a.wait_for("#setting-relay-calls").await;
    if !relay.is_selected().await.expect("checkbox state") {
        a.click("#setting-relay-calls").await;
    }
    b.click("#nav-settings").await;
    assert!(
        b.wait_for("#setting-relay-calls")
            .await
            .is_selected()
            .await
            .expect("checkbox state"),
        "?relay=1 shows in the setting"
    );
    make_contacts(&a, &a_uid, &b, &b_uid).await;
    connected_call(&a, &b, &a_uid, &b_uid, "turn").await;
    for p in [&a, &b] {
        p.wait_for_attr("#call-root .call-stats", "data-route", "relay")
            .await;
        p.wait_for_text("#call-root .call-stats", "via relay").await;
    }
    let log = turn.log_text();
    assert!(
        log.contains("ALLOCATE") && log.contains("success"),
        "coturn logged no allocation: {log}"
    );
    hang_up(&b, &a).await;
    // A link cannot turn the IP-hiding setting off: `?relay=0` leaves it on.
    b.open_app(&server, "?relay=0").await;
    b.wait_for("body[data-auth='in']").await;
    b.click("#nav-settings").await;
    assert!(
        b.wait_for("#setting-relay-calls")
            .await
            .is_selected()
            .await
            .expect("checkbox state"),
        "?relay=0 turned relay-only calls off"
    );
    for p in [&a, &b] {
        p.assert_no_console_errors().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_device_of_the_callee_rings_and_the_others_stop_when_one_answers() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let server = WebServer::start(&[("STUN_URLS", "")]);
    let (a, a_uid, b, b_uid) = two_contacts(&driver, &server, "").await;
    let c = driver.profile("carol").await;
    let c_uid = register(&c, &server, "", "carol").await;
    make_contacts(&c, &c_uid, &b, &b_uid).await;
    let b2 = driver.profile("bob-laptop").await;
    login(&b2, &server, &b_uid).await;
    b2.wait_for(&format!(
        "#conv-list [data-uid='{a_uid}'], #contacts-list [data-uid='{a_uid}']"
    ))
    .await;
    call(&a, &b_uid).await;
    state(&b, "incoming").await;
    state(&b2, "incoming").await;
    b2.click("#call-accept").await;
    state(&b, "answered_elsewhere").await;
    b.wait_for_text("#call-root .call-status", "another device")
        .await;
    b.screenshot("answered-elsewhere").await;
    state(&a, "connected").await;
    state(&b2, "connected").await;
    audio_flows(&a).await;
    audio_flows(&b2).await;
    // Bob is in a call: Carol's call is refused as busy, Bob's devices note a missed call.
    call(&c, &b_uid).await;
    state(&c, "busy").await;
    c.wait_for_text("#call-root .call-status", "bob is busy")
        .await;
    b2.wait_for_text("#toast", "Missed call from carol").await;
    state(&b2, "connected").await;
    hang_up(&b2, &a).await;
    for p in [&a, &b, &b2, &c] {
        p.assert_no_console_errors().await;
    }
}

/// `POST /session/{id}/goog/cdp/execute`: one DevTools command in the page's session.
#[derive(Debug)]
struct Cdp(&'static str, Value);

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({"cmd": self.0, "params": self.1});
        (http::Method::POST, Some(body.to_string()))
    }
}

/// The notifications the service worker shows now: `[{title, body}]`.
async fn notifications(p: &Profile) -> Vec<(String, String)> {
    let v = p
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             navigator.serviceWorker.ready
               .then((r) => r.getNotifications())
               .then((ns) => done(ns.map((n) => [n.title, n.body])), (e) => done(String(e)));",
            Vec::new(),
        )
        .await
        .expect("read notifications");
    serde_json::from_value(v.clone()).unwrap_or_else(|_| panic!("notifications: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_setting_and_the_service_workers_content_free_notifications() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let server = WebServer::start(&[("STUN_URLS", "")]);
    let a = driver.profile("alice").await;
    register(&a, &server, "", "alice").await;
    let origin = server.base_url();
    a.client
        .issue_cmd(Cdp(
            "Browser.grantPermissions",
            json!({"origin": origin, "permissions": ["notifications"]}),
        ))
        .await
        .expect("grant notifications");
    a.click("#nav-settings").await;
    a.click("#setting-notifications").await;
    // Headless Chromium has no reachable push service: the setting says so (or, with one, is on).
    let deadline = Instant::now() + WAIT;
    let push_state = loop {
        let s = a
            .wait_for("#push-status")
            .await
            .attr("data-push-state")
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        if s == "on" || s == "error" {
            break s;
        }
        assert!(Instant::now() < deadline, "push setting stuck in {s:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let status = a
        .wait_for("#push-status")
        .await
        .text()
        .await
        .unwrap_or_default();
    eprintln!("push setting: {push_state}: {status}");
    if push_state == "error" {
        assert!(status.contains("push service"), "{status}");
        assert!(!a
            .wait_for("#setting-notifications")
            .await
            .is_selected()
            .await
            .expect("checkbox"));
    }
    a.screenshot("notifications-setting").await;
    // The worker is installed either way; deliver pushes to it over DevTools.
    a.client
        .issue_cmd(Cdp("ServiceWorker.enable", json!({})))
        .await
        .expect("ServiceWorker.enable");
    // DevTools wants the registration's id, which the page cannot see. A fresh profile's first
    // registration gets a small number (0 in Chromium 156); a push for an id that does not exist
    // is silently dropped, so each push goes to the first few ids. A push that reaches the worker
    // before it is active is dropped too: wait for it, and deliver again until the notifications
    // show (each type has its own tag, so a repeat replaces rather than adds).
    let ready = a
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             navigator.serviceWorker.ready.then((r) => done(!!r.active), (e) => done(String(e)));",
            Vec::new(),
        )
        .await
        .expect("service worker ready");
    assert_eq!(ready, json!(true), "service worker active");
    let deadline = Instant::now() + WAIT;
    let shown = 'deliver: loop {
        for data in [
            r#"{"type":"call","call_id":"0193aa","from":"12345678"}"#,
            r#"{"type":"message","message_id":"0193bb","chat_id":null}"#,
            r#"{"type":"contact_request","from":"12345678"}"#,
        ] {
            for id in 0..8 {
                a.client
                    .issue_cmd(Cdp(
                        "ServiceWorker.deliverPushMessage",
                        json!({"origin": origin, "registrationId": id.to_string(), "data": data}),
                    ))
                    .await
                    .expect("deliver push");
            }
        }
        let round = Instant::now() + Duration::from_secs(3);
        while Instant::now() < round {
            let shown = notifications(&a).await;
            if shown.len() >= 3 {
                break 'deliver shown;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let shown = notifications(&a).await;
        assert!(Instant::now() < deadline, "notifications: {shown:?}");
    };
    let mut titles: Vec<&str> = shown.iter().map(|(t, _)| t.as_str()).collect();
    titles.sort_unstable();
    assert_eq!(titles, ["Contact request", "Incoming call", "New message"]);
    for (_, body) in &shown {
        assert!(
            !body.contains("12345678") && !body.contains("0193"),
            "{body}"
        );
    }
    a.assert_no_console_errors().await;
}
