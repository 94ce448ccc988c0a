//! Browser tests of the web client's core: registration and login, contacts, end-to-end
//! encrypted direct messages with delivery and read ticks, a user's second device (its key
//! restored from the password-wrapped backup), and a message queued for an offline device across
//! a server crash (SIGKILL) and restart.
//!
//! Tests act through the client only (forms and buttons); `eval` merely reads the page. Skipped
//! (with a message) without chromium/chromedriver unless `MELO_TEST_BROWSER=1`.

mod common;
mod web_ui;

use std::time::{Duration, Instant};

use common::browser::{files_below, files_containing, Driver, WebServer, WAIT};
use web_ui::*;

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

    // Both of Bob's devices are elsewhere: Alice's next message is unread on both; Bob reads it on
    // the phone, and the laptop's unread badge goes away (`read` with `self: true`).
    b.click("#nav-settings").await;
    b2.click("#nav-settings").await;
    let third = format!("read me once {}", std::process::id());
    let m3 = send(&a, &third).await;
    let badge = format!("#conv-list li[data-uid='{a_uid}'] .badge");
    b.wait_for(&badge).await;
    b2.wait_for(&badge).await;
    open_dm(&b, &a_uid).await;
    sees(&b, &m3, &third).await;
    let deadline = Instant::now() + WAIT;
    while b2
        .eval(&format!(
            "return document.querySelector({badge:?}) !== null;"
        ))
        .await
        == true
    {
        assert!(
            Instant::now() < deadline,
            "bob-laptop: the unread badge stayed after the phone read the message"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

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

/// The server's default HTTP budget (20 requests per 120 s per user) with a short block: a normal
/// session (registration, a contact, messages, reloads, settings) goes over it, and the client waits
/// out each 429 (`Retry-After`) and retries its reads, so every step still completes in the UI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_over_the_default_http_budget_waits_out_429s_and_completes() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let server = WebServer::start(&[
        ("RATE_LIMIT_CALLS", "20"),
        ("RATE_LIMIT_PERIOD", "120"),
        ("BLOCK_PERIOD", "3"),
    ]);
    let a = driver.profile("alice").await;
    let b = driver.profile("bob").await;
    let a_uid = register(&a, &server, "alice", None).await;
    let b_uid = register(&b, &server, "bob", None).await;
    make_contacts(&a, &a_uid, &b, &b_uid, false).await;
    open_dm(&a, &b_uid).await;
    open_dm(&b, &a_uid).await;
    let hello = format!("over budget {}", std::process::id());
    let m1 = send(&a, &hello).await;
    sees(&b, &m1, &hello).await;

    // Alice reloads the app, opens the conversation, her sessions and her contacts, again and
    // again: far more than 20 requests of hers within the window. The browser logs each refused
    // load (HTTP 429); anything else in the console is an error.
    let mut limited = 0;
    let mut other_errors = Vec::new();
    for round in 0..4 {
        a.open_app(&server, "").await;
        a.wait_for_attr("#me", "data-uid", &a_uid).await;
        open_dm(&a, &b_uid).await;
        sees(&a, &m1, &hello).await;
        a.click("#nav-settings").await;
        a.wait_for("#sessions-list li[data-current='true']").await;
        a.click("#nav-contacts").await;
        a.wait_for(&format!("#contacts-list [data-uid='{b_uid}']"))
            .await;
        if round == 3 {
            a.screenshot("rate-limited").await;
        }
        for e in a.console_errors().await {
            if e.contains("status of 429") {
                limited += 1;
            } else {
                other_errors.push(e);
            }
        }
        let recorded = a.eval("return window.__melo.errors;").await;
        assert!(
            recorded.as_array().is_some_and(|a| a.is_empty()),
            "alice: errors the client recorded: {recorded:#}"
        );
    }
    assert!(
        other_errors.is_empty(),
        "alice: console errors: {other_errors:#?}"
    );
    assert!(
        limited > 0,
        "the flow never went over the HTTP budget: the test shows nothing"
    );

    // Messages still flow both ways after the blocks.
    open_dm(&a, &b_uid).await;
    let reply = format!("still here {}", std::process::id());
    let m2 = send(&b, &reply).await;
    sees(&a, &m2, &reply).await;
    let last = format!("and me {}", std::process::id());
    let m3 = send(&a, &last).await;
    sees(&b, &m3, &last).await;

    // No errors: the pages record none; the console shows only the refused loads (HTTP 429).
    for p in [&a, &b] {
        let errors: Vec<String> = p
            .console_errors()
            .await
            .into_iter()
            .filter(|e| !e.contains("status of 429"))
            .collect();
        assert!(errors.is_empty(), "{}: console errors: {errors:#?}", p.name);
        let recorded = p.eval("return window.__melo.errors;").await;
        assert!(
            recorded.as_array().is_some_and(|a| a.is_empty()),
            "{}: errors the client recorded: {recorded:#}",
            p.name
        );
    }
}

/// A rate-limited auto-login (HTTP 429 at the device-token `/login`) is a temporary failure: the
/// page keeps the stored session, waits out `Retry-After` and logs in, instead of falling back to
/// the login form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_auto_login_keeps_the_session() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    // Five requests per client key: the page's reloads soon go over the budget of its IP (the
    // device-token logins) as well as of its user.
    let server = WebServer::start(&[
        ("RATE_LIMIT_CALLS", "5"),
        ("RATE_LIMIT_PERIOD", "120"),
        ("BLOCK_PERIOD", "3"),
    ]);
    let a = driver.profile("alice").await;
    let a_uid = register(&a, &server, "alice", None).await;
    synced(&a).await;
    let mut limited = 0;
    let mut login_limited = 0;
    let mut other_errors = Vec::new();
    for _ in 0..6 {
        a.open_app(&server, "").await;
        a.wait_for_attr("#me", "data-uid", &a_uid).await;
        synced(&a).await;
        for e in a.console_errors().await {
            if e.contains("status of 429") {
                limited += 1;
                // Chromium names the refused URL first: "<url> - Failed to load resource: …".
                if e.contains("/login ") {
                    login_limited += 1;
                }
            } else {
                other_errors.push(e);
            }
        }
        let recorded = a.eval("return window.__melo.errors;").await;
        assert!(
            recorded.as_array().is_some_and(|a| a.is_empty()),
            "alice: errors the client recorded: {recorded:#}"
        );
    }
    assert!(
        limited > 0,
        "no request was refused: the test shows nothing"
    );
    assert!(
        login_limited > 0,
        "no device-token login was refused ({limited} other 429s): the test shows nothing"
    );
    assert!(
        other_errors.is_empty(),
        "alice: console errors: {other_errors:#?}"
    );
}

/// The server completes the WebSocket upgrade before it refuses a connection (here 1013
/// `too_many_connections`): the page backs off further with every refused attempt instead of
/// starting over at each upgrade, and connects once a slot is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_socket_backs_off_and_connects_when_a_slot_is_free() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let server = WebServer::start(&[("WS_MAX_CONNECTIONS_PER_IP", "1")]);
    let a = driver.profile("alice").await;
    let b = driver.profile("bob").await;
    register(&a, &server, "alice", None).await;
    synced(&a).await;
    register(&b, &server, "bob", None).await;
    // Alice holds the only socket: Bob's attempts are refused after the upgrade; the attempt
    // counter (the exponent of the backoff) keeps growing.
    let deadline = Instant::now() + WAIT;
    while b
        .eval("return (window.__melo && window.__melo.reconnectAttempt) >= 4;")
        .await
        != true
    {
        assert!(
            Instant::now() < deadline,
            "bob: the reconnect backoff never grew past 3 attempts"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // Alice leaves; Bob's next attempt (at most 30 s later) gets the slot and syncs.
    a.close().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while b.eval("return window.__melo.synced === true;").await != true {
        assert!(Instant::now() < deadline, "bob: never connected");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        b.eval("return window.__melo.reconnectAttempt;").await,
        0,
        "the backoff starts over after sync_done"
    );
    b.assert_no_console_errors().await;
}
