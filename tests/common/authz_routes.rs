//! The HTTP half of the authorization matrix: every served route × the seven roles of
//! [`ROLES`](super::authz_fixture::ROLES), with the PROTOCOL answer per role.
//!
//! A row is a route template (as in `/openapi.json`), the object it targets, the concrete path
//! and body (`"$name"` = a variable of the cell, see `authz_fixture.rs`) and the expected answer
//! per role, in the order owner, admin, member, contact, stranger, revoked session, no token.
//! Objects a success would change are created afresh for each cell ([`Obj`]); [`After`] undoes
//! or checks what a cell did. Sources: PROTOCOL §2 (reasons), §3.1 (401s), §4.x (routes).

use serde_json::{json, Value};

use super::authz_fixture::{in_an_hour, Obj};

/// An expected (or observed) answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exp {
    /// 200 (the WebSocket row: admitted, `sync_done`).
    Ok,
    /// An error status and its `reason` (the WebSocket row: close code and reason).
    Err(u16, &'static str),
}

const OK: Exp = Exp::Ok;
/// §3.1: the session of the token was revoked.
const REV: Exp = Exp::Err(401, "token_revoked");
/// §3.1: no `Authorization` header.
const ANON: Exp = Exp::Err(401, "unauthenticated");
const SELF: Exp = Exp::Err(400, "invalid_target");
const FORBIDDEN: Exp = Exp::Err(403, "forbidden");
const NOT_MEMBER: Exp = Exp::Err(403, "not_a_member");
const NOT_CONTACT: Exp = Exp::Err(403, "not_a_contact");
const NOT_FOUND: Exp = Exp::Err(404, "not_found");
const NO_MESSAGE: Exp = Exp::Err(404, "message_not_found");
const NO_REQUEST: Exp = Exp::Err(404, "no_pending_request");
const BAD_CREDENTIALS: Exp = Exp::Err(401, "invalid_credentials");
const CURRENT: Exp = Exp::Err(400, "cannot_revoke_current");
const NO_SCHEDULE: Exp = Exp::Err(404, "schedule_not_found");
/// A public route answers everyone alike; a token is ignored (§4.1: "Auth: none").
const PUBLIC: [Exp; 7] = [OK; 7];
/// A token route every live session may call for itself.
const ANY_SESSION: [Exp; 7] = [OK, OK, OK, OK, OK, REV, ANON];

/// What a row sends.
#[derive(Clone, Debug)]
pub enum Body {
    None,
    Json(Value),
    /// `multipart/form-data` with a small PNG in part `file`.
    Avatar,
    /// A WebSocket upgrade of `GET /ws` (§5.1 admission).
    Upgrade,
}

/// What happens after a cell of a live role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    Nothing,
    /// A request that succeeded is withdrawn (`/unsubscribe` of the owner).
    WithdrawRequest,
    /// The caller uploads its avatar again.
    ReuploadAvatar,
    /// `POST /status/online`.
    BackOnline,
    /// Another role's request did not touch the owner's device token (`$device_token`).
    OwnerTokenSurvives,
    /// The caller's role in `$chat` is unchanged (owner, admin) or `member` (joined).
    RoleKept,
    /// The `/statuses` answer shows the owner's presence to its contacts only.
    OwnerStatusHidden,
}

pub struct Route {
    pub method: &'static str,
    /// The route template exactly as `/openapi.json` lists it.
    pub path: &'static str,
    /// The object the row targets, for the report.
    pub target: &'static str,
    /// The concrete path, with `$variables`.
    pub at: &'static str,
    pub body: Body,
    pub obj: Obj,
    pub after: After,
    pub expect: [Exp; 7],
}

fn r(method: &'static str, path: &'static str, target: &'static str) -> Route {
    Route {
        method,
        path,
        target,
        at: path,
        body: Body::None,
        obj: Obj::Fixture,
        after: After::Nothing,
        expect: PUBLIC,
    }
}

impl Route {
    fn at(mut self, at: &'static str) -> Self {
        self.at = at;
        self
    }
    fn json(mut self, v: Value) -> Self {
        self.body = Body::Json(v);
        self
    }
    fn body(mut self, b: Body) -> Self {
        self.body = b;
        self
    }
    fn obj(mut self, o: Obj) -> Self {
        self.obj = o;
        self
    }
    fn after(mut self, a: After) -> Self {
        self.after = a;
        self
    }
    fn expect(mut self, e: [Exp; 7]) -> Self {
        self.expect = e;
        self
    }
}

/// The table, in run order.
#[rustfmt::skip]
pub fn routes() -> Vec<Route> {
    use Obj::*;
    let msg = |extra: Value| {
        let mut v = json!({"message_id": "$msg"});
        v.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
        v
    };
    vec![
        // §4.1 service, health and keys: Auth none.
        r("GET", "/", "service"),
        r("GET", "/status", "service"),
        r("GET", "/healthz", "service"),
        r("GET", "/readyz", "service"),
        r("GET", "/metrics", "service"),
        r("GET", "/public_key", "service"),
        r("GET", "/encryption_public_key", "service"),
        r("GET", "/.well-known/jwks.json", "service"),
        r("GET", "/openapi.json", "service"),
        r("GET", "/asyncapi.json", "service"),
        r("GET", "/docs", "service"),
        r("GET", "/redoc", "service"),
        r("GET", "/vapid_public_key", "service"),
        // §4.2 registration, login, sessions, devices.
        r("POST", "/register", "a new account")
            .json(json!({"phone": "$phone", "name": "Fresh", "nickname": "fresh", "password": "Passw0rd-fresh",
                         "device_id": "$new_device", "public_e2e_key": "$pem"})),
        // Any caller's token is ignored: the owner's own token does not replace the password.
        r("POST", "/login", "the owner's account, wrong password")
            .json(json!({"identifier": "$owner", "password": "wrong-password", "device_id": "$new_device"}))
            .expect([BAD_CREDENTIALS; 7]),
        // The link code is the credential; who presents it does not matter.
        r("POST", "/devices/authorize", "a link code of the owner").obj(OwnerLinkCode)
            .json(json!({"identifier": "$owner", "device_id": "$new_device", "link_code": "$code"})),
        r("POST", "/logout", "the caller's own (extra) session").obj(FreshOwnSession)
            .json(json!({})).expect(ANY_SESSION),
        r("GET", "/csrf_token", "the caller's session").expect(ANY_SESSION),
        r("GET", "/sessions", "the caller's sessions").expect(ANY_SESSION),
        r("DELETE", "/sessions/{session_id}", "another session of the owner").obj(OwnerSecondSession)
            .at("/sessions/$session")
            .expect([OK, NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND, REV, ANON]),
        r("DELETE", "/sessions/{session_id}", "the caller's current session").at("/sessions/$own_session")
            .expect([CURRENT, CURRENT, CURRENT, CURRENT, CURRENT, REV, ANON]),
        r("POST", "/sessions/revoke_all", "the caller's other sessions").json(json!({})).expect(ANY_SESSION),
        r("POST", "/sessions/terminate_all", "the caller's other sessions").json(json!({})).expect(ANY_SESSION),
        r("POST", "/devices/register", "the owner's device").json(json!({"device_id": "$owner_device"}))
            .expect([OK, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, REV, ANON]),
        r("POST", "/devices/refresh", "the owner's device token").obj(OwnerDeviceToken)
            .json(json!({"device_id": "$owner_device", "device_token": "$device_token"}))
            .after(After::OwnerTokenSurvives)
            .expect([OK, BAD_CREDENTIALS, BAD_CREDENTIALS, BAD_CREDENTIALS, BAD_CREDENTIALS, REV, ANON]),
        // "Deletes that device's token" of the caller; idempotent, so 200 for everyone, but only
        // the owner's own call may touch the owner's token (checked by After).
        r("POST", "/devices/revoke", "the owner's device").obj(OwnerDeviceToken)
            .json(json!({"device_id": "$owner_device"})).after(After::OwnerTokenSurvives)
            .expect(ANY_SESSION),
        r("POST", "/devices/link_code", "the caller's session").json(json!({})).expect(ANY_SESSION),
        // §4.3 keys, profile, avatar: each caller's own, except where a uid is named.
        r("POST", "/e2e/public_key", "the caller's key").json(json!({"public_e2e_key": "$pem"}))
            .expect(ANY_SESSION),
        r("POST", "/e2e/secret_key", "the caller's backup")
            .json(json!({"ciphertext": "authz-backup-0123456789"})).expect(ANY_SESSION),
        r("GET", "/e2e/secret_key", "the caller's backup").expect(ANY_SESSION),
        r("GET", "/profile", "the caller's profile").expect(ANY_SESSION),
        // "for an accepted contact"; one's own uid is one's own profile.
        r("GET", "/profile", "the owner's profile").at("/profile?user_id=$owner")
            .expect([OK, OK, OK, OK, NOT_CONTACT, REV, ANON]),
        r("PUT", "/profile", "the caller's profile").json(json!({"bio": "authz"})).expect(ANY_SESSION),
        r("POST", "/avatar/upload", "the caller's avatar").body(Body::Avatar).expect(ANY_SESSION),
        // "Visible to the owner, accepted contacts and users sharing a chat; anyone else 404".
        r("GET", "/avatar/{user_unique_id}", "the owner's avatar").at("/avatar/$owner")
            .expect([OK, OK, OK, OK, NOT_FOUND, REV, ANON]),
        // The admin is no contact of the member but shares the chats; the contact shares nothing.
        r("GET", "/avatar/{user_unique_id}", "the member's avatar").at("/avatar/$member")
            .expect([OK, OK, OK, NOT_FOUND, NOT_FOUND, REV, ANON]),
        r("DELETE", "/avatar", "the caller's avatar").after(After::ReuploadAvatar).expect(ANY_SESSION),
        // §4.4 contacts: token, then CSRF (§3.3), then the relationship.
        r("POST", "/subscribe", "the owner").json(json!({"target_id": "$owner", "csrf_token": "$csrf"}))
            .after(After::WithdrawRequest)
            .expect([SELF, Exp::Err(409, "already_contact"), Exp::Err(409, "already_contact"),
                     Exp::Err(409, "already_contact"), OK, REV, ANON]),
        // CSRF tokens are per session: the owner's is worthless with another user's token.
        r("POST", "/subscribe", "a fresh user, with the owner's CSRF token").obj(FreshUser)
            .json(json!({"target_id": "$x", "csrf_token": "$owner_csrf"}))
            .expect([OK, Exp::Err(403, "csrf_invalid"), Exp::Err(403, "csrf_invalid"),
                     Exp::Err(403, "csrf_invalid"), Exp::Err(403, "csrf_invalid"), REV, ANON]),
        r("POST", "/confirm_subscribe", "a request to the owner").obj(RequestToOwner)
            .json(json!({"target_id": "$x", "csrf_token": "$csrf"}))
            .expect([OK, NO_REQUEST, NO_REQUEST, NO_REQUEST, NO_REQUEST, REV, ANON]),
        r("POST", "/reject_subscribe", "a request to the owner").obj(RequestToOwner)
            .json(json!({"target_id": "$x", "csrf_token": "$csrf"}))
            .expect([OK, NO_REQUEST, NO_REQUEST, NO_REQUEST, NO_REQUEST, REV, ANON]),
        r("POST", "/unsubscribe", "a contact of the owner").obj(OwnersContact)
            .json(json!({"target_id": "$x", "csrf_token": "$csrf"}))
            .expect([OK, NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND, REV, ANON]),
        r("GET", "/contacts", "the caller's contacts").expect(ANY_SESSION),
        r("GET", "/contacts/requests", "the caller's requests").expect(ANY_SESSION),
        // §4.5 presence: 200 for anyone, but a non-contact only learns `not_subscribed` (After).
        r("GET", "/statuses", "the owner's status").at("/statuses?user_ids=$owner")
            .after(After::OwnerStatusHidden).expect(ANY_SESSION),
        r("GET", "/status/me", "the caller's status").expect(ANY_SESSION),
        r("GET", "/status/contacts", "the caller's contacts").expect(ANY_SESSION),
        r("POST", "/status/offline", "the caller's presence").json(json!({}))
            .after(After::BackOnline).expect(ANY_SESSION),
        r("POST", "/status/online", "the caller's presence").json(json!({})).expect(ANY_SESSION),
        // Typing over HTTP: group members only (unknown chats and non-members not_a_member);
        // nobody types in a channel. null stops the caller's own typing.
        r("POST", "/status/typing", "the group chat").json(json!({"chat_id": "$group"}))
            .expect([OK, OK, OK, NOT_MEMBER, NOT_MEMBER, REV, ANON]),
        r("POST", "/status/typing", "the channel").json(json!({"chat_id": "$channel"}))
            .expect([FORBIDDEN, FORBIDDEN, FORBIDDEN, NOT_MEMBER, NOT_MEMBER, REV, ANON]),
        r("POST", "/status/typing", "the caller's typing (stop)").json(json!({"chat_id": null}))
            .expect(ANY_SESSION),
        // §4.6 messages. DMs need an accepted contact; chats membership; channels owner/admin.
        r("POST", "/messages/send", "a DM to the owner").json(json!({"target_id": "$owner", "data": "x"}))
            .expect([SELF, OK, OK, OK, NOT_CONTACT, REV, ANON]),
        r("POST", "/messages/send", "the group chat").json(json!({"chat_id": "$group", "data": "x"}))
            .expect([OK, OK, OK, NOT_MEMBER, NOT_MEMBER, REV, ANON]),
        r("POST", "/messages/send", "the channel").json(json!({"chat_id": "$channel", "data": "x"}))
            .expect([OK, OK, FORBIDDEN, NOT_MEMBER, NOT_MEMBER, REV, ANON]),
        // Scheduled messages (docs/scheduled-messages.md): authorized now as /messages/send.
        r("POST", "/schedule/message", "a DM to the owner")
            .json(json!({"target_id": "$owner", "when": in_an_hour(), "data": "x"}))
            .expect([SELF, OK, OK, OK, NOT_CONTACT, REV, ANON]),
        r("POST", "/schedule/message", "the group chat")
            .json(json!({"chat_id": "$group", "when": in_an_hour(), "data": "x"}))
            .expect([OK, OK, OK, NOT_MEMBER, NOT_MEMBER, REV, ANON]),
        r("POST", "/schedule/message", "the channel")
            .json(json!({"chat_id": "$channel", "when": in_an_hour(), "data": "x"}))
            .expect([OK, OK, FORBIDDEN, NOT_MEMBER, NOT_MEMBER, REV, ANON]),
        r("GET", "/schedule", "the caller's pending schedules").expect(ANY_SESSION),
        // Only the owner of a schedule cancels it; to anyone else it does not exist.
        r("DELETE", "/schedule/{schedule_id}", "a pending schedule of the owner")
            .at("/schedule/$schedule").obj(OwnerSchedule)
            .expect([OK, NO_SCHEDULE, NO_SCHEDULE, NO_SCHEDULE, NO_SCHEDULE, REV, ANON]),
        // "no contact required; an unknown uid gives an empty list": the caller's own DM only.
        r("GET", "/messages/history/dm/{target_id}", "the DM with the owner")
            .at("/messages/history/dm/$owner").expect(ANY_SESSION),
        r("GET", "/messages/history/chat/{chat_id}", "the group chat")
            .at("/messages/history/chat/$group")
            .expect([OK, OK, OK, NOT_MEMBER, NOT_MEMBER, REV, ANON]),
        r("GET", "/messages/history/chat/{chat_id}", "the channel")
            .at("/messages/history/chat/$channel")
            .expect([OK, OK, OK, NOT_MEMBER, NOT_MEMBER, REV, ANON]),
        // "requires a current accepted contact": nobody is their own contact.
        r("GET", "/history/{target_id}", "the DM with the owner").at("/history/$owner")
            .expect([NOT_CONTACT, OK, OK, OK, NOT_CONTACT, REV, ANON]),
        // Management: "in a conversation of the caller (else 404 message_not_found)", then the
        // rule of the route (403 forbidden).
        r("POST", "/messages/edit", "the owner's group message").obj(OwnerGroupMsg)
            .json(msg(json!({"new_data": "edited"})))
            .expect([OK, FORBIDDEN, FORBIDDEN, NO_MESSAGE, NO_MESSAGE, REV, ANON]),
        r("POST", "/messages/edit", "the owner's DM to the contact").obj(OwnerDmToContact)
            .json(msg(json!({"new_data": "edited"})))
            .expect([OK, NO_MESSAGE, NO_MESSAGE, FORBIDDEN, NO_MESSAGE, REV, ANON]),
        r("POST", "/messages/delete", "the owner's group message").obj(OwnerGroupMsg).json(msg(json!({})))
            .expect([OK, FORBIDDEN, FORBIDDEN, NO_MESSAGE, NO_MESSAGE, REV, ANON]),
        r("POST", "/messages/delete", "the owner's DM to the contact").obj(OwnerDmToContact)
            .json(msg(json!({})))
            .expect([OK, NO_MESSAGE, NO_MESSAGE, FORBIDDEN, NO_MESSAGE, REV, ANON]),
        r("POST", "/messages/pin", "the owner's group message").obj(OwnerGroupMsg)
            .json(msg(json!({"pinned": true})))
            .expect([OK, OK, FORBIDDEN, NO_MESSAGE, NO_MESSAGE, REV, ANON]),
        // Authorship does not help a plain member: pinning is for owner/admin.
        r("POST", "/messages/pin", "the member's group message").obj(MemberGroupMsg)
            .json(msg(json!({"pinned": true})))
            .expect([OK, OK, FORBIDDEN, NO_MESSAGE, NO_MESSAGE, REV, ANON]),
        r("POST", "/messages/pin", "the owner's channel post").obj(OwnerChannelMsg)
            .json(msg(json!({"pinned": true})))
            .expect([OK, OK, FORBIDDEN, NO_MESSAGE, NO_MESSAGE, REV, ANON]),
        r("POST", "/messages/pin", "the owner's DM to the contact").obj(OwnerDmToContact)
            .json(msg(json!({"pinned": true})))
            .expect([OK, NO_MESSAGE, NO_MESSAGE, OK, NO_MESSAGE, REV, ANON]),
        r("POST", "/messages/react", "the owner's group message").obj(OwnerGroupMsg)
            .json(msg(json!({"reaction": "+1"})))
            .expect([OK, OK, OK, NO_MESSAGE, NO_MESSAGE, REV, ANON]),
        r("POST", "/messages/react", "the owner's channel post").obj(OwnerChannelMsg)
            .json(msg(json!({"reaction": "+1"})))
            .expect([OK, OK, OK, NO_MESSAGE, NO_MESSAGE, REV, ANON]),
        r("POST", "/messages/react", "the owner's DM to the contact").obj(OwnerDmToContact)
            .json(msg(json!({"reaction": "+1"})))
            .expect([OK, NO_MESSAGE, NO_MESSAGE, OK, NO_MESSAGE, REV, ANON]),
        // §4.7 chats. Unknown chats and non-members: 403 not_a_member (§2.2); then the role rule.
        r("POST", "/chats/create", "a new chat").json(json!({"name": "Authz new"})).expect(ANY_SESSION),
        r("GET", "/chats/list", "the caller's chats").expect(ANY_SESSION),
        r("POST", "/chats/set_public", "the channel (already public)")
            .json(json!({"chat_id": "$channel", "is_public": true}))
            .expect([OK, FORBIDDEN, FORBIDDEN, NOT_MEMBER, NOT_MEMBER, REV, ANON]),
        r("POST", "/chats/set_slow_mode", "the group chat (set to 0)")
            .json(json!({"chat_id": "$group", "seconds": 0}))
            .expect([OK, OK, FORBIDDEN, NOT_MEMBER, NOT_MEMBER, REV, ANON]),
        r("GET", "/chats/by_invite/{code}", "the public channel's code").at("/chats/by_invite/$channel_code"),
        // "Public chats only": a temporary invite of a private chat reveals nothing.
        r("GET", "/chats/by_invite/{code}", "a temporary invite of the private group")
            .at("/chats/by_invite/$group_invite").expect([Exp::Err(404, "invite_invalid"); 7]),
        r("GET", "/chats/members", "the group chat").at("/chats/members?chat_id=$group")
            .expect([OK, OK, OK, NOT_MEMBER, NOT_MEMBER, REV, ANON]),
        r("GET", "/chats/members", "the channel").at("/chats/members?chat_id=$channel")
            .expect([OK, OK, FORBIDDEN, NOT_MEMBER, NOT_MEMBER, REV, ANON]),
        r("POST", "/chats/leave", "a fresh group").obj(FreshGroup).json(json!({"chat_id": "$chat"}))
            .expect([Exp::Err(409, "owner_cannot_leave"), OK, OK, NOT_MEMBER, NOT_MEMBER, REV, ANON]),
        r("POST", "/chats/members/add", "a fresh group, a contact of everyone").obj(FreshGroupAndCommonContact)
            .json(json!({"chat_id": "$chat", "user_unique_id": "$x"}))
            .expect([OK, OK, FORBIDDEN, NOT_MEMBER, NOT_MEMBER, REV, ANON]),
        // "Owner removes anyone but itself; an admin removes plain members only (else 403)".
        r("POST", "/chats/members/remove", "the member of a fresh group").obj(FreshGroup)
            .json(json!({"chat_id": "$chat", "user_unique_id": "$member"}))
            .expect([OK, OK, FORBIDDEN, NOT_MEMBER, NOT_MEMBER, REV, ANON]),
        r("POST", "/chats/members/remove", "the admin of a fresh group").obj(FreshGroup)
            .json(json!({"chat_id": "$chat", "user_unique_id": "$admin"}))
            .expect([OK, FORBIDDEN, FORBIDDEN, NOT_MEMBER, NOT_MEMBER, REV, ANON]),
        r("POST", "/chats/members/remove", "the owner of a fresh group").obj(FreshGroup)
            .json(json!({"chat_id": "$chat", "user_unique_id": "$owner"}))
            .expect([FORBIDDEN, FORBIDDEN, FORBIDDEN, NOT_MEMBER, NOT_MEMBER, REV, ANON]),
        r("POST", "/chats/members/role", "the member of a fresh group").obj(FreshGroup)
            .json(json!({"chat_id": "$chat", "user_unique_id": "$member", "role": "admin"}))
            .expect([OK, FORBIDDEN, FORBIDDEN, NOT_MEMBER, NOT_MEMBER, REV, ANON]),
        // "Target must be a member other than the owner": the owner cannot be demoted.
        r("POST", "/chats/members/role", "the owner of a fresh group").obj(FreshGroup)
            .json(json!({"chat_id": "$chat", "user_unique_id": "$owner", "role": "member"}))
            .expect([FORBIDDEN, FORBIDDEN, FORBIDDEN, NOT_MEMBER, NOT_MEMBER, REV, ANON]),
        r("POST", "/invites/create", "the group chat").json(json!({"chat_id": "$group", "ttl_minutes": 5}))
            .expect([OK, OK, FORBIDDEN, NOT_MEMBER, NOT_MEMBER, REV, ANON]),
        // The code is the credential; joining never changes an existing role (After checks).
        r("POST", "/invites/join", "an invite to a fresh group").obj(FreshGroupInvite)
            .json(json!({"code": "$code"})).after(After::RoleKept).expect(ANY_SESSION),
        // §4.8, §4.9.
        r("GET", "/ice_servers", "the caller's credentials").expect(ANY_SESSION),
        r("POST", "/register_push", "the caller's device")
            .json(json!({"platform": "android", "push_token": "authz-push-token"})).expect(ANY_SESSION),
        // Account deletion and export (issue 17): token, then CSRF (§3.3), then the password.
        // A success would erase the fixture's users: every live role sends a wrong password.
        r("DELETE", "/account", "the caller's account, wrong password")
            .json(json!({"password": "wrong-password", "csrf_token": "$csrf"}))
            .expect([FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, REV, ANON]),
        r("DELETE", "/account", "the caller's account, with the owner's CSRF token")
            .json(json!({"password": "wrong-password", "csrf_token": "$owner_csrf"}))
            .expect([FORBIDDEN, Exp::Err(403, "csrf_invalid"), Exp::Err(403, "csrf_invalid"),
                     Exp::Err(403, "csrf_invalid"), Exp::Err(403, "csrf_invalid"), REV, ANON]),
        r("GET", "/account/export", "the caller's own data").expect(ANY_SESSION),
        // §5.1 admission: upgrade, then close 1008 with the §3.1 reason.
        r("GET", "/ws", "a WebSocket upgrade").body(Body::Upgrade)
            .expect([OK, OK, OK, OK, OK, Exp::Err(1008, "token_revoked"), Exp::Err(1008, "unauthenticated")]),
        // §4.5 read markers: members only, then the message must be one of that chat. Last: each
        // cell queues a fresh message for every member, which would outgrow the unacknowledged
        // backlog the upgrade row above reads up to `sync_done` without acking.
        r("POST", "/status/read", "a message of the group chat").obj(MemberGroupMsg)
            .json(json!({"chat_id": "$group", "message_id": "$msg"}))
            .expect([OK, OK, OK, NOT_MEMBER, NOT_MEMBER, REV, ANON]),
        r("POST", "/status/read", "a post of the channel").obj(OwnerChannelMsg)
            .json(json!({"chat_id": "$channel", "message_id": "$msg"}))
            .expect([OK, OK, OK, NOT_MEMBER, NOT_MEMBER, REV, ANON]),
        r("POST", "/status/read", "a DM, named as a message of the group").obj(OwnerDmToContact)
            .json(json!({"chat_id": "$group", "message_id": "$msg"}))
            .expect([NO_MESSAGE, NO_MESSAGE, NO_MESSAGE, NOT_MEMBER, NOT_MEMBER, REV, ANON]),
    ]
}
