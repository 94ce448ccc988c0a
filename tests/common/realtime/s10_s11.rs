//! PROTOCOL scenarios S10 and S11.

use super::*;

// ---- S10 -----------------------------------------------------------------------------------

/// S10 Authorization errors and admission. `t` must allow [`ALLOWED_ORIGIN`].
pub async fn s10(t: &Target) {
    let c = &t.client;
    let (a, b) = pair(t, "Alice", "Bob").await;
    let cu = new_user(c, "Carol").await;
    let m = http_send(t, &a, &b, "CT-1").await;
    let mut wa = online(t, &a).await;
    let mut wc = online(t, &cu).await;
    // 1)
    wc.send_json(&json!({"type": "relay", "target": a.uid, "payload": "x", "client_id": "c-1"}))
        .await;
    error_frame(
        &wc.recv_type("error", WAIT).await,
        "not_a_contact",
        json!("c-1"),
    );
    wa.expect_silence(t.quiet).await;
    // 2) malformed frames; the socket stays open.
    let refused: Vec<(&str, String, Value)> = vec![
        (
            "invalid_frame",
            json!({"type": "relay", "target": "123", "payload": "x"}).to_string(),
            json!("relay"),
        ),
        ("invalid_json", "not json".into(), Value::Null),
        (
            "invalid_frame",
            json!({"payload": "x"}).to_string(),
            Value::Null,
        ),
        (
            "unknown_type",
            json!({"type": "bogus"}).to_string(),
            json!("bogus"),
        ),
        (
            "invalid_frame",
            json!({"type": "relay", "target": a.uid, "chat_id": 1, "payload": "x", "client_id": "both-1"})
                .to_string(),
            json!("both-1"),
        ),
    ];
    for (i, (reason, text, reference)) in refused.iter().enumerate() {
        wc.send_text(text).await;
        let e = wc.recv_type("error", WAIT).await;
        error_frame(&e, reason, reference.clone());
        if i == 1 {
            wc.send_binary(b"\x01\x02binary".to_vec()).await;
            error_frame(
                &wc.recv_type("error", WAIT).await,
                "invalid_frame",
                Value::Null,
            );
        }
    }
    let pong = wc.ping().await;
    assert!(pong["contacts_status"].is_object(), "{pong}");
    // 3)
    c.post(
        "/messages/send",
        Some(&cu.token),
        &json!({"target_id": a.uid, "data": "x"}),
    )
    .await
    .assert_error(403, "not_a_contact");
    let r = c
        .post(
            "/messages/send",
            Some(&cu.token),
            &json!({"target_id": "12", "data": "x"}),
        )
        .await;
    r.assert_error(422, "validation_failed");
    assert_eq!(
        r.body["error"]["fields"][0]["field"], "target_id",
        "{}",
        r.body
    );
    // 4)
    wc.send_json(&json!({"type": "ack_read", "message_id": m}))
        .await;
    error_frame(
        &wc.recv_type("error", WAIT).await,
        "unknown_message",
        json!("ack_read"),
    );
    wc.send_json(&json!({"type": "typing_start", "target": a.uid}))
        .await;
    error_frame(
        &wc.recv_type("error", WAIT).await,
        "not_a_contact",
        json!("typing_start"),
    );
    wa.expect_silence(t.quiet).await;
    // 5)
    c.get(&format!("/history/{}", a.uid), Some(&cu.token))
        .await
        .assert_error(403, "not_a_contact");
    let r = history(t, &cu, &a.uid).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["messages"], json!([]), "{}", r.body);
    assert_eq!(r.body["items"], json!([]), "{}", r.body);
    wc.close().await;
    // 6) both endpoints, both token forms.
    let mut wb = WsClient::connect(t.http, "/ws", Some(&b.token), false, None).await;
    let sync = wb.sync().await;
    assert_eq!(
        sync.backlog.len(),
        1,
        "B's backlog holds M: {:?}",
        sync.backlog
    );
    wb.ack_all().await;
    let mut wc = WsClient::connect(t.ws, "/some/other/path", Some(&cu.token), true, None).await;
    wc.sync().await;
    let forged = forged_token(&cu).await;
    /// (listener, path, token, token in header, Origin, expected close)
    type Admission<'a> = (
        SocketAddr,
        &'a str,
        Option<&'a str>,
        bool,
        Option<&'a str>,
        (u16, &'a str),
    );
    let refusals: Vec<Admission<'_>> = vec![
        (t.http, "/ws", None, true, None, (1008, "unauthenticated")),
        (t.ws, "/", None, true, None, (1008, "unauthenticated")),
        (
            t.ws,
            "/any/path",
            None,
            false,
            None,
            (1008, "unauthenticated"),
        ),
        (
            t.http,
            "/ws",
            Some(forged.as_str()),
            true,
            None,
            (1008, "invalid_token"),
        ),
        (
            t.ws,
            "/x",
            Some(forged.as_str()),
            false,
            None,
            (1008, "invalid_token"),
        ),
        (
            t.http,
            "/ws",
            Some("abc.def.ghi"),
            false,
            None,
            (1008, "invalid_token"),
        ),
        (
            t.ws,
            "/",
            Some("abc.def.ghi"),
            true,
            None,
            (1008, "invalid_token"),
        ),
        (
            t.http,
            "/ws",
            Some(a.token.as_str()),
            true,
            Some("https://evil.example"),
            (1008, "origin_not_allowed"),
        ),
        (
            t.ws,
            "/",
            Some(a.token.as_str()),
            false,
            Some("https://evil.example"),
            (1008, "origin_not_allowed"),
        ),
    ];
    for (addr, path, token, header, origin, (code, reason)) in refusals {
        let mut ws = WsClient::connect(addr, path, token, header, origin).await;
        assert_eq!(
            ws.expect_close(WAIT).await,
            (code, reason.to_owned()),
            "admission at {addr}{path} token={token:?} header={header} origin={origin:?}"
        );
        assert!(
            ws.received.is_empty(),
            "no frame before the admission close: {:?}",
            ws.received
        );
    }
    // The refused origin checks did not replace A's socket.
    wa.ping().await;
    let d = new_user(c, "Dave").await;
    let mut wd = WsClient::connect(t.http, "/ws", Some(&d.token), true, Some(ALLOWED_ORIGIN)).await;
    wd.sync().await;
    wd.close().await;
    // 7) a frame over 1 MiB closes only that socket.
    let big = json!({"type": "relay", "target": a.uid, "payload": "x".repeat(1 << 20)}).to_string();
    assert!(big.len() > 1_048_576);
    let _ = wb.try_send_text(big).await;
    assert_eq!(wb.expect_close(WAIT).await.0, 1009, "frame over 1 MiB");
    wc.ping().await;
    wa.expect_no_frame("relay_delivery", t.quiet).await;
    wc.close().await;
    wa.ack_and_close().await;
}

// ---- S11 -----------------------------------------------------------------------------------

fn is_status_change(f: &Value, uid: &str, status: &str) -> bool {
    is(f, "status_change") && f["user_id"] == uid && f["status"] == status
}

async fn status_change(ws: &mut WsClient, u: &User, status: &str) -> Value {
    let f = ws
        .recv_where(
            &format!("status_change {status} of {}", u.uid),
            |f| is_status_change(f, &u.uid, status),
            WAIT,
        )
        .await;
    assert_ephemeral(&f);
    assert_ts(&f["timestamp"]);
    f
}

/// S11 Presence and typing.
pub async fn s11(t: &Target) {
    let c = &t.client;
    let (a, b) = pair(t, "Alice", "Bob").await;
    let cu = new_user(c, "Carol").await;
    make_contacts(t, &cu, &b).await; // C is B's contact, not A's
    drain(t, &b).await;
    let mut wa = online(t, &a).await;
    let mut wb = online(t, &b).await;
    status_change(&mut wa, &b, "online").await;
    // 1)
    let pong = wa.ping().await;
    let entry = &pong["contacts_status"][b.uid.as_str()];
    assert_eq!(
        (&entry["status"], &entry["typing"]),
        (&json!("online"), &json!(false)),
        "{pong}"
    );
    assert!(
        pong["contacts_status"].get(cu.uid.as_str()).is_none(),
        "only accepted contacts: {pong}"
    );
    assert!(pong["server_version"].is_string(), "{pong}");
    assert_ts(&pong["timestamp"]);
    // 2)
    wb.send_json(&json!({"type": "typing_start", "target": a.uid}))
        .await;
    let f = wa.recv_type("typing_start", WAIT).await;
    assert_ephemeral(&f);
    assert_eq!(f["user_id"], b.uid.as_str(), "{f}");
    assert!(
        f.get("chat_id").is_some() && f["chat_id"].is_null(),
        "chat_id null: {f}"
    );
    assert_ts(&f["timestamp"]);
    let pong = wa.ping().await;
    assert_eq!(
        pong["contacts_status"][b.uid.as_str()]["typing"],
        true,
        "{pong}"
    );
    let r = c
        .get(
            &format!("/statuses?user_ids={},{}", b.uid, cu.uid),
            Some(&a.token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (sb, sc) = (
        &r.body["statuses"][b.uid.as_str()],
        &r.body["statuses"][cu.uid.as_str()],
    );
    assert_eq!(
        (&sb["status"], &sb["typing"]),
        (&json!("online"), &json!(true)),
        "{}",
        r.body
    );
    assert_eq!(
        (&sc["status"], &sc["typing"]),
        (&json!("not_subscribed"), &json!(false)),
        "{}",
        r.body
    );
    // 3) coalescing: 5 more within 1 s → at most one more forwarded.
    for _ in 0..5 {
        wb.send_json(&json!({"type": "typing_start", "target": a.uid}))
            .await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    tokio::time::sleep(t.quiet).await;
    wb.ping().await;
    let mut n = 0;
    while wa
        .try_recv_where(|f| is(f, "typing_start"), Duration::from_millis(300))
        .await
        .is_some()
    {
        n += 1;
    }
    assert!(n <= 1, "at most one more typing_start within 3 s, got {n}");
    // 4)
    wb.send_json(&json!({"type": "typing_stop", "target": a.uid}))
        .await;
    let f = wa.recv_type("typing_stop", WAIT).await;
    assert_ephemeral(&f);
    assert_eq!(f["user_id"], b.uid.as_str(), "{f}");
    assert!(f["chat_id"].is_null(), "{f}");
    // 5)
    wb.send_json(&json!({"type": "presence", "status": "away"}))
        .await;
    status_change(&mut wa, &b, "away").await;
    wb.send_json(&json!({"type": "presence", "status": "online"}))
        .await;
    status_change(&mut wa, &b, "online").await;
    // 6)
    wb.close().await;
    status_change(&mut wa, &b, "offline").await;
    let r = c
        .get(&format!("/statuses?user_ids={}", b.uid), Some(&a.token))
        .await;
    let st = r.body["statuses"][b.uid.as_str()]["status"]
        .as_str()
        .unwrap_or_else(|| panic!("status: {}", r.body))
        .to_owned();
    let at = st
        .strip_prefix("was at ")
        .unwrap_or_else(|| panic!("`was at <ts>`: {st}"));
    assert_ts(&json!(at));
    // 7) invisible mode.
    assert_ok(
        &c.post("/status/offline", Some(&b.token), &json!({})).await,
        json!({"status": "ok"}),
    );
    let mut wb = online(t, &b).await;
    wa.expect_no_frame("status_change", t.quiet).await;
    let pong = wa.ping().await;
    assert_eq!(
        pong["contacts_status"][b.uid.as_str()]["status"],
        "offline",
        "invisible B: {pong}"
    );
    assert_ok(
        &c.post("/status/online", Some(&b.token), &json!({})).await,
        json!({"status": "ok"}),
    );
    status_change(&mut wa, &b, "online").await;
    // 8) typing is never queued.
    wa.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    wb.send_json(&json!({"type": "typing_start", "target": a.uid}))
        .await;
    wb.ping().await;
    let (mut wa, sync) = connect(t, &a).await;
    assert!(
        sync.backlog.iter().all(|f| !is(f, "typing_start")),
        "no typing in the backlog: {:?}",
        sync.backlog
    );
    wa.expect_no(
        "a typing frame after reconnecting",
        |f| is(f, "typing_start") || is(f, "typing_stop"),
        t.quiet,
    )
    .await;
    wa.ack_and_close().await;
    wb.ack_and_close().await;
}
