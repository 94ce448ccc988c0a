//! Browser test of the web client's group chats and channels: three Chromium profiles register,
//! and through the UI only A creates a group, adds its contact B, and C joins with the invite link
//! (after confirming: opening the link alone joins nothing); A's message reaches B and C
//! decrypted; B reacts to it and edits a message of its own, and A sees both; a burst of messages
//! costs B few read-marker requests; only A (the owner) pins; the members panel shows the members
//! the client knows without a request (Refresh asks); A makes B an admin; A creates a public
//! channel that B joins by its link (after cancelling once), where only A posts and B reads
//! without a composer, and B's unread count survives a reload (read markers); C leaves the group
//! and A removes B. The server's data directory never holds the plaintext.
//!
//! Skipped (with a message) without chromium/chromedriver unless `MELO_TEST_BROWSER=1`.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::browser::{files_below, files_containing, Driver, Profile, WebServer, WAIT};

const PASSWORD: &str = "correct horse 42";
const GROUP_NAME: &str = "Team Lantern";
const GROUP_TEXT: &str = "Group plaintext kestrel-7431";
const BOB_DRAFT: &str = "Bob draft heron-2284";
const BOB_EDITED: &str = "Bob edited heron-9917";
const CHANNEL_NAME: &str = "Lantern News";
const CHANNEL_TEXT: &str = "Channel plaintext osprey-5520";
const CHANNEL_TEXT_2: &str = "Channel second osprey-6631";
const BURST_TEXT: &str = "Burst plaintext finch-3308";

/// A phone number no other profile of this test process uses.
fn phone() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("+7998{:03}{:04}", std::process::id() % 1000, n)
}

/// Registers a new account in `p` through the form; returns its uid.
async fn register(p: &Profile, server: &WebServer, nickname: &str) -> String {
    p.open_app(server, "").await;
    p.click("#tab-register").await;
    p.fill("#reg-phone", &phone()).await;
    p.fill("#reg-name", nickname).await;
    p.fill("#reg-nickname", nickname).await;
    p.fill("#reg-password", PASSWORD).await;
    p.click("#register-submit").await;
    p.wait_for("body[data-auth='in']").await;
    attr_soon(p, "#me", "data-uid", |v| v.len() == 8).await
}

/// Waits until attribute `attr` of the first `css` element satisfies `ok`; returns it.
async fn attr_soon(p: &Profile, css: &str, attr: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let e = p.wait_for(css).await;
        let v = e.attr(attr).await.ok().flatten().unwrap_or_default();
        if ok(&v) {
            return v;
        }
        if Instant::now() > deadline {
            p.screenshot(&format!("attr-{attr}")).await;
            panic!("{}: {css} has {attr}={v:?}", p.name);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// The `value` property of the first `css` element once it is not empty.
async fn value_soon(p: &Profile, css: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let e = p.wait_for(css).await;
        let v = e.prop("value").await.ok().flatten().unwrap_or_default();
        if !v.is_empty() {
            return v;
        }
        assert!(Instant::now() < deadline, "{}: {css} stayed empty", p.name);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Waits until no element matching `css` is displayed. `css` must match when this is called (a
/// selector that never matched would prove nothing): use [`gone_after`] when an action removes it.
async fn gone(p: &Profile, css: &str) {
    assert!(
        !p.all(css).await.is_empty(),
        "{}: {css} is not on the page to begin with",
        p.name
    );
    wait_gone(p, css).await;
}

/// Waits until `css` is displayed, runs `action`, then waits until `css` is no longer displayed.
async fn gone_after(p: &Profile, css: &str, action: impl std::future::Future<Output = ()>) {
    p.wait_for(css).await;
    action.await;
    wait_gone(p, css).await;
}

async fn wait_gone(p: &Profile, css: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut shown = false;
        for e in p.all(css).await {
            shown |= e.is_displayed().await.unwrap_or(false);
        }
        if !shown {
            return;
        }
        if Instant::now() > deadline {
            p.screenshot("still-shown").await;
            panic!("{}: {css} is still shown after {WAIT:?}", p.name);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Waits until the trimmed text of the first `css` element is exactly `text` ("1" is not "10").
async fn text_is(p: &Profile, css: &str, text: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = match p.all(css).await.first() {
            Some(e) => e.text().await.unwrap_or_default(),
            None => String::new(),
        };
        if now.trim() == text {
            return;
        }
        if Instant::now() > deadline {
            p.screenshot("text-is").await;
            panic!("{}: {css} shows {now:?}, not {text:?}", p.name);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Waits until the open members panel lists exactly the users `uids`.
async fn members_are(p: &Profile, uids: &[&str]) {
    let mut want: Vec<String> = uids.iter().map(|u| (*u).to_owned()).collect();
    want.sort();
    let deadline = Instant::now() + WAIT;
    loop {
        let mut now = Vec::new();
        for e in p.all("#chat-members li[data-uid]").await {
            if e.is_displayed().await.unwrap_or(false) {
                now.push(e.attr("data-uid").await.ok().flatten().unwrap_or_default());
            }
        }
        now.sort();
        if now == want {
            return;
        }
        if Instant::now() > deadline {
            p.screenshot("members").await;
            panic!("{}: members {now:?}, expected {want:?}", p.name);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
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

/// `a` asks `b` to be a contact in the Contacts view; `b` accepts.
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

/// Creates a group (`channel` false) or a channel from the sidebar; returns its id once its
/// details view is shown.
async fn create_chat(p: &Profile, name: &str, channel: bool) -> String {
    p.click(if channel {
        "#new-channel-btn"
    } else {
        "#new-group-btn"
    })
    .await;
    p.fill("#chat-name", name).await;
    let kind = if channel { "channel" } else { "chat" };
    let radio = p.wait_for(&format!("#chat-type-{kind}")).await;
    assert!(
        radio.is_selected().await.unwrap_or(false),
        "{kind} preselected"
    );
    p.click("#chat-create-submit").await;
    let view = format!("section[data-view='chat-info'][data-type='{kind}'][data-role='owner']");
    let id = attr_soon(p, &view, "data-chat-id", |v| !v.is_empty()).await;
    p.wait_for_text("#chat-info-title", name).await;
    p.wait_for(&format!(
        "#conv-list li[data-kind='chat'][data-chat-id='{id}']"
    ))
    .await;
    id
}

/// Creates an invite link in the open details view and returns it.
async fn invite_link(p: &Profile) -> String {
    p.click("#invite-create-btn").await;
    let link = value_soon(p, "#invite-link").await;
    assert!(link.contains("/app/#join="), "{link}");
    link
}

/// Opens `link` in `p` (already logged in): the client asks first (`prompt`) and joins nothing
/// before the click; `join` false cancels, otherwise the client joins the chat and opens it.
async fn follow_invite(p: &Profile, link: &str, chat_id: &str, prompt: &str, join: bool) {
    p.client
        .goto(link)
        .await
        .unwrap_or_else(|e| panic!("{}: open {link}: {e}", p.name));
    p.wait_for("section[data-view='chat-join']").await;
    p.wait_for_text("#chat-join-prompt", prompt).await;
    let item = format!("#conv-list li[data-kind='chat'][data-chat-id='{chat_id}']");
    // The chat list is loaded (the client asks only after loading it) and does not hold the chat.
    assert!(
        p.all(&item).await.is_empty(),
        "{}: member of chat {chat_id} before confirming",
        p.name
    );
    if !join {
        p.click("#chat-join-cancel").await;
        wait_gone(p, "section[data-view='chat-join']").await;
        assert!(
            p.all(&item).await.is_empty(),
            "{}: joined after Cancel",
            p.name
        );
        return;
    }
    p.click("#chat-join-confirm").await;
    p.wait_for(&format!(
        "section[data-view='conversation'][data-chat-id='{chat_id}']"
    ))
    .await;
    p.wait_for(&item).await;
}

/// Opens the chat from the sidebar.
async fn open_chat(p: &Profile, chat_id: &str) {
    p.click(&format!("#conv-list li[data-chat-id='{chat_id}'] button"))
        .await;
    p.wait_for(&format!(
        "section[data-view='conversation'][data-chat-id='{chat_id}']"
    ))
    .await;
}

/// Sends `text` from the open conversation; returns the message id once the server stored it.
async fn send(p: &Profile, text: &str) -> String {
    p.fill("#composer-input", text).await;
    p.click("#composer-send").await;
    let mine = "#message-list .message[data-mine='true'][data-message-id]";
    let deadline = Instant::now() + WAIT;
    loop {
        for e in p.all(mine).await {
            if e.text().await.unwrap_or_default().contains(text) {
                if let Some(id) = e.attr("data-message-id").await.ok().flatten() {
                    return id;
                }
            }
        }
        if Instant::now() > deadline {
            p.screenshot("not-sent").await;
            panic!("{}: {text:?} was not stored within {WAIT:?}", p.name);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Clicks the message `id` (showing its tools) and then its tool `tool`.
async fn message_tool(p: &Profile, id: &str, tool: &str) {
    let msg = format!("#message-list .message[data-message-id='{id}']");
    p.click(&format!("{msg} .message-text")).await;
    p.click(&format!("{msg} {tool}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_and_channels_through_the_web_client() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let server = WebServer::start(&[]);
    let a = driver.profile("chats-alice").await;
    let b = driver.profile("chats-bob").await;
    let c = driver.profile("chats-carol").await;
    let a_uid = register(&a, &server, "alice").await;
    let b_uid = register(&b, &server, "bob").await;
    let c_uid = register(&c, &server, "carol").await;
    make_contacts(&a, &a_uid, &b, &b_uid).await;

    // A creates the group and adds its contact B from the members panel.
    let group = create_chat(&a, GROUP_NAME, false).await;
    a.wait_for(&format!(
        "#chat-members li[data-uid='{a_uid}'][data-role='owner']"
    ))
    .await;
    a.wait_for("#chat-add-select")
        .await
        .select_by_value(&b_uid)
        .await
        .expect("choose B");
    a.click("#chat-add-btn").await;
    a.wait_for(&format!(
        "#chat-members li[data-uid='{b_uid}'][data-role='member']"
    ))
    .await;
    b.wait_for(&format!(
        "#conv-list li[data-kind='chat'][data-chat-id='{group}']"
    ))
    .await;
    b.wait_for_text(
        &format!("#conv-list li[data-chat-id='{group}']"),
        GROUP_NAME,
    )
    .await;

    // C, not a contact of anyone, joins with the invite link; A's panel shows it live.
    let link = invite_link(&a).await;
    follow_invite(&c, &link, &group, "Join the chat behind this invite?", true).await;
    c.wait_for_text("#conv-title", GROUP_NAME).await;
    a.wait_for(&format!(
        "#chat-members li[data-uid='{c_uid}'][data-role='member']"
    ))
    .await;

    // A writes; B and C read it decrypted.
    a.click("#chat-open-btn").await;
    a.wait_for(&format!(
        "section[data-view='conversation'][data-chat-id='{group}']"
    ))
    .await;
    let m1 = send(&a, GROUP_TEXT).await;
    open_chat(&b, &group).await;
    let in_b = format!("#message-list .message[data-message-id='{m1}'] .message-text");
    b.wait_for_text(&in_b, GROUP_TEXT).await;
    c.wait_for_text(
        &format!("#message-list .message[data-message-id='{m1}'] .message-text"),
        GROUP_TEXT,
    )
    .await;
    c.wait_for_text(
        &format!("#message-list .message[data-message-id='{m1}'] .message-author"),
        "alice",
    )
    .await;
    for p in [&b, &c] {
        assert!(
            p.all("#message-list .message[data-undecryptable='true']")
                .await
                .is_empty(),
            "{}: an undecryptable message",
            p.name
        );
    }
    c.screenshot("group-chat").await;

    // B reacts to A's message and edits one of its own; A sees both.
    message_tool(&b, &m1, "button[data-action='react'][data-reaction='👍']").await;
    a.wait_for_text(
        &format!("#message-list .message[data-message-id='{m1}'] .reactions"),
        "👍 1",
    )
    .await;
    // Only the owner and admins pin in a group: B (a member) has no Pin; A pins, B sees it.
    assert!(b
        .all(&format!(
            "#message-list .message[data-message-id='{m1}'] button[data-action='pin']"
        ))
        .await
        .is_empty());
    message_tool(&a, &m1, "button[data-action='pin']").await;
    b.wait_for(&format!(
        "#message-list .message[data-message-id='{m1}'][data-pinned='true']"
    ))
    .await;
    b.wait_for_text("#pinned-bar", GROUP_TEXT).await;
    let m2 = send(&b, BOB_DRAFT).await;
    a.wait_for_text(
        &format!("#message-list .message[data-message-id='{m2}'] .message-text"),
        BOB_DRAFT,
    )
    .await;
    message_tool(&b, &m2, "button[data-action='edit']").await;
    b.fill("#composer-input", BOB_EDITED).await;
    b.click("#composer-send").await;
    let edited = format!("#message-list .message[data-message-id='{m2}']");
    a.wait_for_text(&format!("{edited} .message-text"), BOB_EDITED)
        .await;
    a.wait_for(&format!("{edited} .edited")).await;
    c.wait_for_text(&format!("{edited} .message-text"), BOB_EDITED)
        .await;
    a.screenshot("group-chat").await;

    // A burst of messages while B keeps the group open costs B at most one read marker request
    // per 30 s (the HTTP budget is 20 requests per 120 s), not one per message. The pauses let a
    // per-message marker show.
    let marked_before = requests_to(&b, "/status/read").await;
    let mut last = String::new();
    for i in 0..4 {
        last = send(&a, &format!("{BURST_TEXT} #{i}")).await;
        b.wait_for_text(
            &format!("#message-list .message[data-message-id='{last}'] .message-text"),
            &format!("{BURST_TEXT} #{i}"),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
    let marked = requests_to(&b, "/status/read").await - marked_before;
    assert!(
        marked <= 2,
        "B saved its read marker {marked} times for 4 messages"
    );

    // A makes B an admin; B's client learns it live. The members A's client knows (it encrypted
    // for them) are shown without asking the server again; Refresh asks.
    let fetched = requests_to(&a, "/chats/members").await;
    a.click("#chat-info-btn").await;
    a.wait_for(&format!(
        "section[data-view='chat-info'][data-chat-id='{group}']"
    ))
    .await;
    members_are(&a, &[&a_uid, &b_uid, &c_uid]).await;
    assert_eq!(
        requests_to(&a, "/chats/members").await,
        fetched,
        "the details view fetched the members again"
    );
    a.click("#chat-members-refresh").await;
    let deadline = Instant::now() + WAIT;
    while requests_to(&a, "/chats/members").await == fetched {
        assert!(Instant::now() < deadline, "Refresh fetched no members");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    members_are(&a, &[&a_uid, &b_uid, &c_uid]).await;
    a.wait_for(&format!(
        "#chat-members li[data-uid='{b_uid}'] select[data-action='role']"
    ))
    .await
    .select_by_value("admin")
    .await
    .expect("make B admin");
    a.wait_for(&format!(
        "#chat-members li[data-uid='{b_uid}'][data-role='admin']"
    ))
    .await;
    b.wait_for_text("#conv-subtitle", "admin").await;
    b.click("#chat-info-btn").await;
    b.wait_for(&format!(
        "section[data-view='chat-info'][data-chat-id='{group}'][data-role='admin']"
    ))
    .await;
    // Leaving the group's messages saved B's read marker at the newest one it saw.
    b.wait_for_attr("section[data-view='chat-info']", "data-last-read", &last)
        .await;
    // An admin sees the members but changes no role.
    b.wait_for(&format!(
        "#chat-members li[data-uid='{a_uid}'][data-role='owner']"
    ))
    .await;
    assert!(b
        .all("#chat-members select[data-action='role']")
        .await
        .is_empty());
    a.screenshot("group-members").await;

    // A public channel: B opens its link, cancels, opens it again and subscribes; only A posts,
    // B reads without a composer.
    let channel = create_chat(&a, CHANNEL_NAME, true).await;
    a.click("#chat-public").await;
    a.wait_for_text("#invite-note", "Permanent public link")
        .await;
    let link = value_soon(&a, "#invite-link").await;
    let prompt = format!("Join {CHANNEL_NAME}?");
    follow_invite(&b, &link, &channel, &prompt, false).await;
    // The second time the link loads the page afresh: the client asks once the session is back.
    b.client.goto("about:blank").await.expect("leave the app");
    follow_invite(&b, &link, &channel, &prompt, true).await;
    b.wait_for("#composer-readonly").await;
    gone(&b, "#composer").await;
    a.wait_for(&format!(
        "#chat-members li[data-uid='{b_uid}'][data-role='member']"
    ))
    .await;
    a.screenshot("channel-subscribers").await;
    a.click("#chat-open-btn").await;
    let post = send(&a, CHANNEL_TEXT).await;
    b.wait_for_text(
        &format!("#message-list .message[data-message-id='{post}'] .message-text"),
        CHANNEL_TEXT,
    )
    .await;
    gone(&b, "#composer").await;
    b.screenshot("channel-reader").await;
    // A plain subscriber does not see the other subscribers. Leaving the channel's messages
    // moved B's read marker to the post it saw.
    b.click("#chat-info-btn").await;
    b.wait_for(&format!(
        "section[data-view='chat-info'][data-chat-id='{channel}'][data-role='member']"
    ))
    .await;
    b.wait_for_text(
        "section[data-view='chat-info']",
        "Only the owner and admins",
    )
    .await;
    assert!(b.all("#chat-members li").await.is_empty());
    b.wait_for_attr("section[data-view='chat-info']", "data-last-read", &post)
        .await;

    // A second post while B looks elsewhere is unread, also after B reloads the page (counted
    // from the history after B's read marker); opening the channel reads it.
    let post2 = send(&a, CHANNEL_TEXT_2).await;
    let badge = format!("#conv-list li[data-chat-id='{channel}'] .badge");
    text_is(&b, &badge, "1").await;
    b.open_app(&server, "").await;
    b.wait_for("body[data-auth='in']").await;
    text_is(&b, &badge, "1").await;
    b.screenshot("unread-after-reload").await;
    gone_after(&b, &badge, open_chat(&b, &channel)).await;
    b.wait_for_text(
        &format!("#message-list .message[data-message-id='{post2}'] .message-text"),
        CHANNEL_TEXT_2,
    )
    .await;

    // C leaves the group: its list loses it, A's members panel too.
    open_chat(&c, &group).await;
    c.click("#chat-info-btn").await;
    c.click("#chat-leave-btn").await;
    c.wait_for_text("#chat-leave-btn", "Confirm").await;
    gone_after(
        &c,
        &format!("#conv-list li[data-chat-id='{group}']"),
        c.click("#chat-leave-btn"),
    )
    .await;
    open_chat(&a, &group).await;
    a.click("#chat-info-btn").await;
    a.wait_for(&format!(
        "#chat-members li[data-uid='{b_uid}'][data-role='admin']"
    ))
    .await;
    members_are(&a, &[&a_uid, &b_uid]).await;

    // A removes B: B's list loses the group live; the channel stays.
    let remove = format!("#chat-members li[data-uid='{b_uid}'] button[data-action='remove']");
    a.click(&remove).await;
    a.wait_for_text(&remove, "Confirm").await;
    gone_after(
        &b,
        &format!("#conv-list li[data-chat-id='{group}']"),
        a.click(&remove),
    )
    .await;
    members_are(&a, &[&a_uid]).await;
    b.wait_for(&format!("#conv-list li[data-chat-id='{channel}']"))
        .await;

    // The server stored ciphertext only (names are sealed at rest too).
    let data = server.data_dir();
    let files = files_below(&data);
    assert!(
        files.iter().any(|f| f.ends_with("melo.db")),
        "no database among {files:?}"
    );
    for needle in [
        GROUP_TEXT,
        BOB_DRAFT,
        BOB_EDITED,
        CHANNEL_TEXT,
        CHANNEL_TEXT_2,
        BURST_TEXT,
        GROUP_NAME,
        CHANNEL_NAME,
    ] {
        let found = files_containing(&data, needle);
        assert!(found.is_empty(), "{needle:?} in plain text in {found:?}");
    }

    for p in [&a, &b, &c] {
        p.assert_no_console_errors().await;
    }
    for p in [a, b, c] {
        p.close().await;
    }
}
