//! PROTOCOL scenarios S6–S9.

use super::*;

// ---- S6 ------------------------------------------------------------------------------------

/// S6 Live DM and receipts.
pub async fn s6(t: &Target) {
    let (a, b) = pair(t, "Alice", "Bob").await;
    let mut wa = online(t, &a).await;
    let mut wb = online(t, &b).await;
    // 1)
    let m = relay(&mut wa, &a, &b, "CT-1", "a-1").await;
    // 2) exactly one delivery; no `delivered` before B acks.
    let f = delivery(&mut wb, &a, &b).await;
    assert_eq!(f["message_id"], m.as_str());
    assert_eq!(f["payload"], "CT-1");
    assert!(f["self"] != true, "{f}");
    wb.expect_no_frame("relay_delivery", t.quiet).await;
    wa.expect_no(
        "msg_status before B acked",
        |f| is(f, "msg_status") && f["status"] != "queued",
        Duration::ZERO,
    )
    .await;
    // 3)
    wb.send_json(&json!({"type": "ack_received", "message_id": m}))
        .await;
    statuses(&mut wa, "delivered", std::slice::from_ref(&m), &b, &a).await;
    // 4)
    wb.send_json(&json!({"type": "ack_read", "message_id": m}))
        .await;
    statuses(&mut wa, "read", std::slice::from_ref(&m), &b, &a).await;
    wa.ack_all().await;
    // 5) chat_message: the payload is the frame's exact JSON text.
    let frame = json!({"type": "chat_message", "target": b.uid, "payload": {"text": "hi"}, "client_id": "a-2"});
    let text = frame.to_string();
    wa.send_text(&text).await;
    let m5 = hex32(&queued_reply(&mut wa, "a-2").await["message_id"]);
    let f = delivery(&mut wb, &a, &b).await;
    assert_eq!(f["message_id"], m5.as_str());
    let payload = f["payload"].as_str().expect("payload");
    assert_eq!(
        serde_json::from_str::<Value>(payload).expect("payload is JSON"),
        frame
    );
    assert_eq!(payload, text, "the frame's exact JSON text");
    // 6)
    let r = history(t, &a, &b.uid).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let msgs = strings(&r.body["messages"]);
    assert_eq!(msgs, vec!["CT-1".to_owned(), text.clone()], "{}", r.body);
    let items = r.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    let it = &items[0];
    assert_eq!(it["message_id"], m.as_str());
    assert_eq!(it["from"], a.uid.as_str());
    assert_eq!(it["to"], b.uid.as_str());
    assert!(it["chat_id"].is_null(), "{it}");
    assert_ts(&it["ts"]);
    assert_eq!(it["status"], "read", "{it}");
    assert_eq!(it["deleted"], false);
    assert_eq!(items[1]["message_id"], m5.as_str());
    assert_eq!(
        items[1]["status"], "queued",
        "B has not acked M5: {}",
        items[1]
    );
    assert_eq!(r.body["has_more"], false);
    assert_eq!(r.body["total"], 2);
    // 7) B acks up to the last durable frame → A learns M5 was delivered.
    let last = seq_of(&f);
    wb.ack_up_to(last).await;
    statuses(&mut wa, "delivered", &[m5], &b, &a).await;
    wa.ack_and_close().await;
    wb.ack_and_close().await;
}

// ---- S7 ------------------------------------------------------------------------------------

/// S7 Offline queue and redelivery.
pub async fn s7(t: &Target) {
    let (a, b) = pair(t, "Alice", "Bob").await;
    let mut wa = online(t, &a).await;
    // 1)–3) B offline.
    let m2 = relay(&mut wa, &a, &b, "CT-2", "c-2").await;
    let m3 = http_send(t, &a, &b, "CT-3").await;
    let m3b = relay(&mut wa, &a, &b, "CT-3b", "c-3b").await;
    let ids = vec![m2.clone(), m3.clone(), m3b.clone()];
    // B is offline, and the device that sent over HTTP gets no copy and no status of it.
    wa.expect_silence(t.quiet).await;
    // 4) B connects and does not ack.
    let (wb, sync) = connect(t, &b).await;
    let check_backlog = |sync: &SyncDone| -> i64 {
        assert_eq!(sync.backlog.len(), 3, "backlog: {:?}", sync.backlog);
        let s1 = seq_of(&sync.backlog[0]);
        for (i, f) in sync.backlog.iter().enumerate() {
            assert_dm_delivery(f, &a, &b);
            assert_eq!(f["message_id"], ids[i].as_str(), "order: {f}");
            assert_eq!(f["payload"], ["CT-2", "CT-3", "CT-3b"][i], "{f}");
            assert_eq!(seq_of(f), s1 + i as i64, "consecutive seq: {f}");
        }
        assert_eq!((sync.count, sync.last_seq), (3, s1 + 2), "sync_done");
        s1 + 2
    };
    let s3 = check_backlog(&sync);
    wb.close().await;
    // 5) again: the same frames, unchanged.
    let (mut wb, sync2) = connect(t, &b).await;
    check_backlog(&sync2);
    assert_eq!(sync2.backlog, sync.backlog, "redelivered unchanged (§5.3)");
    // 6)
    wb.ack_up_to(s3).await;
    statuses(&mut wa, "delivered", &ids, &b, &a).await;
    wa.expect_no_frame("msg_status", t.quiet).await;
    wa.ack_all().await;
    wb.ping().await;
    wb.close().await;
    // 7)
    let (wb, sync) = connect(t, &b).await;
    assert_eq!(
        (sync.count, sync.last_seq),
        (0, s3),
        "nothing left: {:?}",
        sync.backlog
    );
    assert!(sync.backlog.is_empty());
    wb.close().await;
    // 8) 300 offline messages against the 256 in-flight window.
    let mut bulk = Vec::new();
    for i in 0..300 {
        bulk.push(http_send(t, &a, &b, &format!("BULK-{i}")).await);
    }
    let mut wb = WsClient::open(t.http, &b.token).await;
    let durable = |f: &Value| f.get("seq").is_some() || is(f, "sync_done");
    for (i, id) in bulk.iter().enumerate().take(256) {
        let f = wb
            .recv_where(&format!("delivery #{i}"), durable, WAIT)
            .await;
        assert_dm_delivery(&f, &a, &b);
        assert_eq!(f["message_id"], id.as_str(), "order at #{i}");
        assert_eq!(seq_of(&f), s3 + 1 + i as i64, "seq at #{i}");
    }
    wb.expect_no(
        "a 257th frame or sync_done before an ack (window 256)",
        durable,
        t.quiet,
    )
    .await;
    wb.ack_up_to(s3 + 256).await;
    let sync = wb.sync().await;
    assert_eq!(sync.backlog.len(), 44, "the rest: {:?}", sync.backlog);
    for (i, f) in sync.backlog.iter().enumerate() {
        assert_eq!(f["message_id"], bulk[256 + i].as_str());
        assert_eq!(seq_of(f), s3 + 257 + i as i64);
    }
    assert_eq!((sync.count, sync.last_seq), (300, s3 + 300));
    wb.ack_and_close().await;
    wa.ack_and_close().await;
}

// ---- S8 ------------------------------------------------------------------------------------

/// S8 Idempotency and history.
pub async fn s8(t: &Target) {
    let c = &t.client;
    let (a, b) = pair(t, "Alice", "Bob").await;
    let mut wa = online(t, &a).await;
    let mut wb = online(t, &b).await;
    // 1)
    let m4 = relay(&mut wa, &a, &b, "CT-4", "dup-1").await;
    wa.send_json(
        &json!({"type": "relay", "target": b.uid, "payload": "CT-4-again", "client_id": "dup-1"}),
    )
    .await;
    let q = queued_reply(&mut wa, "dup-1").await;
    assert_eq!(q["message_id"], m4.as_str(), "{q}");
    assert_eq!(q["duplicate"], true, "{q}");
    let f = delivery(&mut wb, &a, &b).await;
    assert_eq!(f["message_id"], m4.as_str());
    assert_eq!(f["payload"], "CT-4");
    // 2)
    let body = json!({"target_id": b.uid, "data": "CT-5", "client_id": "dup-2"});
    let send = || c.post("/messages/send", Some(&a.token), &body);
    let r1 = send().await;
    assert_eq!(r1.status, 200, "{}", r1.body);
    assert!(r1.body["duplicate"] != true, "{}", r1.body);
    let m5 = hex32(&r1.body["message_id"]);
    let r2 = send().await;
    assert_eq!(r2.status, 200, "{}", r2.body);
    assert_eq!(r2.body["message_id"], m5.as_str(), "{}", r2.body);
    assert_eq!(r2.body["duplicate"], true, "{}", r2.body);
    let f = delivery(&mut wb, &a, &b).await;
    assert_eq!(f["message_id"], m5.as_str());
    wb.expect_no_frame("relay_delivery", t.quiet).await;
    // 3)
    let r = history(t, &a, &b.uid).await;
    assert_eq!(
        strings(&r.body["messages"]),
        vec!["CT-4".to_owned(), "CT-5".to_owned()],
        "{}",
        r.body
    );
    // 4)
    let mut h = Vec::new();
    for i in 1..=5 {
        h.push(http_send(t, &a, &b, &format!("H{i}")).await);
    }
    for id in &h {
        let f = delivery(&mut wb, &a, &b).await;
        assert_eq!(f["message_id"], id.as_str());
    }
    // Stable statuses for the comparisons below: B acks everything, A sees every `delivered`.
    wb.ack_all().await;
    let mut all = vec![m4.clone(), m5.clone()];
    all.extend(h.iter().cloned());
    statuses(&mut wa, "delivered", &all, &b, &a).await;
    wa.ack_all().await;
    // 5)
    let r = history(t, &a, &format!("{}?limit=2", b.uid)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(strings(&r.body["messages"]), vec!["H4", "H5"], "{}", r.body);
    assert_eq!(item_ids(&r.body), vec![h[3].clone(), h[4].clone()]);
    assert_eq!(r.body["has_more"], true);
    assert_eq!(r.body["next_before"], h[3].as_str());
    assert!(
        r.body["page"].is_null() && r.body["pages"].is_null(),
        "{}",
        r.body
    );
    let limit2 = r.body.clone();
    let r = history(t, &a, &format!("{}?before={}&limit=2", b.uid, h[3])).await;
    assert_eq!(strings(&r.body["messages"]), vec!["H2", "H3"], "{}", r.body);
    assert_eq!(r.body["next_before"], h[1].as_str(), "{}", r.body);
    let r = history(t, &a, &format!("{}?page=1&per_page=2", b.uid)).await;
    assert_eq!(strings(&r.body["messages"]), vec!["H4", "H5"], "{}", r.body);
    assert_eq!(
        (
            &r.body["page"],
            &r.body["per_page"],
            &r.body["total"],
            &r.body["pages"]
        ),
        (&json!(1), &json!(2), &json!(7), &json!(4)),
        "{}",
        r.body
    );
    let r = history(t, &a, &format!("{}?page=4&per_page=2", b.uid)).await;
    assert_eq!(strings(&r.body["messages"]), vec!["CT-4"], "{}", r.body);
    assert_eq!(r.body["has_more"], false, "{}", r.body);
    // 6) WS get_history = the HTTP cursor response.
    wa.send_json(&json!({"type": "get_history", "target": b.uid, "limit": 2}))
        .await;
    let f = wa.recv_type("history", WAIT).await;
    assert_ephemeral(&f);
    assert_eq!(f["target"], b.uid.as_str());
    assert!(f["chat_id"].is_null(), "{f}");
    for k in ["messages", "items", "has_more", "next_before"] {
        assert_eq!(f[k], limit2[k], "get_history `{k}` = HTTP ?limit=2");
    }
    // 7)
    for q in [
        "before=zzz",
        "limit=101",
        "limit=0",
        "per_page=0",
        "page=1&limit=2",
    ] {
        history(t, &a, &format!("{}?{q}", b.uid))
            .await
            .assert_error(422, "validation_failed");
    }
    wa.ack_and_close().await;
    wb.ack_and_close().await;
}

// ---- S9 ------------------------------------------------------------------------------------

/// S9 Multi-device.
pub async fn s9(t: &Target) {
    let (a, b) = pair(t, "Alice", "Bob").await;
    let a2 = second_device(t, &a).await;
    let b2 = second_device(t, &b).await;
    let mut wa = online(t, &a).await;
    let mut wa2 = online(t, &a2).await;
    let mut wb = online(t, &b).await;
    let mut wb2 = online(t, &b2).await;
    // 1)
    let m6 = relay(&mut wa, &a, &b, "CT-6", "c-6").await;
    for ws in [&mut wb, &mut wb2] {
        let f = delivery(ws, &a, &b).await;
        assert_eq!(
            (&f["message_id"], &f["payload"]),
            (&json!(m6), &json!("CT-6"))
        );
        assert!(f["self"] != true, "recipients' copies are not self: {f}");
    }
    let f = delivery(&mut wa2, &a, &b).await;
    assert_eq!(f["message_id"], m6.as_str());
    assert_eq!(f["payload"], "CT-6");
    assert_eq!(
        f["self"], true,
        "the sender's other device gets a self copy: {f}"
    );
    wa2.ack_all().await;
    wa.expect_no_frame("relay_delivery", t.quiet).await;
    // 2) B2's ack makes `delivered`, once.
    wb2.ack_all().await;
    for ws in [&mut wa, &mut wa2] {
        statuses(ws, "delivered", std::slice::from_ref(&m6), &b, &a).await;
        ws.ack_all().await;
    }
    wb.ack_all().await;
    for ws in [&mut wa, &mut wa2] {
        ws.expect_no(
            "a second `delivered`, or a status from a self-copy ack",
            |f| is(f, "msg_status"),
            t.quiet,
        )
        .await;
    }
    // 3) B2 offline: CT-7 waits in its own queue.
    wb2.close().await;
    let m7 = relay(&mut wa, &a, &b, "CT-7", "c-7").await;
    let f = delivery(&mut wb, &a, &b).await;
    assert_eq!(f["message_id"], m7.as_str());
    wb.ack_all().await;
    let f = delivery(&mut wa2, &a, &b).await;
    assert_eq!((&f["message_id"], &f["self"]), (&json!(m7), &json!(true)));
    wa2.ack_all().await;
    let (wb2, sync) = connect(t, &b2).await;
    assert_eq!(sync.count, 1, "B2's backlog: {:?}", sync.backlog);
    assert_dm_delivery(&sync.backlog[0], &a, &b);
    assert_eq!(sync.backlog[0]["message_id"], m7.as_str());
    assert_eq!(sync.backlog[0]["payload"], "CT-7");
    assert_eq!(sync.last_seq, seq_of(&sync.backlog[0]));
    wb2.ack_and_close().await;
    // 4) A2 closes: A is still online.
    wa2.ack_and_close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pong = wb.ping().await;
    assert_eq!(
        pong["contacts_status"][a.uid.as_str()]["status"],
        "online",
        "{pong}"
    );
    wb.expect_no(
        "a status_change of A (one of A's sockets is still open)",
        |f| is(f, "status_change") && f["user_id"] == a.uid.as_str(),
        t.quiet,
    )
    .await;
    // 5) a second socket of B's device replaces the first.
    let (wb_new, _) = connect(t, &b).await;
    assert_eq!(
        wb.expect_close(WAIT).await,
        (4001, "replaced".to_owned()),
        "the older socket of the device"
    );
    wb_new.ack_and_close().await;
    wa.ack_and_close().await;
}
