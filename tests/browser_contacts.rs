//! Browser tests of the web client's core, continued: editing, reactions, pins and deletion on
//! both sides; declined contact requests and removed contacts; a device queue that overflowed
//! while the device was away (a `gap`) and the history that fills it.
//!
//! Tests act through the client only (forms and buttons); `eval` merely reads the page. Skipped
//! (with a message) without chromium/chromedriver unless `MELO_TEST_BROWSER=1`.

mod common;
mod web_ui;

use std::time::{Duration, Instant};

use common::browser::{Driver, WebServer, WAIT};
use web_ui::*;

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
    open_dm(&b, &a_uid).await;
    // Alice's DM shows Bob's key fingerprint, the one Bob's settings show for his own key; his
    // key is pinned on first use, so no "security key changed" notice.
    b.click("#nav-settings").await;
    let own = b.wait_for_text("#profile-fingerprint", " ").await;
    open_dm(&a, &b_uid).await;
    let shown = a.wait_for_text("#conv-fingerprint", "Security key").await;
    assert_eq!(shown.trim(), format!("Security key {}", own.trim()));
    assert_eq!(
        a.eval("return document.getElementById('conv-key-notice').hidden;")
            .await,
        true
    );
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
