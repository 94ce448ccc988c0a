//! What the browser tests of the web client's core do through the page: register, log in, make
//! contacts, open a conversation, send and find messages. Shared by `browser_messaging.rs` and
//! `browser_contacts.rs`; everything goes through the client's forms and buttons (`eval` only
//! reads the page).

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::common::browser::{Profile, WebServer, WAIT};

pub const PASSWORD: &str = "correct horse 42";

/// A phone number no other profile of this test process uses.
pub fn phone() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("+7998{:03}{:04}", std::process::id() % 1000, n)
}

/// Registers a new account in `p` through the form; returns its uid.
pub async fn register(
    p: &Profile,
    server: &WebServer,
    nickname: &str,
    shot: Option<&str>,
) -> String {
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
pub async fn uid_of(p: &Profile) -> String {
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
pub async fn login(p: &Profile, server: &WebServer, uid: &str) {
    p.open_app(server, "").await;
    p.fill("#login-identifier", uid).await;
    p.fill("#login-password", PASSWORD).await;
    p.click("#login-submit").await;
    p.wait_for("body[data-auth='in']").await;
    p.wait_for_attr("#me", "data-uid", uid).await;
}

/// `a` asks `b` to be a contact by uid; `b` accepts; both list the other.
pub async fn make_contacts(a: &Profile, a_uid: &str, b: &Profile, b_uid: &str, shot: bool) {
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
pub async fn open_dm(p: &Profile, peer: &str) {
    p.click(&format!("#conv-list li[data-uid='{peer}'] button"))
        .await;
    p.wait_for(&format!(
        "section[data-view='conversation'][data-peer='{peer}']"
    ))
    .await;
}

/// Types and sends `text` in the open conversation; returns the server's message_id once the
/// message is stored (status `queued` or later).
pub async fn send(p: &Profile, text: &str) -> String {
    p.fill("#composer-input", text).await;
    p.click("#composer-send").await;
    stored(p, text).await
}

/// The message_id of the page's own message `text` once the server stored it.
pub async fn stored(p: &Profile, text: &str) -> String {
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
pub async fn sees(p: &Profile, id: &str, text: &str) {
    p.wait_for_text(
        &format!("#message-list .message[data-message-id='{id}'] .message-text"),
        text,
    )
    .await;
}

/// The client_id the sender's page chose for its message `id`.
pub async fn client_id(p: &Profile, id: &str) -> String {
    p.wait_for(&format!(".message[data-message-id='{id}']"))
        .await
        .attr("data-client-id")
        .await
        .ok()
        .flatten()
        .expect("the sender's page keeps the message's client_id")
}

/// How many messages of the open conversation show exactly `text`.
pub async fn count_text(p: &Profile, text: &str) -> u64 {
    p.eval(&format!(
        "return [...document.querySelectorAll('#message-list .message .message-text')].filter(e => e.textContent === {text:?}).length;"
    ))
    .await
    .as_u64()
    .expect("count")
}

/// Waits until the page's socket has replayed its backlog (`sync_done`).
pub async fn synced(p: &Profile) {
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

/// Clicks tool `action` (`edit`, `delete`, `pin`, `react`) of message `id`; the tools show when
/// the message has the focus.
pub async fn tool(p: &Profile, id: &str, action: &str) {
    let msg = format!(".message[data-message-id='{id}']");
    p.click(&format!("{msg} .message-text")).await;
    p.click(&format!("{msg} button[data-action='{action}']"))
        .await;
}
