//! The workload: every documented route, with the PII of [`super::people`], over real sockets.
//! Accounts, sessions, devices, profiles, keys, avatars, contacts and chats here; messages,
//! presence, typing, push and calls in [`super::realtime`].

use http::Method;
use serde_json::{json, Value};

use super::api::{Actor, Api, Net};
use super::people::{self, Person, ALICE, CAROL, DAVE, ERIN};
use super::search::Needles;
use crate::common::{avatars, random_device, user_pem, User};

/// What the workload leaves: the plaintexts to look for and the open sockets.
pub struct Outcome {
    pub needles: Needles,
    /// Identifiers (uids) that ephemeral state must not show either: Redis key names and
    /// values, and the commands nodes send it.
    pub ids: Needles,
    pub sockets: Vec<crate::common::ws::WsClient>,
}

/// The four logged-in users and the chats.
pub struct World {
    pub a: Actor,
    pub b: Actor,
    pub c: Actor,
    pub d: Actor,
    pub group: i64,
    pub channel: i64,
}

fn s(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {v}"))
        .to_owned()
}

async fn register(api: &Api, p: &Person) -> String {
    let body = json!({"phone": p.phone_input, "name": p.name, "nickname": p.nick,
        "password": p.password, "device_id": random_device(), "public_e2e_key": user_pem()});
    let r = api.anon(p.net, Method::POST, "/register", Some(body)).await;
    assert_eq!(r.status, 200, "register {}: {}", p.label, r.body);
    assert_eq!(r.body["phone"], p.phone, "normalized phone");
    s(&r.body, "unique_id")
}

/// The tokens of a login response, remembered as needles.
fn actor_of(n: &mut Needles, who: &str, body: &Value, uid: &str, p: &Person, net: Net) -> Actor {
    let u = User {
        uid: uid.to_owned(),
        phone: p.phone.to_owned(),
        password: p.password.to_owned(),
        device: s(body, "device_id"),
        token: s(body, "access_token"),
        csrf: s(body, "csrf_token"),
        session_id: body["session_id"].as_i64().expect("session_id"),
        device_token: s(body, "device_token"),
    };
    n.add(format!("{who} access token"), &u.token);
    n.add(format!("{who} CSRF token"), &u.csrf);
    n.add(format!("{who} device token"), &u.device_token);
    Actor { u, net }
}

async fn login(api: &Api, n: &mut Needles, p: &Person, uid: &str, who: &str) -> Actor {
    let body = json!({"identifier": p.phone, "password": p.password, "device_id": random_device()});
    let r = api.anon(p.net, Method::POST, "/login", Some(body)).await;
    assert_eq!(r.status, 200, "login {who}: {}", r.body);
    actor_of(n, who, &r.body, uid, p, p.net)
}

/// §4.1: the public service routes.
async fn service_routes(api: &Api) -> Value {
    let net = ALICE.net;
    for path in [
        "/",
        "/status",
        "/healthz",
        "/readyz",
        "/metrics",
        "/public_key",
        "/encryption_public_key",
        "/.well-known/jwks.json",
        "/docs",
        "/redoc",
        "/vapid_public_key",
        "/asyncapi.json",
    ] {
        let r = api.anon(net, Method::GET, path, None).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    }
    api.anon(net, Method::GET, "/openapi.json", None).await.body
}

/// §4.2: registration and login of the four users, a wrong password and an unknown phone.
async fn accounts(api: &Api, n: &mut Needles) -> [Actor; 4] {
    let mut actors = Vec::new();
    for p in people::PEOPLE {
        let uid = register(api, p).await;
        actors.push(login(api, n, p, &uid, p.label).await);
    }
    for (id, pw) in [
        (ALICE.phone, people::WRONG_PASSWORD),
        (people::UNKNOWN_PHONE, ALICE.password),
    ] {
        let body = json!({"identifier": id, "password": pw, "device_id": random_device()});
        let r = api
            .anon(ALICE.net, Method::POST, "/login", Some(body))
            .await;
        r.assert_error(401, "invalid_credentials");
    }
    // Each session shows its forwarded address and user agent: the server saw them.
    for who in &actors {
        let list = api.get(who, "/sessions").await;
        let me = list["sessions"]
            .as_array()
            .and_then(|l| l.iter().find(|x| x["is_current"] == true))
            .cloned()
            .unwrap_or_else(|| panic!("current session in {list}"));
        assert_eq!(me["ip_address"], who.net.ip, "{me}");
        assert_eq!(me["device_name"], who.net.ua, "{me}");
    }
    actors.try_into().unwrap_or_else(|_| unreachable!())
}

/// §4.2 devices: device tokens, a link code redeemed by a new device (whose session is then
/// revoked) and one left live.
async fn devices(api: &Api, n: &mut Needles, a: &mut Actor) {
    api.get(a, "/csrf_token").await;
    let r = api
        .post(a, "/devices/register", json!({"device_id": a.u.device}))
        .await;
    a.u.device_token = s(&r, "device_token");
    n.add("alice device token (register)", &a.u.device_token);
    let body = json!({"device_id": a.u.device, "device_token": a.u.device_token});
    a.u.device_token = s(&api.post(a, "/devices/refresh", body).await, "device_token");
    n.add("alice device token (refresh)", &a.u.device_token);
    let a2 = login(api, n, &ALICE, &a.u.uid, "alice's 2nd device").await;
    api.post(a, "/devices/revoke", json!({"device_id": a2.u.device}))
        .await;
    let code = s(
        &api.post(a, "/devices/link_code", json!({})).await,
        "link_code",
    );
    n.add("link code", &code);
    n.add("link code (bare)", code.replace('-', ""));
    let body = json!({"identifier": ALICE.phone, "device_id": random_device(), "link_code": code});
    let r = api
        .anon(ALICE.net, Method::POST, "/devices/authorize", Some(body))
        .await;
    assert_eq!(r.status, 200, "authorize: {}", r.body);
    let a3 = actor_of(
        n,
        "alice's linked device",
        &r.body,
        &a.u.uid,
        &ALICE,
        ALICE.net,
    );
    let live = s(
        &api.post(&a2, "/devices/link_code", json!({})).await,
        "link_code",
    );
    n.add("live link code", &live);
    n.add("live link code (bare)", live.replace('-', ""));
    let path = format!("/sessions/{}", a3.u.session_id);
    api.ok(a, Method::DELETE, &path, None).await;
}

/// §4.2: the other ways a session ends (revoke all, terminate all, logout).
async fn end_sessions(api: &Api, n: &mut Needles, c: &Actor, d: &Actor) {
    login(api, n, &DAVE, &d.u.uid, "dave's 2nd device").await;
    let r = api.post(d, "/sessions/revoke_all", json!({})).await;
    assert_eq!(r["revoked_count"], 1, "{r}");
    login(api, n, &DAVE, &d.u.uid, "dave's 3rd device").await;
    api.post(d, "/sessions/terminate_all", json!({})).await;
    let c2 = login(api, n, &CAROL, &c.u.uid, "carol's 2nd device").await;
    api.post(&c2, "/logout", json!({})).await;
}

/// Issue 17: a fifth user exports everything the server holds about her, then deletes her
/// account (password and CSRF token).
async fn account_data(api: &Api, n: &mut Needles) {
    let uid = register(api, &ERIN).await;
    let e = login(api, n, &ERIN, &uid, ERIN.label).await;
    api.ok(
        &e,
        Method::PUT,
        "/profile",
        Some(json!({"bio": people::BIO})),
    )
    .await;
    let doc = api.get(&e, "/account/export").await;
    assert_eq!(doc["profile"]["phone"], ERIN.phone, "{doc}");
    assert_eq!(
        doc["sessions"]["items"][0]["ip_address"], ERIN.net.ip,
        "{doc}"
    );
    let body = json!({"password": ERIN.password, "csrf_token": e.u.csrf});
    let r = api.ok(&e, Method::DELETE, "/account", Some(body)).await;
    assert_eq!(r["unique_id"], uid.as_str(), "{r}");
}

/// §4.3: profile changes, keys, the secret-key backup and avatars.
async fn profiles(api: &Api, a: &Actor, b: &Actor) {
    let body = json!({"username": people::USERNAME, "bio": people::BIO});
    api.ok(a, Method::PUT, "/profile", Some(body)).await;
    api.ok(
        b,
        Method::PUT,
        "/profile",
        Some(json!({"nickname": people::NEW_NICK})),
    )
    .await;
    assert_eq!(api.get(a, "/profile").await["bio"], people::BIO);
    api.post(a, "/e2e/public_key", json!({"public_e2e_key": user_pem()}))
        .await;
    api.post(
        a,
        "/e2e/secret_key",
        json!({"ciphertext": people::SECRET_BACKUP}),
    )
    .await;
    assert_eq!(
        api.get(a, "/e2e/secret_key").await["ciphertext"],
        people::SECRET_BACKUP
    );
    let png = avatars::png(people::AVATAR_MARKER.as_bytes());
    let ct = format!("multipart/form-data; boundary={}", avatars::BOUNDARY);
    for who in [a, b] {
        let body = avatars::multipart("file", &png);
        let r = api
            .raw(who, Method::POST, "/avatar/upload", Some((&ct, body)))
            .await;
        assert_eq!(r.status, 200, "avatar: {}", r.body);
    }
}

async fn contact(api: &Api, who: &Actor, path: &str, target: &Actor) -> Value {
    api.post(
        who,
        path,
        json!({"target_id": target.u.uid, "csrf_token": who.u.csrf}),
    )
    .await
}

/// §4.4: accepted pairs A–B, A–C, C–D; a rejected, a withdrawn and a pending request.
async fn contacts(api: &Api, w: &World) {
    let (a, b, c, d) = (&w.a, &w.b, &w.c, &w.d);
    for (x, y) in [(a, b), (a, c), (c, d)] {
        contact(api, x, "/subscribe", y).await;
        contact(api, y, "/confirm_subscribe", x).await;
    }
    contact(api, d, "/subscribe", a).await;
    contact(api, a, "/reject_subscribe", d).await;
    contact(api, c, "/subscribe", b).await;
    contact(api, c, "/unsubscribe", b).await;
    contact(api, d, "/subscribe", b).await;
    api.get(a, "/contacts").await;
    let r = api.get(b, "/contacts/requests").await;
    assert_eq!(r["incoming"][0]["nickname"], DAVE.nick, "{r}");
    api.get(b, &format!("/profile?user_id={}", a.u.uid)).await;
    let r = api
        .raw(b, Method::GET, &format!("/avatar/{}", a.u.uid), None)
        .await;
    assert_eq!(r.status, 200, "a contact's avatar");
    api.ok(b, Method::DELETE, "/avatar", None).await;
}

/// §4.7: a named group (B admin, slow mode) and a channel, listed.
async fn chats(api: &Api, n: &mut Needles, w: &World) -> (i64, i64) {
    let (a, b) = (&w.a, &w.b);
    let create = |body: Value| async move {
        let r = api.post(a, "/chats/create", body).await;
        r["chat_id"]
            .as_i64()
            .unwrap_or_else(|| panic!("chat_id in {r}"))
    };
    let group = create(json!({"name": people::GROUP})).await;
    let channel = create(json!({"name": people::CHANNEL, "type": "channel"})).await;
    let member = json!({"chat_id": group, "user_unique_id": b.u.uid});
    api.post(a, "/chats/members/add", member).await;
    let role = json!({"chat_id": group, "user_unique_id": b.u.uid, "role": "admin"});
    api.post(a, "/chats/members/role", role).await;
    let slow = json!({"chat_id": group, "seconds": 30});
    api.post(a, "/chats/set_slow_mode", slow).await;
    invites(api, n, w, group, channel).await;
    let r = api.get(a, "/chats/list").await;
    assert!(r.to_string().contains(people::GROUP), "{r}");
    api.get(a, &format!("/chats/members?chat_id={group}")).await;
    (group, channel)
}

/// §4.7 invites: C joins the group by a temporary code, D the public channel by its permanent
/// code (looked up anonymously first).
async fn invites(api: &Api, n: &mut Needles, w: &World, group: i64, channel: i64) {
    let (a, c, d) = (&w.a, &w.c, &w.d);
    let body = json!({"chat_id": group, "ttl_minutes": 60});
    let temp = s(&api.post(a, "/invites/create", body).await, "code");
    n.add("temporary invite code", &temp);
    api.post(c, "/invites/join", json!({"code": temp})).await;
    let body = json!({"chat_id": channel, "is_public": true});
    let permanent = s(&api.post(a, "/chats/set_public", body).await, "invite");
    n.add("permanent invite code", &permanent);
    let path = format!("/chats/by_invite/{permanent}");
    let r = api.anon(DAVE.net, Method::GET, &path, None).await;
    assert_eq!(r.body["name"], people::CHANNEL, "{}", r.body);
    api.post(d, "/invites/join", json!({"code": permanent}))
        .await;
}

/// Runs the whole workload against `s`; the sockets stay open (presence, typing and calls live).
pub async fn run(
    s: &crate::common::TestServer,
    push: &crate::common::push_service::PushService,
) -> Outcome {
    let api = Api::new(s.client.clone());
    let mut n = people::fixed_needles();
    n.add("push endpoint", push.endpoint(people::PUSH_PATH));
    n.add(
        "push endpoint host",
        push.origin().trim_start_matches("http://"),
    );
    n.add("push key p256dh", push.p256dh());
    n.add("push key auth", push.auth());
    let openapi = service_routes(&api).await;
    let [mut a, b, c, d] = accounts(&api, &mut n).await;
    devices(&api, &mut n, &mut a).await;
    end_sessions(&api, &mut n, &c, &d).await;
    account_data(&api, &mut n).await;
    profiles(&api, &a, &b).await;
    let mut w = World {
        a,
        b,
        c,
        d,
        group: 0,
        channel: 0,
    };
    contacts(&api, &w).await;
    (w.group, w.channel) = chats(&api, &mut n, &w).await;
    let sockets = super::realtime::run(&api, s, push, &w).await;
    let missing = api.untouched(&openapi);
    assert!(
        missing.is_empty(),
        "the workload did not touch: {missing:?}"
    );
    let mut ids = Needles::default();
    for (who, actor) in [
        ("alice", &w.a),
        ("bob", &w.b),
        ("carol", &w.c),
        ("dave", &w.d),
    ] {
        ids.add(format!("{who}'s uid"), &actor.u.uid);
    }
    Outcome {
        needles: n,
        ids,
        sockets,
    }
}
