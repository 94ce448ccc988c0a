//! Scenarios of the operator tools (issue 17) against running servers: `admin` is an operator's
//! handle on the servers' store, opened on its own (a second store handle on the same database,
//! as the `melo admin` process opens it), never through the server.

use std::sync::Arc;
use std::time::Duration;

use melo::admin::{Admin, AdminError, DEFAULT_INVITE_TTL};
use melo::model::{SessionId, Timestamp, UserId};
use melo::Store;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::realtime::{make_contacts, online, second_device, Target};
use super::ws::WsClient;
use super::{login, new_user, random_device, random_phone, user_pem, Client, Resp, User};

/// A revocation closes the sockets of the session within this long: the servers read the notes
/// every second (several nodes: also the session caches expire within 2 s).
pub const CLOSE_WITHIN: Duration = Duration::from_secs(5);

pub fn uid(u: &User) -> UserId {
    u.uid.parse().expect("uid")
}

/// Waits for the server to close `ws` for a revoked session; returns how long it took.
pub async fn closed_revoked(ws: &mut WsClient, what: &str) -> Duration {
    let started = Instant::now();
    let close = ws.expect_close(CLOSE_WITHIN).await;
    assert_eq!(close, (1008, "token_revoked".to_owned()), "{what}");
    let took = started.elapsed();
    eprintln!("{what}: socket closed after {took:?}");
    took
}

/// `GET /profile` with `u`'s token answers `status` (`reason` when it is an error).
async fn profile(c: &Client, u: &User, status: u16, reason: &str) {
    let r = c.get("/profile", Some(&u.token)).await;
    if status == 200 {
        assert_eq!(r.status, 200, "{}", r.body);
    } else {
        r.assert_error(status, reason);
    }
}

/// Lock, unlock, list and revoke sessions, and count, on one server: sockets of revoked
/// sessions close, the others stay; a locked account's login answers 403 `account_locked`.
pub async fn lock_and_revoke(t: &Target, admin: &Admin) {
    let c = &t.client;
    let a = new_user(c, "Alice").await;
    let a2 = second_device(t, &a).await;
    let b = new_user(c, "Bob").await;
    make_contacts(t, &a, &b).await;
    let (ua, ub) = (uid(&a), uid(&b));
    let mut wa = online(t, &a).await;
    let mut wa2 = online(t, &a2).await;
    let mut wb = online(t, &b).await;

    // The listing: newest first, decrypted last activity, nothing else.
    let list = admin.sessions(ua).await.expect("sessions");
    let ids: Vec<i64> = list.iter().map(|s| s.session_id.0).collect();
    assert_eq!(ids, vec![a2.session_id, a.session_id]);
    let now = Timestamp::now().millis();
    for (s, u) in list.iter().zip([&a2, &a]) {
        assert!(s.active);
        assert_eq!(s.device_id, u.device);
        assert!((now - s.created_at.millis()).abs() < 300_000, "{s:?}");
        assert!((now - s.last_activity.millis()).abs() < 300_000, "{s:?}");
    }
    let shown = serde_json::to_value(&list[0]).expect("json");
    let mut keys: Vec<&str> = shown
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "active",
            "created_at",
            "device_id",
            "device_type",
            "last_activity",
            "session_id"
        ]
    );

    // Revoke one session: its socket closes, the other device's stays.
    let one = SessionId(a2.session_id);
    assert_eq!(
        admin.revoke(ua, Some(one)).await.expect("revoke"),
        vec![one]
    );
    closed_revoked(&mut wa2, "revoked session").await;
    profile(c, &a2, 401, "token_revoked").await;
    profile(c, &a, 200, "").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    wa.ping().await;
    assert!(matches!(
        admin.revoke(ua, Some(one)).await,
        Err(AdminError::SessionNotFound)
    ));
    assert!(matches!(
        admin.revoke(ub, Some(SessionId(a.session_id))).await,
        Err(AdminError::SessionNotFound)
    ));
    let list = admin.sessions(ua).await.expect("sessions");
    let states: Vec<(i64, bool)> = list.iter().map(|s| (s.session_id.0, s.active)).collect();
    assert_eq!(states, vec![(a2.session_id, false), (a.session_id, true)]);

    // Lock: every session revoked, the socket closes, logins refused.
    let counts = admin.stats().await.expect("stats");
    assert_eq!((counts.users, counts.locked_users), (2, 0));
    assert_eq!(
        admin.lock(ua).await.expect("lock"),
        vec![SessionId(a.session_id)]
    );
    closed_revoked(&mut wa, "locked account").await;
    assert!(admin.is_locked(ua).await.expect("locked"));
    login(c, &a.phone, &a.password, &a.device)
        .await
        .assert_error(403, "account_locked");
    login(c, &a.uid, &a.password, &random_device())
        .await
        .assert_error(403, "account_locked");
    // A wrong password tells nothing about the lock; the device token died with its session.
    login(c, &a.phone, "Wrong-password-1", &a.device)
        .await
        .assert_error(401, "invalid_credentials");
    let by_token =
        json!({"identifier": a.uid, "device_id": a.device, "device_token": a.device_token});
    c.post("/login", None, &by_token)
        .await
        .assert_error(401, "invalid_credentials");
    profile(c, &a, 401, "token_revoked").await;
    wb.ping().await;
    profile(c, &b, 200, "").await;
    let counts = admin.stats().await.expect("stats");
    assert_eq!(
        (
            counts.users,
            counts.locked_users,
            counts.active_sessions,
            counts.contacts
        ),
        (2, 1, 1, 1),
        "{counts:?}"
    );

    // Unlock: logins work again, with new sessions; the old ones stay revoked.
    admin.unlock(ua).await.expect("unlock");
    assert!(!admin.is_locked(ua).await.expect("unlocked"));
    let r = login(c, &a.phone, &a.password, &a.device).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let fresh = r.body["session_id"].as_i64().expect("sid");
    assert!(fresh != a.session_id && fresh != a2.session_id);
    profile(c, &a, 401, "token_revoked").await;
    let counts = admin.stats().await.expect("stats");
    assert_eq!(
        (counts.locked_users, counts.active_sessions),
        (0, 2),
        "{counts:?}"
    );

    let nobody = UserId::new(99_999_999).expect("uid");
    assert!(matches!(
        admin.lock(nobody).await,
        Err(AdminError::UserNotFound)
    ));
    assert!(matches!(
        admin.unlock(nobody).await,
        Err(AdminError::UserNotFound)
    ));
    assert!(matches!(
        admin.sessions(nobody).await,
        Err(AdminError::UserNotFound)
    ));
    assert!(matches!(
        admin.revoke(nobody, None).await,
        Err(AdminError::UserNotFound)
    ));
    wb.close().await;
}

/// A `/register` body for a new phone, with `invite_code` when given.
pub fn register_body(phone: &str, code: Option<&str>) -> Value {
    let mut body = json!({"phone": phone, "name": "Invited", "nickname": "invited",
        "password": "Passw0rd-Inv1", "device_id": random_device(), "public_e2e_key": user_pem()});
    if let Some(code) = code {
        body["invite_code"] = json!(code);
    }
    body
}

async fn register(c: &Client, phone: &str, code: Option<&str>) -> Resp {
    c.post("/register", None, &register_body(phone, code)).await
}

/// `REGISTRATION=invite`: a registration needs an unused, unexpired code; a code makes one
/// account; a refused registration does not use it up. Returns the codes made, for the caller
/// to look for in the database files.
pub async fn invite_registration(
    t: &Target,
    admin: &Admin,
    store: &Arc<dyn Store>,
    pii: &melo::crypto::Pii,
) -> Vec<String> {
    let c = &t.client;
    register(c, &random_phone(), None)
        .await
        .assert_error(403, "invite_required");
    register(c, &random_phone(), Some("  "))
        .await
        .assert_error(403, "invite_required");
    register(c, &random_phone(), Some("not-a-code"))
        .await
        .assert_error(403, "registration_invite_invalid");
    register(c, &random_phone(), Some("ABCDE-FGHJK-MNPQR-STVWX-YZ012"))
        .await
        .assert_error(403, "registration_invite_invalid");

    let first = admin
        .create_invite(DEFAULT_INVITE_TTL)
        .await
        .expect("invite");
    assert_eq!(first.code.len(), 29);
    let until = first.expires_at.millis() - Timestamp::now().millis();
    assert!((until - DEFAULT_INVITE_TTL.as_millis() as i64).abs() < 60_000);
    // A registration refused for its fields does not use the code.
    let mut bad = register_body(&random_phone(), Some(&first.code));
    bad["phone"] = json!("not a phone");
    c.post("/register", None, &bad)
        .await
        .assert_error(422, "validation_failed");
    // Typed in lower case without dashes: the same code.
    let typed = first.code.replace('-', "").to_lowercase();
    let phone = random_phone();
    let r = register(c, &phone, Some(&typed)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = login(c, &phone, "Passw0rd-Inv1", &random_device()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    register(c, &random_phone(), Some(&first.code))
        .await
        .assert_error(403, "registration_invite_invalid");

    // A taken phone is refused before the code is used.
    let second = admin
        .create_invite(DEFAULT_INVITE_TTL)
        .await
        .expect("invite");
    register(c, &phone, Some(&second.code))
        .await
        .assert_error(409, "phone_taken");
    let r = register(c, &random_phone(), Some(&second.code)).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Two registrations of one phone at once, each with its own code: one account; the
    // refused one's code (given back if it had been taken) still works.
    let (x, y) = (
        admin
            .create_invite(DEFAULT_INVITE_TTL)
            .await
            .expect("invite"),
        admin
            .create_invite(DEFAULT_INVITE_TTL)
            .await
            .expect("invite"),
    );
    let same = random_phone();
    let (rx, ry) = tokio::join!(
        register(c, &same, Some(&x.code)),
        register(c, &same, Some(&y.code))
    );
    let mut statuses = [rx.status.as_u16(), ry.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{} / {}", rx.body, ry.body);
    let loser = if rx.status == 200 { &y.code } else { &x.code };
    let r = register(c, &random_phone(), Some(loser)).await;
    assert_eq!(r.status, 200, "the refused registration's code: {}", r.body);

    // An expired code is refused.
    let expired = "QQQQQ-RRRRR-SSSSS-TTTTT-VVVVV";
    let index = pii.blind_index("registration_invite", expired.replace('-', "").as_bytes());
    let past = Timestamp::from_millis(Timestamp::now().millis() - 1000);
    store
        .create_registration_invite(&index, past)
        .await
        .expect("expired invite");
    register(c, &random_phone(), Some(expired))
        .await
        .assert_error(403, "registration_invite_invalid");

    let open = admin
        .create_invite(DEFAULT_INVITE_TTL)
        .await
        .expect("invite");
    let counts = admin.stats().await.expect("stats");
    assert_eq!(counts.open_registration_invites, 1, "{counts:?}");
    vec![first.code, second.code, x.code, y.code, open.code]
}
