//! Session management: list, revoke one, revoke all others, logout (PROTOCOL §3.2, §4.2, S3, S15.1).

mod common;

use std::time::Duration;

use common::realtime::{second_device, Target};
use common::ws::WsClient;
use common::{login, new_user, TestServer};
use http::Method;
use serde_json::json;

#[tokio::test]
async fn list_is_current_and_device_fields() {
    let s = TestServer::start().await;
    let c = &s.client;
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
    s.stop().await;
}

#[tokio::test]
async fn revoking_closes_sockets_and_rejects_tokens() {
    let s = TestServer::start().await;
    let t = Target::of(&s);
    let c = &s.client;
    let a = new_user(c, "Alice").await;
    let a2 = second_device(&t, &a).await;
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
    let a3 = second_device(&t, &a).await;
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
    s.stop().await;
}
