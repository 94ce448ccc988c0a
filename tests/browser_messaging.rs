//! Browser tests of the web client's core: registration and login, contacts, end-to-end
//! encrypted direct messages with delivery and read ticks, a user's second device (its key
//! restored from the password-wrapped backup), and a message queued for an offline device across
//! a server crash (SIGKILL) and restart.
//!
//! Tests act through the client only (forms and buttons); `eval` merely reads the page. Skipped
//! (with a message) without chromium/chromedriver unless `MELO_TEST_BROWSER=1`.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::browser::{files_below, files_containing, Driver, Profile, WebServer, WAIT};

const PASSWORD: &str = "correct horse 42";

/// A phone number no other profile of this test process uses.
fn phone() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("+7998{:03}{:04}", std::process::id() % 1000, n)
}

/// Registers a new account in `p` through the form; returns its uid.
async fn register(p: &Profile, server: &WebServer, nickname: &str, shot: Option<&str>) -> String {
    p.open_app(server, "").await;
    p.wait_for("#login-form").await;
    if let Some(name) = shot {
        p.screenshot(name).await;
    }
    p.click("#tab-register").await;
    p.fill("#reg-phone", &phone()).await;
    p.fill("#reg-name", nickname).await;
    p.fill("#reg-nickname", nickname).await;
    p.fill("#reg-password", PASSWORD).await;
    p.click("#register-submit").await;
    p.wait_for("body[data-auth='in']").await;
    uid_of(p).await
}

/// The uid the header shows once logged in.
async fn uid_of(p: &Profile) -> String {
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

/// Logs `p` in with the password (a new device of that user).
async fn login(p: &Profile, server: &WebServer, uid: &str) {
    p.open_app(server, "").await;
    p.fill("#login-identifier", uid).await;
    p.fill("#login-password", PASSWORD).await;
    p.click("#login-submit").await;
    p.wait_for("body[data-auth='in']").await;
    p.wait_for_attr("#me", "data-uid", uid).await;
}

/// `a` asks `b` to be a contact by uid; `b` accepts; both list the other.
async fn make_contacts(a: &Profile, a_uid: &str, b: &Profile, b_uid: &str, shot: bool) {
    a.click("#nav-contacts").await;
    a.fill("#contact-uid", b_uid).await;
    a.click("#contact-request-btn").await;
    a.wait_for(&format!("#outgoing-requests [data-uid='{b_uid}']"))
        .await;
    b.click("#nav-contacts").await;
    b.wait_for(&format!("#incoming-requests [data-uid='{a_uid}']"))
        .await;
    if shot {
        b.screenshot("contacts-request").await;
    }
    b.click(&format!(
        "#incoming-requests [data-uid='{a_uid}'] button[data-action='accept']"
    ))
    .await;
    b.wait_for(&format!("#contacts-list [data-uid='{a_uid}']"))
        .await;
    a.wait_for(&format!("#contacts-list [data-uid='{b_uid}']"))
        .await;
    // Both are online: each sees the other's presence dot turn online.
    a.wait_for(&format!(
        "#contacts-list [data-uid='{b_uid}'] .presence[data-presence='online']"
    ))
    .await;
    b.wait_for(&format!(
        "#contacts-list [data-uid='{a_uid}'] .presence[data-presence='online']"
    ))
    .await;
    if shot {
        a.screenshot("contacts").await;
    }
}

/// Opens the DM with `peer` from the sidebar.
async fn open_dm(p: &Profile, peer: &str) {
    p.click(&format!("#conv-list li[data-uid='{peer}'] button"))
        .await;
    p.wait_for(&format!(
        "section[data-view='conversation'][data-peer='{peer}']"
    ))
    .await;
}

/// Types and sends `text` in the open conversation; returns the server's message_id once the
/// message is stored (status `queued` or later).
async fn send(p: &Profile, text: &str) -> String {
    p.fill("#composer-input", text).await;
    p.click("#composer-send").await;
    stored(p, text).await
}

/// The message_id of the page's own message `text` once the server stored it.
async fn stored(p: &Profile, text: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = p
            .eval(&format!(
                "for (const m of document.querySelectorAll('#message-list .message[data-mine=\"true\"][data-message-id]')) {{
                   if (m.querySelector('.message-text').textContent === {text:?} && m.dataset.status !== 'sent') return m.dataset.messageId;
                 }} return null;"
            ))
            .await;
        if let Some(id) = found.as_str() {
            return id.to_owned();
        }
        if Instant::now() > deadline {
            p.screenshot("send-timeout").await;
            panic!("{}: {text:?} was not stored within {WAIT:?}", p.name);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Waits until message `id` shows `text` in the open conversation of `p`.
async fn sees(p: &Profile, id: &str, text: &str) {
    p.wait_for_text(
        &format!("#message-list .message[data-message-id='{id}'] .message-text"),
        text,
    )
    .await;
}

/// The client_id the sender's page chose for its message `id`.
async fn client_id(p: &Profile, id: &str) -> String {
    p.wait_for(&format!(".message[data-message-id='{id}']"))
        .await
        .attr("data-client-id")
        .await
        .ok()
        .flatten()
        .expect("the sender's page keeps the message's client_id")
}

/// How many messages of the open conversation show exactly `text`.
async fn count_text(p: &Profile, text: &str) -> u64 {
    p.eval(&format!(
        "return [...document.querySelectorAll('#message-list .message .message-text')].filter(e => e.textContent === {text:?}).length;"
    ))
    .await
    .as_u64()
    .expect("count")
}

/// Waits until the page's socket has replayed its backlog (`sync_done`).
async fn synced(p: &Profile) {
    let deadline = Instant::now() + WAIT;
    while p
        .eval("return window.__melo && window.__melo.synced === true;")
        .await
        != true
    {
        assert!(
            Instant::now() < deadline,
            "{}: no sync_done within {WAIT:?}",
            p.name
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dms_are_end_to_end_encrypted_with_ticks_and_no_plaintext_reaches_the_server() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let server = WebServer::start(&[]);
    let a = driver.profile("alice").await;
    let b = driver.profile("bob").await;
    let a_uid = register(&a, &server, "alice", Some("login")).await;
    let b_uid = register(&b, &server, "bob", None).await;
    make_contacts(&a, &a_uid, &b, &b_uid, true).await;

    // Alice writes while Bob is elsewhere in the app: delivered, not read.
    b.click("#nav-settings").await;
    open_dm(&a, &b_uid).await;
    let hello = format!("Hello Bob, secret-{}", std::process::id());
    let m1 = send(&a, &hello).await;
    a.wait_for_attr(
        &format!(".message[data-message-id='{m1}']"),
        "data-status",
        "delivered",
    )
    .await;
    // Bob's sidebar shows the unread DM; opening it reads it and Alice's tick turns "read".
    b.wait_for(&format!("#conv-list li[data-uid='{a_uid}'] .badge"))
        .await;
    open_dm(&b, &a_uid).await;
    sees(&b, &m1, &hello).await;
    a.wait_for_attr(
        &format!(".message[data-message-id='{m1}']"),
        "data-status",
        "read",
    )
    .await;

    // Typing indicator, then the reply the other way.
    b.fill("#composer-input", "typing").await;
    a.wait_for_text("#typing-indicator", "typing").await;
    let reply = format!("Hi Alice, reply-{}", std::process::id());
    let m2 = send(&b, &reply).await;
    sees(&a, &m2, &reply).await;
    b.wait_for_attr(
        &format!(".message[data-message-id='{m2}']"),
        "data-status",
        "read",
    )
    .await;
    let c1 = client_id(&a, &m1).await;
    let c2 = client_id(&b, &m2).await;
    a.screenshot("conversation-ticks").await;
    b.screenshot("conversation").await;

    // Settings: this session listed as the current one.
    a.click("#nav-settings").await;
    a.wait_for("#sessions-list li[data-current='true']").await;
    a.screenshot("settings-sessions").await;

    // The server's files hold the messages (the history of a DM is in SQLite) but no plaintext.
    let data = server.data_dir();
    let files = files_below(&data);
    assert!(
        files
            .iter()
            .any(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 0)),
        "no server data files under {}",
        data.display()
    );
    // The search can succeed: each message's idempotency key (the client_id the sender's page
    // chose, stored next to the payload) is found in the database files.
    for client_id in [&c1, &c2] {
        assert!(
            !files_containing(&data, client_id).is_empty(),
            "client_id {client_id} not found in {}",
            data.display()
        );
    }
    for secret in [&hello, &reply, &"secret-".to_owned(), &"reply-".to_owned()] {
        let hits = files_containing(&data, secret);
        assert!(hits.is_empty(), "plaintext {secret:?} found in {hits:?}");
    }
    for p in [&a, &b] {
        p.assert_no_console_errors().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_device_logs_in_with_the_password_and_reads_messages_and_self_copies() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let server = WebServer::start(&[]);
    let a = driver.profile("alice").await;
    let b = driver.profile("bob").await;
    let a_uid = register(&a, &server, "alice", None).await;
    let b_uid = register(&b, &server, "bob", None).await;
    make_contacts(&a, &a_uid, &b, &b_uid, false).await;

    // Bob's laptop: logs in with the password; the private key comes from the backup.
    let b2 = driver.profile("bob-laptop").await;
    login(&b2, &server, &b_uid).await;
    b2.wait_for(&format!("#conv-list li[data-uid='{a_uid}']"))
        .await;
    synced(&b2).await;

    // Alice writes: both of Bob's devices decrypt it.
    open_dm(&a, &b_uid).await;
    let text = format!("to both of Bob's devices {}", std::process::id());
    let m1 = send(&a, &text).await;
    open_dm(&b, &a_uid).await;
    open_dm(&b2, &a_uid).await;
    sees(&b, &m1, &text).await;
    sees(&b2, &m1, &text).await;

    // Bob answers from the phone: the laptop shows the self-copy as Bob's own message.
    let reply = format!("answer from the phone {}", std::process::id());
    let m2 = send(&b, &reply).await;
    sees(&a, &m2, &reply).await;
    sees(&b2, &m2, &reply).await;
    b2.wait_for_attr(
        &format!(".message[data-message-id='{m2}']"),
        "data-mine",
        "true",
    )
    .await;
    // And the laptop sees its ticks move when Alice reads it.
    b2.wait_for_attr(
        &format!(".message[data-message-id='{m2}']"),
        "data-status",
        "read",
    )
    .await;
    b2.screenshot("second-device-self-copy").await;

    // The laptop lists both sessions; it logs the phone out.
    b2.click("#nav-settings").await;
    b2.wait_for("#sessions-list li[data-current='true']").await;
    b2.wait_for("#sessions-list li[data-current='false']").await;
    b2.screenshot("settings-two-sessions").await;
    b2.click("#sessions-list li[data-current='false'] button[data-action='revoke']")
        .await;
    b.wait_for("body[data-auth='out']").await;
    b.wait_for("#login-form").await;
    // The laptop logs itself out: back at the login form, and a reload does not log it in.
    b2.click("#logout-btn").await;
    b2.wait_for("body[data-auth='out']").await;
    b2.open_app(&server, "").await;
    b2.wait_for("#login-form").await;
    assert_eq!(
        b2.eval("return document.body.dataset.auth;").await,
        "out",
        "logged out for good"
    );
    for p in [&a, &b, &b2] {
        p.assert_no_console_errors().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_queued_for_an_offline_device_survives_a_server_crash_and_shows_once() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let mut server = WebServer::start(&[]);
    let a = driver.profile("alice").await;
    let b = driver.profile("bob").await;
    let a_uid = register(&a, &server, "alice", None).await;
    let b_uid = register(&b, &server, "bob", None).await;
    make_contacts(&a, &a_uid, &b, &b_uid, false).await;
    open_dm(&a, &b_uid).await;
    let before = format!("before the crash {}", std::process::id());
    let m0 = send(&a, &before).await;
    open_dm(&b, &a_uid).await;
    sees(&b, &m0, &before).await;

    // Bob closes the browser; Alice's message waits in his device queue.
    b.close().await;
    a.wait_for(&format!(
        "#conv-list li[data-uid='{b_uid}'] .presence[data-presence='offline']"
    ))
    .await;
    let queued = format!("while you were away {}", std::process::id());
    let m1 = send(&a, &queued).await;
    a.wait_for_attr(
        &format!(".message[data-message-id='{m1}']"),
        "data-status",
        "queued",
    )
    .await;

    // The server dies without a chance to flush anything, and comes back.
    server.kill();
    a.wait_for("#conn-state[data-state='closed']").await;
    // Alice writes while the server is down: the message waits in the page, marked "sent".
    let offline = format!("written during the outage {}", std::process::id());
    a.fill("#composer-input", &offline).await;
    a.click("#composer-send").await;
    a.wait_for_attr(
        "#message-list .message[data-client-id]",
        "data-status",
        "sent",
    )
    .await;
    server.restart();
    a.wait_for("#conn-state[data-state='open']").await;
    // On the new connection the page sends it again; the server stores it once.
    let m2 = stored(&a, &offline).await;
    // Reconnection attempts while the server was down may be logged by the browser; nothing else.
    for e in a.console_errors().await {
        assert!(
            e.contains("ERR_CONNECTION_REFUSED") || e.contains("WebSocket"),
            "alice: console error during the outage: {e}"
        );
    }

    // Bob opens the app again: auto-login with the device token, the backlog is replayed.
    let b = driver.reopen("bob").await;
    b.open_app(&server, "").await;
    b.wait_for_attr("#me", "data-uid", &b_uid).await;
    synced(&b).await;
    b.wait_for(&format!("#conv-list li[data-uid='{a_uid}'] .badge"))
        .await;
    open_dm(&b, &a_uid).await;
    sees(&b, &m1, &queued).await;
    sees(&b, &m2, &offline).await;
    // Alice sees it read.
    a.wait_for_attr(
        &format!(".message[data-message-id='{m1}']"),
        "data-status",
        "read",
    )
    .await;
    // Exactly once, also after the history reload of the conversation settles.
    let deadline = Instant::now() + WAIT;
    while b
        .eval("return document.getElementById('conv-loading').hidden;")
        .await
        != true
    {
        assert!(Instant::now() < deadline, "history did not finish loading");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(
        count_text(&b, &queued).await,
        1,
        "the queued message shows once"
    );
    assert_eq!(
        count_text(&b, &before).await,
        1,
        "the earlier message shows once"
    );
    assert_eq!(
        count_text(&b, &offline).await,
        1,
        "the resent message shows once"
    );
    assert_eq!(
        count_text(&a, &offline).await,
        1,
        "the sender shows it once"
    );
    let rows = b
        .all(&format!(".message[data-message-id='{m1}']"))
        .await
        .len();
    assert_eq!(rows, 1);
    // A reload (replay, history, cache) still shows it once.
    b.open_app(&server, "").await;
    b.wait_for_attr("#me", "data-uid", &b_uid).await;
    synced(&b).await;
    open_dm(&b, &a_uid).await;
    sees(&b, &m1, &queued).await;
    assert_eq!(count_text(&b, &queued).await, 1, "once after a reload");
    b.screenshot("after-crash").await;
    for p in [&a, &b] {
        p.assert_no_console_errors().await;
    }
}

/// Clicks tool `action` (`edit`, `delete`, `pin`, `react`) of message `id`; the tools show when
/// the message has the focus.
async fn tool(p: &Profile, id: &str, action: &str) {
    let msg = format!(".message[data-message-id='{id}']");
    p.click(&format!("{msg} .message-text")).await;
    p.click(&format!("{msg} button[data-action='{action}']"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_edited_reacted_to_pinned_and_deleted_on_both_sides() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let server = WebServer::start(&[]);
    let a = driver.profile("alice").await;
    let b = driver.profile("bob").await;
    let a_uid = register(&a, &server, "alice", None).await;
    let b_uid = register(&b, &server, "bob", None).await;
    make_contacts(&a, &a_uid, &b, &b_uid, false).await;
    open_dm(&a, &b_uid).await;
    open_dm(&b, &a_uid).await;
    let first = format!("first draft {}", std::process::id());
    let m = send(&a, &first).await;
    sees(&b, &m, &first).await;

    // Edit: the new text is encrypted again; Bob's page shows it, marked edited.
    tool(&a, &m, "edit").await;
    let fixed = format!("second draft {}", std::process::id());
    a.fill("#composer-input", &fixed).await;
    a.click("#composer-send").await;
    sees(&a, &m, &fixed).await;
    sees(&b, &m, &fixed).await;
    b.wait_for(&format!(".message[data-message-id='{m}'] .edited"))
        .await;

    // Bob reacts and pins; Alice sees both.
    tool(&b, &m, "react").await;
    a.wait_for_text(&format!(".message[data-message-id='{m}'] .reactions"), "1")
        .await;
    tool(&b, &m, "pin").await;
    a.wait_for_attr(
        &format!(".message[data-message-id='{m}']"),
        "data-pinned",
        "true",
    )
    .await;
    a.wait_for_text("#pinned-bar", &fixed).await;
    a.screenshot("edited-reacted-pinned").await;

    // After a reload Bob's page still shows the edit, the reaction and the pin (history).
    b.open_app(&server, "").await;
    b.wait_for_attr("#me", "data-uid", &b_uid).await;
    open_dm(&b, &a_uid).await;
    sees(&b, &m, &fixed).await;
    b.wait_for_attr(
        &format!(".message[data-message-id='{m}']"),
        "data-pinned",
        "true",
    )
    .await;

    // Alice deletes it (two clicks: the button asks for confirmation); it is gone for Bob.
    tool(&a, &m, "delete").await;
    a.click(&format!(
        ".message[data-message-id='{m}'] button[data-action='delete']"
    ))
    .await;
    b.wait_for_attr(
        &format!(".message[data-message-id='{m}']"),
        "data-deleted",
        "true",
    )
    .await;
    assert_eq!(count_text(&b, &fixed).await, 0, "deleted text still shown");
    for p in [&a, &b] {
        p.assert_no_console_errors().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_requests_are_declined_and_contacts_removed() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let server = WebServer::start(&[]);
    let a = driver.profile("alice").await;
    let b = driver.profile("bob").await;
    let c = driver.profile("carol").await;
    let a_uid = register(&a, &server, "alice", None).await;
    let b_uid = register(&b, &server, "bob", None).await;
    let c_uid = register(&c, &server, "carol", None).await;
    make_contacts(&a, &a_uid, &b, &b_uid, false).await;

    // Carol asks Alice; Alice declines: no contact on either side, Carol may ask again.
    c.click("#nav-contacts").await;
    c.fill("#contact-uid", &a_uid).await;
    c.click("#contact-request-btn").await;
    c.wait_for(&format!("#outgoing-requests [data-uid='{a_uid}']"))
        .await;
    a.wait_for("#requests-badge").await;
    a.click("#nav-contacts").await;
    a.click(&format!(
        "#incoming-requests [data-uid='{c_uid}'] button[data-action='reject']"
    ))
    .await;
    a.wait_for_text("#incoming-requests", "No incoming requests")
        .await;
    assert!(a
        .all(&format!("#contacts-list [data-uid='{c_uid}']"))
        .await
        .is_empty());

    // A uid that does not exist: the server's message is shown.
    a.fill("#contact-uid", "10000001").await;
    a.click("#contact-request-btn").await;
    a.wait_for("#contact-error").await;

    // Alice removes Bob (two clicks); Bob's list drops Alice live.
    a.click(&format!(
        "#contacts-list [data-uid='{b_uid}'] button[data-action='remove']"
    ))
    .await;
    a.click(&format!(
        "#contacts-list [data-uid='{b_uid}'] button[data-action='remove']"
    ))
    .await;
    a.wait_for_text("#contacts-list", "No contacts yet").await;
    b.click("#nav-contacts").await;
    b.wait_for_text("#contacts-list", "No contacts yet").await;
    for p in [&b, &c] {
        p.assert_no_console_errors().await;
    }
    // Alice's page logged the refused request (404) and nothing else.
    for e in a.console_errors().await {
        assert!(e.contains("/subscribe") && e.contains("404"), "alice: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overflowed_queue_reports_a_gap_and_the_history_fills_it() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    // Queues are trimmed to QUEUE_MAX by a sweep every QUEUE_SWEEP_SECONDS.
    let server = WebServer::start(&[("QUEUE_MAX", "2"), ("QUEUE_SWEEP_SECONDS", "1")]);
    let a = driver.profile("alice").await;
    let b = driver.profile("bob").await;
    let a_uid = register(&a, &server, "alice", None).await;
    let b_uid = register(&b, &server, "bob", None).await;
    make_contacts(&a, &a_uid, &b, &b_uid, false).await;
    b.close().await;
    a.wait_for(&format!(
        "#conv-list li[data-uid='{b_uid}'] .presence[data-presence='offline']"
    ))
    .await;
    open_dm(&a, &b_uid).await;
    let texts: Vec<String> = (1..=5)
        .map(|i| format!("burst {i} of {}", std::process::id()))
        .collect();
    let mut ids = Vec::new();
    for t in &texts {
        ids.push(send(&a, t).await);
    }

    // Several sweeps pass (the only fixed wait here: nothing a client sees tells when the
    // server's background sweep ran).
    tokio::time::sleep(Duration::from_secs(5)).await;

    // Bob's queue kept the newest two; the rest is reported as a gap, and the page says so.
    let b = driver.reopen("bob").await;
    b.open_app(&server, "").await;
    b.wait_for_attr("#me", "data-uid", &b_uid).await;
    synced(&b).await;
    let deadline = Instant::now() + WAIT;
    while b
        .eval("return document.getElementById('toast').textContent.includes('reloaded');")
        .await
        != true
    {
        assert!(Instant::now() < deadline, "bob: no gap notice");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    open_dm(&b, &a_uid).await;
    for (id, t) in ids.iter().zip(&texts) {
        sees(&b, id, t).await;
    }
    for t in &texts {
        assert_eq!(count_text(&b, t).await, 1, "{t:?} shown once");
    }
    for p in [&a, &b] {
        p.assert_no_console_errors().await;
    }
}
