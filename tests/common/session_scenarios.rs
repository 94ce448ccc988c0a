//! PROTOCOL §7 S3 (sessions, device tokens, linking) and S15 part 1 (revocation) against a
//! [`Target`]: run in-process (tests/sessions.rs) and against the example binary.

use std::time::Duration;

use http::Method;
use serde_json::json;

use super::realtime::{second_device, Target};
use super::ws::WsClient;
use super::{login, new_user};

/// S3 steps 1, 2 and 10: the session list, `is_current`, device fields from the User-Agent.
pub async fn s3_sessions(t: &Target) {
    let c = &t.client;
    let a = new_user(c, "Alice").await;
    let r1 = c.get("/sessions", Some(&a.token)).await;
    let r2 = c.get("/sessions/", Some(&a.token)).await;
    assert_eq!(r1.status, 200, "{}", r1.body);
    assert_eq!(r1.body, r2.body);
    let list = r1.body["sessions"].as_array().expect("sessions");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], a.session_id);
    assert_eq!(list[0]["is_current"], true);
    assert_eq!(list[0]["ip_address"], "127.0.0.1");
    // A login of the same device with another User-Agent refreshes its fields, same id.
    let req = c
        .request(Method::POST, "/login", None)
        .header("user-agent", "conf-A/2.0 (iPhone)")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            json!({"identifier": a.phone, "password": a.password, "device_id": a.device})
                .to_string(),
        )))
        .expect("req");
    let r = c.send(req).await;
    assert_eq!(r.body["session_id"], a.session_id);
    let list = c.get("/sessions", Some(&a.token)).await.body["sessions"].clone();
    assert_eq!(list[0]["device_type"], "phone");
    assert_eq!(list[0]["device_name"], "conf-A/2.0 (iPhone)");
    assert!(list[0]["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    c.call(
        Method::DELETE,
        &format!("/sessions/{}", a.session_id),
        Some(&a.token),
        None,
    )
    .await
    .assert_error(400, "cannot_revoke_current");
    c.call(Method::DELETE, "/sessions/999999", Some(&a.token), None)
        .await
        .assert_error(404, "not_found");
    c.call(Method::DELETE, "/sessions/abc", Some(&a.token), None)
        .await
        .assert_error(422, "validation_failed");
}

/// S3 steps 3–9: device tokens rotate on use, refresh and revoke; linking.
pub async fn s3_device_tokens_and_linking(t: &Target) {
    let c = &t.client;
    let a = new_user(c, "Alice").await;
    // 3–5) auto-login rotates the device token; the old one fails.
    let d1 = login(c, &a.phone, &a.password, &a.device).await.body["device_token"].clone();
    let auto = |t: &serde_json::Value| json!({"identifier": a.phone, "device_id": a.device, "device_token": t});
    let r = c.post("/login", None, &auto(&d1)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["session_id"], a.session_id);
    let d2 = r.body["device_token"].clone();
    assert_ne!(d1, d2);
    let ta = r.body["access_token"].as_str().expect("token").to_owned();
    c.post("/login", None, &auto(&d1))
        .await
        .assert_error(401, "invalid_credentials");
    // 6) refresh rotates; the refreshed-away token fails.
    let r = c
        .post(
            "/devices/refresh",
            Some(&ta),
            &json!({"device_id": a.device, "device_token": d2}),
        )
        .await;
    assert_eq!(r.body["ok"], true, "{}", r.body);
    let d3 = r.body["device_token"].clone();
    assert_eq!(d3.as_str().map(str::len), Some(43));
    c.post(
        "/devices/refresh",
        Some(&ta),
        &json!({"device_id": a.device, "device_token": d2}),
    )
    .await
    .assert_error(401, "invalid_credentials");
    // 7) revoke deletes it (idempotent); auto-login with it fails.
    assert_eq!(
        c.post(
            "/devices/revoke",
            Some(&ta),
            &json!({"device_id": a.device})
        )
        .await
        .body,
        json!({"ok": true})
    );
    assert_eq!(
        c.post(
            "/devices/revoke",
            Some(&ta),
            &json!({"device_id": a.device})
        )
        .await
        .status,
        200
    );
    c.post("/login", None, &auto(&d3))
        .await
        .assert_error(401, "invalid_credentials");
    // register: only for the session's own device.
    let r = c
        .post(
            "/devices/register",
            Some(&ta),
            &json!({"device_id": a.device}),
        )
        .await;
    assert_eq!(r.body["device_token"].as_str().map(str::len), Some(43));
    c.post(
        "/devices/register",
        Some(&ta),
        &json!({"device_id": "ffffffffffffffff"}),
    )
    .await
    .assert_error(403, "forbidden");
    // 8) linking: a code redeems once, for the approving user's account only.
    let l = c.post("/devices/link_code", Some(&ta), &json!({})).await;
    assert_eq!(l.body["expires_in"], 120);
    let code = l.body["link_code"].as_str().expect("code").to_owned();
    assert!(code.len() == 9 && code.as_bytes()[4] == b'-', "{code}");
    let a2 = "a2b2c3d4e5f60718";
    let other = new_user(c, "Mallory").await;
    let body = |id: &str, code: &str| json!({"identifier": id, "device_id": a2, "link_code": code});
    c.post("/devices/authorize", None, &body(&other.uid, &code))
        .await
        .assert_error(401, "invalid_credentials");
    // A code is single-use whoever presents it: the failed try consumed it.
    let code = c
        .post("/devices/link_code", Some(&ta), &json!({}))
        .await
        .body["link_code"]
        .as_str()
        .expect("c")
        .to_owned();
    let r = c
        .post(
            "/devices/authorize",
            None,
            &body(&a.uid, &code.to_lowercase()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["unique_id"], a.uid.as_str());
    let s2 = r.body["session_id"].clone();
    assert_ne!(s2, a.session_id);
    c.post("/devices/authorize", None, &body(&a.uid, &code))
        .await
        .assert_error(401, "invalid_credentials");
    let l2 = c
        .post("/devices/link_code", Some(&ta), &json!({}))
        .await
        .body["link_code"]
        .as_str()
        .expect("c")
        .to_owned();
    let r = c
        .post("/devices/authorize", None, &body(&a.phone, &l2))
        .await;
    assert_eq!(
        r.body["session_id"], s2,
        "the device's active session is reused"
    );
    // A newer code replaces the older one.
    let old = c
        .post("/devices/link_code", Some(&ta), &json!({}))
        .await
        .body["link_code"]
        .as_str()
        .expect("c")
        .to_owned();
    let new = c
        .post("/devices/link_code", Some(&ta), &json!({}))
        .await
        .body["link_code"]
        .as_str()
        .expect("c")
        .to_owned();
    c.post("/devices/authorize", None, &body(&a.uid, &old))
        .await
        .assert_error(401, "invalid_credentials");
    assert_eq!(
        c.post("/devices/authorize", None, &body(&a.uid, &new))
            .await
            .status,
        200
    );
    // 9–10) two sessions, one current.
    let list = c.get("/sessions", Some(&ta)).await.body["sessions"].clone();
    let list = list.as_array().expect("sessions");
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|s| s["is_current"] == true).count(), 1);
}

/// S15 part 1: revocation closes sockets at once and rejects tokens; revoke_all keeps the caller.
pub async fn s15_revocation(t: &Target) {
    let c = &t.client;
    let a = new_user(c, "Alice").await;
    let a2 = second_device(t, &a).await;
    let b = new_user(c, "Bob").await;
    // Another user's session id is not ours to revoke.
    c.call(
        Method::DELETE,
        &format!("/sessions/{}", b.session_id),
        Some(&a.token),
        None,
    )
    .await
    .assert_error(404, "not_found");
    let mut ws1 = WsClient::connect(
        t.ws,
        &format!("/anything?token={}", a2.token),
        None,
        false,
        None,
    )
    .await;
    ws1.sync().await;
    let mut ws2 = WsClient::open(t.http, &a.token).await;
    ws2.sync().await;
    let r = c
        .call(
            Method::DELETE,
            &format!("/sessions/{}", a2.session_id),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(
        r.body,
        json!({"status": "ok", "message": "Session revoked"})
    );
    assert_eq!(
        ws1.expect_close(Duration::from_secs(2)).await,
        (1008, "token_revoked".to_owned())
    );
    c.get("/contacts", Some(&a2.token))
        .await
        .assert_error(401, "token_revoked");
    let mut again = WsClient::connect(t.http, "/ws", Some(&a2.token), true, None).await;
    assert_eq!(again.expect_close(Duration::from_secs(2)).await.0, 1008);
    // The device token died with the session.
    let auto =
        json!({"identifier": a.phone, "device_id": a2.device, "device_token": a2.device_token});
    c.post("/login", None, &auto)
        .await
        .assert_error(401, "invalid_credentials");
    // revoke_all keeps the caller's own session.
    let a3 = second_device(t, &a).await;
    let r = c
        .post("/sessions/revoke_all", Some(&a.token), &json!({}))
        .await;
    assert_eq!(r.body, json!({"status": "ok", "revoked_count": 1}));
    c.get("/profile", Some(&a3.token))
        .await
        .assert_error(401, "token_revoked");
    assert_eq!(c.get("/profile", Some(&a.token)).await.status, 200);
    let r = c
        .post("/sessions/terminate_all", Some(&a.token), &json!({}))
        .await;
    assert_eq!(r.body, json!({"status": "ok", "revoked_count": 0}));
    ws2.ping().await;
    // Logout ends the caller's own session and socket.
    assert_eq!(
        c.post("/logout", Some(&a.token), &json!({})).await.body,
        json!({"status": "ok"})
    );
    assert_eq!(
        ws2.expect_close(Duration::from_secs(2)).await,
        (1008, "token_revoked".to_owned())
    );
    c.get("/profile", Some(&a.token))
        .await
        .assert_error(401, "token_revoked");
    // A new login of the device creates a new session.
    let r = login(c, &a.phone, &a.password, &a.device).await;
    assert_ne!(r.body["session_id"], a.session_id);
}

/// S3 and S15 part 1.
pub async fn all(t: &Target) {
    s3_sessions(t).await;
    s3_device_tokens_and_linking(t).await;
    s15_revocation(t).await;
}
