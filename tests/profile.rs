//! Profiles, E2E keys, CSRF (PROTOCOL §3.3, §4.3, S5).

mod common;

use common::{login, new_user, scenarios, TestServer};
use melo::model::{Timestamp, UserId};
use serde_json::json;

#[tokio::test]
async fn s5_profile_and_keys() {
    let s = TestServer::start().await;
    let a = new_user(&s.client, "Alice").await;
    let c = new_user(&s.client, "Carol").await;
    scenarios::s5_profile(&s.client, &a, &c).await;
    s.stop().await;
}

#[tokio::test]
async fn contact_profile_is_public_view_only() {
    let s = TestServer::start().await;
    let cl = &s.client;
    let a = new_user(cl, "Alice").await;
    let b = new_user(cl, "Bob").await;
    let (ua, ub): (UserId, UserId) = (a.uid.parse().expect("uid"), b.uid.parse().expect("uid"));
    // Pending is not enough.
    s.store
        .request_contact(ua, ub, false, Timestamp::now())
        .await
        .expect("request");
    cl.get(&format!("/profile?user_id={}", a.uid), Some(&b.token))
        .await
        .assert_error(403, "not_a_contact");
    assert!(s.store.accept_contact(ua, ub).await.expect("accept"));
    let r = cl
        .get(&format!("/profile?user_id={}", a.uid), Some(&b.token))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["unique_id"], a.uid.as_str());
    assert_eq!(r.body["nickname"], "alice");
    assert!(
        r.body.get("phone").is_none() && r.body.get("csrf_token").is_none(),
        "{}",
        r.body
    );
    let r = cl
        .get(&format!("/profile?user_id={}", b.uid), Some(&a.token))
        .await;
    assert_eq!(r.status, 200, "contacts are mutual");
    // Malformed uid in the query.
    let r = cl.get("/profile?user_id=123", Some(&a.token)).await;
    r.assert_error(422, "validation_failed");
    assert_eq!(r.body["error"]["fields"][0]["field"], "user_id");
    s.stop().await;
}

#[tokio::test]
async fn profile_update_rules() {
    let s = TestServer::start().await;
    let cl = &s.client;
    let a = new_user(cl, "Alice").await;
    for (field, value) in [
        ("name", json!("<i></i>")),
        ("nickname", json!("x".repeat(51))),
        ("username", json!("bad-name")),
        ("bio", json!("b".repeat(501))),
        ("password", json!("short")),
    ] {
        let mut body = json!({"current_password": a.password});
        body[field] = value;
        let r = cl.put("/profile", Some(&a.token), &body).await;
        r.assert_error(422, "validation_failed");
        assert_eq!(r.body["error"]["fields"][0]["field"], field);
    }
    let r = cl
        .put(
            "/profile",
            Some(&a.token),
            &json!({"username": "al", "bio": "hi", "name": "<b>Al</b>"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let p = cl.get("/profile", Some(&a.token)).await;
    assert_eq!(
        (&p.body["name"], &p.body["username"]),
        (&json!("Al"), &json!("al"))
    );
    // "" clears, null leaves unchanged.
    cl.put(
        "/profile",
        Some(&a.token),
        &json!({"username": "", "bio": null}),
    )
    .await;
    let p = cl.get("/profile", Some(&a.token)).await;
    assert_eq!(
        (&p.body["username"], &p.body["bio"]),
        (&json!(null), &json!("hi"))
    );
    // An empty update is fine.
    assert_eq!(
        cl.put("/profile", Some(&a.token), &json!({})).await.status,
        200
    );
    s.stop().await;
}

#[tokio::test]
async fn password_change_needs_current_and_revokes_other_sessions() {
    let s = TestServer::start().await;
    let cl = &s.client;
    let a = new_user(cl, "Alice").await;
    let other = login(cl, &a.phone, &a.password, &common::random_device()).await;
    let other_token = other.body["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(cl.get("/profile", Some(&other_token)).await.status, 200);
    let r = cl
        .put(
            "/profile",
            Some(&a.token),
            &json!({"password": "NewPassw0rd", "current_password": "wrong-one"}),
        )
        .await;
    r.assert_error(403, "forbidden");
    assert_eq!(
        cl.get("/profile", Some(&other_token)).await.status,
        200,
        "a failed change revokes nothing"
    );
    let r = cl
        .put(
            "/profile",
            Some(&a.token),
            &json!({"password": "NewPassw0rd", "current_password": a.password}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    cl.get("/profile", Some(&other_token))
        .await
        .assert_error(401, "token_revoked");
    assert_eq!(
        cl.get("/profile", Some(&a.token)).await.status,
        200,
        "the caller's session stays"
    );
    login(cl, &a.phone, &a.password, &a.device)
        .await
        .assert_error(401, "invalid_credentials");
    assert_eq!(
        login(cl, &a.phone, "NewPassw0rd", &a.device).await.status,
        200
    );
    s.stop().await;
}

#[tokio::test]
async fn csrf_token_is_per_session_and_stable_until_login() {
    let s = TestServer::start().await;
    let cl = &s.client;
    let a = new_user(cl, "Alice").await;
    let t1 = cl.get("/csrf_token", Some(&a.token)).await;
    assert_eq!(t1.body["csrf_token"], a.csrf.as_str());
    let p = cl.get("/profile", Some(&a.token)).await;
    assert_eq!(p.body["csrf_token"], a.csrf.as_str());
    let other = login(cl, &a.phone, &a.password, &common::random_device()).await;
    assert_ne!(
        other.body["csrf_token"],
        a.csrf.as_str(),
        "another session has its own token"
    );
    assert_eq!(
        cl.get("/csrf_token", Some(&a.token)).await.body["csrf_token"],
        a.csrf.as_str()
    );
    let again = login(cl, &a.phone, &a.password, &a.device).await;
    assert_eq!(
        cl.get("/csrf_token", Some(&a.token)).await.body["csrf_token"],
        again.body["csrf_token"]
    );
    s.stop().await;
}

#[tokio::test]
async fn secret_key_limits() {
    let s = TestServer::start().await;
    let cl = &s.client;
    let a = new_user(cl, "Alice").await;
    let big = "x".repeat(65_537);
    cl.post(
        "/e2e/secret_key",
        Some(&a.token),
        &json!({"ciphertext": big}),
    )
    .await
    .assert_error(422, "validation_failed");
    cl.post("/e2e/secret_key", Some(&a.token), &json!({"ciphertext": 5}))
        .await
        .assert_error(422, "validation_failed");
    let max = "y".repeat(65_536);
    assert_eq!(
        cl.post(
            "/e2e/secret_key",
            Some(&a.token),
            &json!({"ciphertext": max})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        cl.get("/e2e/secret_key", Some(&a.token)).await.body["ciphertext"]
            .as_str()
            .map(str::len),
        Some(65_536)
    );
    let other = new_user(cl, "Bob").await;
    assert_eq!(
        cl.get("/e2e/secret_key", Some(&other.token)).await.body,
        json!({"ciphertext": null})
    );
    s.stop().await;
}
