//! PROTOCOL scenario S4 (contacts and the first messages).

use super::*;

// ---- S4 ------------------------------------------------------------------------------------

/// S4 Contacts.
pub async fn s4(t: &Target) {
    let c = &t.client;
    let a = new_user(c, "Alice").await;
    let b = new_user(c, "Bob").await;
    let cu = new_user(c, "Carol").await;
    let d = new_user(c, "Dave").await;

    // 1) WS(B); A asks B.
    let mut wb = online(t, &b).await;
    let r = csrf_post(c, "/subscribe", &a, &b.uid).await;
    assert_ok(&r, json!({"status": "subscription_requested"}));
    // 2)
    let f = wb.recv_type("subscription_request", WAIT).await;
    assert_durable(&f);
    assert_eq!(f["from_id"], a.uid.as_str(), "{f}");
    assert!(f["from_phone"].is_null(), "from_phone is null: {f}");
    assert_eq!(f["from_nickname"], "alice", "{f}");
    assert_eq!(f["secret"], false, "{f}");
    wb.ack_all().await;
    // 3)
    csrf_post(c, "/subscribe", &a, &b.uid)
        .await
        .assert_error(409, "request_pending");
    csrf_post(c, "/subscribe", &a, &a.uid)
        .await
        .assert_error(400, "invalid_target");
    c.post(
        "/subscribe",
        Some(&a.token),
        &json!({"target_id": b.uid, "csrf_token": "x"}),
    )
    .await
    .assert_error(403, "csrf_invalid");
    csrf_post(c, "/subscribe", &a, "10000000")
        .await
        .assert_error(404, "user_not_found");
    let numeric: u64 = b.uid.parse().expect("uid");
    let r = c
        .post(
            "/subscribe",
            Some(&a.token),
            &json!({"target_id": numeric, "csrf_token": a.csrf}),
        )
        .await;
    r.assert_error(422, "validation_failed");
    assert_eq!(
        r.body["error"]["fields"][0]["field"], "target_id",
        "{}",
        r.body
    );
    // 4) A relays to B before B accepted.
    let mut wa = online(t, &a).await;
    wa.send_json(&json!({"type": "relay", "target": b.uid, "payload": "CT-0", "client_id": "p0"}))
        .await;
    let e = wa.recv_type("error", WAIT).await;
    error_frame(&e, "not_a_contact", json!("p0"));
    wb.expect_silence(t.quiet).await;
    // 5)
    let r = c.get("/contacts/requests", Some(&b.token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let incoming = r.body["incoming"].as_array().expect("incoming");
    assert_eq!(incoming.len(), 1, "{}", r.body);
    assert_eq!(incoming[0]["unique_id"], a.uid.as_str());
    assert_eq!(incoming[0]["nickname"], "alice");
    assert_eq!(incoming[0]["secret"], false);
    assert_ts(&incoming[0]["requested_at"]);
    assert_eq!(r.body["outgoing"], json!([]), "{}", r.body);
    let r = c.get("/contacts/requests", Some(&a.token)).await;
    let outgoing = r.body["outgoing"].as_array().expect("outgoing");
    assert_eq!(outgoing.len(), 1, "{}", r.body);
    assert_eq!(outgoing[0]["unique_id"], b.uid.as_str());
    assert!(
        outgoing[0].get("nickname").is_none(),
        "outgoing requests do not reveal the target's profile: {}",
        r.body
    );
    // 6) confirm with the CSRF token in the header only.
    let confirm = || {
        let req = c
            .request(Method::POST, "/confirm_subscribe", Some(&b.token))
            .header("x-csrf-token", &b.csrf)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                json!({"target_id": a.uid}).to_string(),
            )))
            .expect("request");
        c.send(req)
    };
    assert_ok(&confirm().await, json!({"status": "confirmed"}));
    confirm().await.assert_error(404, "no_pending_request");
    // 7)
    let f = wa.recv_type("subscription_confirmed", WAIT).await;
    assert_durable(&f);
    assert_eq!(f["from_id"], b.uid.as_str(), "{f}");
    assert!(f["from_phone"].is_null(), "{f}");
    assert_eq!(f["from_nickname"], "bob", "{f}");
    wa.ack_all().await;
    // 8)
    let r = c.get("/contacts", Some(&a.token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (
            &r.body["page"],
            &r.body["per_page"],
            &r.body["total"],
            &r.body["pages"]
        ),
        (&json!(1), &json!(20), &json!(1), &json!(1)),
        "{}",
        r.body
    );
    let list = r.body["contacts"].as_array().expect("contacts");
    assert_eq!(list.len(), 1, "{}", r.body);
    assert_eq!(list[0]["unique_id"], b.uid.as_str());
    assert_eq!(list[0]["nickname"], "bob");
    assert!(
        same_pem(&list[0]["public_e2e_key"], &user_pem()),
        "{}",
        r.body
    );
    let r = c.get("/contacts", Some(&b.token)).await;
    let list = r.body["contacts"].as_array().expect("contacts");
    assert_eq!(list.len(), 1, "{}", r.body);
    assert_eq!(list[0]["unique_id"], a.uid.as_str());
    // 9) C asks A, A rejects.
    assert_ok(
        &csrf_post(c, "/subscribe", &cu, &a.uid).await,
        json!({"status": "subscription_requested"}),
    );
    let f = wa.recv_type("subscription_request", WAIT).await;
    assert_eq!(f["from_id"], cu.uid.as_str(), "{f}");
    assert_eq!(f["from_nickname"], "carol", "{f}");
    wa.ack_all().await;
    assert_ok(
        &csrf_post(c, "/reject_subscribe", &a, &cu.uid).await,
        json!({"status": "rejected"}),
    );
    let r = c.get("/contacts/requests", Some(&cu.token)).await;
    assert_eq!(
        r.body["outgoing"],
        json!([]),
        "rejected request is gone: {}",
        r.body
    );
    csrf_post(c, "/reject_subscribe", &a, &cu.uid)
        .await
        .assert_error(404, "no_pending_request");
    // 10) C and B become contacts.
    make_contacts(t, &cu, &b).await;
    let f = wb.recv_type("subscription_request", WAIT).await;
    assert_eq!(f["from_id"], cu.uid.as_str(), "{f}");
    wb.ack_all().await;
    // 11) A and D become contacts, then A ends it.
    let mut wd = online(t, &d).await;
    make_contacts(t, &a, &d).await;
    let f = wd.recv_type("subscription_request", WAIT).await;
    assert_eq!(f["from_id"], a.uid.as_str(), "{f}");
    let f = wa.recv_type("subscription_confirmed", WAIT).await;
    assert_eq!(f["from_id"], d.uid.as_str(), "{f}");
    wd.ack_all().await;
    wa.ack_all().await;
    assert_ok(
        &csrf_post(c, "/unsubscribe", &a, &d.uid).await,
        json!({"status": "unsubscribed"}),
    );
    let f = wd.recv_type("subscription_removed", WAIT).await;
    assert_durable(&f);
    assert_eq!(f["from_id"], a.uid.as_str(), "{f}");
    wd.ack_all().await;
    wa.send_json(&json!({"type": "relay", "target": d.uid, "payload": "CT-D", "client_id": "p1"}))
        .await;
    let e = wa.recv_type("error", WAIT).await;
    error_frame(&e, "not_a_contact", json!("p1"));
    let r = c.get("/contacts", Some(&a.token)).await;
    assert_eq!(
        r.body["total"], 1,
        "D is gone from A's contacts: {}",
        r.body
    );
    csrf_post(c, "/unsubscribe", &a, &d.uid)
        .await
        .assert_error(404, "not_found");
    // 12)
    let r = c
        .get(&format!("/profile?user_id={}", a.uid), Some(&b.token))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["unique_id"], a.uid.as_str());
    assert_eq!(r.body["nickname"], "alice");
    assert!(r.body.get("phone").is_none(), "no phone: {}", r.body);
    assert!(
        r.body.get("csrf_token").is_none(),
        "no csrf_token: {}",
        r.body
    );
    // 13) A's new key reaches B (a contact) and not D (no longer one).
    let pem2 = new_pem(2048);
    assert_ok(
        &c.post(
            "/e2e/public_key",
            Some(&a.token),
            &json!({"public_e2e_key": pem2}),
        )
        .await,
        json!({"status": "ok"}),
    );
    let f = wb.recv_type("key_changed", WAIT).await;
    assert_durable(&f);
    assert_eq!(f["user_id"], a.uid.as_str(), "{f}");
    assert!(same_pem(&f["public_e2e_key"], &pem2), "{f}");
    wb.ack_all().await;
    let r = c.get("/contacts", Some(&b.token)).await;
    let entry = r.body["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .find(|e| e["unique_id"] == a.uid.as_str())
        .cloned()
        .expect("A listed");
    assert!(same_pem(&entry["public_e2e_key"], &pem2), "{entry}");
    wd.expect_no_frame("key_changed", t.quiet).await;
    // 14) A logs in again: a new CSRF token replaces the old one.
    let r = login(c, &a.phone, &a.password, &a.device).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let new_csrf = r.body["csrf_token"].as_str().expect("csrf").to_owned();
    assert_ne!(new_csrf, a.csrf);
    csrf_post(c, "/subscribe", &a, &cu.uid)
        .await
        .assert_error(403, "csrf_invalid");
    let r = c.get("/csrf_token", Some(&a.token)).await;
    assert_ok(&r, json!({"csrf_token": new_csrf}));

    wa.ack_and_close().await;
    wb.ack_and_close().await;
    wd.ack_and_close().await;
}
