//! The authorization matrix (issue 7): the roles, the shared fixture, the objects a row targets
//! (created fresh per cell where a success would change the answer for the next role), and the
//! `$name` substitution the tables in `authz_routes.rs` and `authz_frames.rs` are written in.

use std::collections::HashMap;

use bytes::Bytes;
use http::Method;
use http_body_util::Full;
use serde_json::{json, Value};

use super::avatars::{multipart, png, BOUNDARY};
use super::realtime::{make_contacts, Target};
use super::{login, new_user, random_device, random_phone, user_pem, Client, Resp, User};

/// Who makes the request. The chat roles are those of the fixture's group chat and channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Created the group chat and the channel.
    Owner,
    /// Admin of both.
    Admin,
    /// Plain member of both.
    Member,
    /// Accepted contact of the owner, member of neither.
    Contact,
    /// No relation to anyone.
    Stranger,
    /// A token of the owner whose session was deleted with `DELETE /sessions/{id}`.
    Revoked,
    /// No `Authorization` at all.
    NoToken,
}

/// Column order of every expectation array.
pub const ROLES: [Role; 7] = [
    Role::Owner,
    Role::Admin,
    Role::Member,
    Role::Contact,
    Role::Stranger,
    Role::Revoked,
    Role::NoToken,
];

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Contact => "contact",
            Role::Stranger => "stranger",
            Role::Revoked => "revoked session",
            Role::NoToken => "no token",
        }
    }

    /// Has a live session (can open a socket, can be the actor of a setup step).
    pub fn live(self) -> bool {
        !matches!(self, Role::Revoked | Role::NoToken)
    }
}

/// The users, chats and codes every row starts from.
pub struct Fx {
    pub t: Target,
    /// Owner, admin, member, contact, stranger.
    pub users: [User; 5],
    pub revoked_token: String,
    pub group: i64,
    pub channel: i64,
    /// The channel is public: its permanent invite code.
    pub channel_code: String,
    /// A temporary invite of the (private) group chat.
    pub group_invite: String,
}

/// Substitution values of one cell: `"$name"` in a body or path.
pub type Vars = HashMap<&'static str, Value>;

/// What a row targets beyond the fixture, created before each cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Obj {
    /// Only the fixture.
    Fixture,
    /// `$code`: a fresh link code of the owner.
    OwnerLinkCode,
    /// The request is made from a fresh extra session of the acting user (for `/logout`).
    FreshOwnSession,
    /// `$session`: a fresh extra session of the owner.
    OwnerSecondSession,
    /// `$device_token`: a freshly issued device token of the owner's main device.
    OwnerDeviceToken,
    /// `$x`: a fresh user with no relation to anyone.
    FreshUser,
    /// `$x`: a fresh user with a pending request to the owner.
    RequestToOwner,
    /// `$x`: a fresh user who is an accepted contact of the owner.
    OwnersContact,
    /// `$msg`: a fresh message of the owner in the group chat.
    OwnerGroupMsg,
    /// `$msg`: a fresh message of the member in the group chat.
    MemberGroupMsg,
    /// `$msg`: a fresh post of the owner in the channel.
    OwnerChannelMsg,
    /// `$msg`: a fresh DM from the owner to the contact.
    OwnerDmToContact,
    /// `$chat`: a fresh group chat with the fixture's owner, admin and member.
    FreshGroup,
    /// `$chat` as [`Obj::FreshGroup`] and `$x`: a fresh user who is an accepted contact of
    /// owner, admin, member, contact and stranger alike.
    FreshGroupAndCommonContact,
    /// `$chat` as [`Obj::FreshGroup`] and `$code`: a fresh temporary invite to it.
    FreshGroupInvite,
    /// `$schedule`: a fresh DM of the owner to the contact, scheduled an hour ahead.
    OwnerSchedule,
}

/// One prepared cell: its variables and, for [`Obj::FreshOwnSession`], the token to use.
pub struct Prep {
    pub vars: Vars,
    pub token: Option<String>,
}

impl Fx {
    pub fn owner(&self) -> &User {
        &self.users[0]
    }

    /// The account a role acts as; the revoked session is the owner's, and the anonymous caller
    /// sends the owner's data (so only the missing token can explain a refusal).
    pub fn user(&self, r: Role) -> &User {
        match r {
            Role::Owner | Role::Revoked | Role::NoToken => &self.users[0],
            Role::Admin => &self.users[1],
            Role::Member => &self.users[2],
            Role::Contact => &self.users[3],
            Role::Stranger => &self.users[4],
        }
    }

    pub fn token(&self, r: Role) -> Option<&str> {
        match r {
            Role::Revoked => Some(&self.revoked_token),
            Role::NoToken => None,
            r => Some(&self.user(r).token),
        }
    }

    /// The fixture variables as seen by `role`.
    pub fn vars(&self, role: Role) -> Vars {
        let me = self.user(role);
        let o = self.owner();
        let mut v = Vars::new();
        for (name, r) in [
            ("owner", Role::Owner),
            ("admin", Role::Admin),
            ("member", Role::Member),
            ("contact", Role::Contact),
            ("stranger", Role::Stranger),
        ] {
            v.insert(name, json!(self.user(r).uid));
        }
        // The other side of the owner's calls: the contact for the owner, the owner for others.
        let peer = if role == Role::Owner {
            &self.users[3]
        } else {
            o
        };
        v.insert("peer", json!(peer.uid));
        v.insert("owner_device", json!(o.device));
        v.insert("owner_csrf", json!(o.csrf));
        v.insert("self", json!(me.uid));
        v.insert("csrf", json!(me.csrf));
        v.insert("own_session", json!(me.session_id));
        v.insert("group", json!(self.group));
        v.insert("channel", json!(self.channel));
        v.insert("channel_code", json!(self.channel_code));
        v.insert("group_invite", json!(self.group_invite));
        v.insert("pem", json!(user_pem()));
        v.insert("phone", json!(random_phone()));
        v.insert("new_device", json!(random_device()));
        v
    }

    /// Creates the row's object for one cell of `role`.
    pub async fn prepare(&self, obj: Obj, role: Role) -> Result<Prep, String> {
        let c = &self.t.client;
        let o = self.owner();
        let mut vars = self.vars(role);
        let mut token = None;
        match obj {
            Obj::Fixture => {}
            Obj::OwnerLinkCode => {
                let r = ok(c
                    .post("/devices/link_code", Some(&o.token), &json!({}))
                    .await)?;
                vars.insert("code", r["link_code"].clone());
            }
            Obj::FreshOwnSession => {
                if role.live() {
                    let u = self.user(role);
                    let r = ok(login(c, &u.phone, &u.password, &random_device()).await)?;
                    token = r["access_token"].as_str().map(str::to_owned);
                }
            }
            Obj::OwnerSecondSession => {
                let r = ok(login(c, &o.phone, &o.password, &random_device()).await)?;
                vars.insert("session", r["session_id"].clone());
            }
            Obj::OwnerDeviceToken => {
                let body = json!({"device_id": o.device});
                let r = ok(c.post("/devices/register", Some(&o.token), &body).await)?;
                vars.insert("device_token", r["device_token"].clone());
            }
            Obj::FreshUser | Obj::RequestToOwner | Obj::OwnersContact => {
                let x = new_user(c, "Fresh").await;
                if obj == Obj::RequestToOwner {
                    let body = json!({"target_id": o.uid, "csrf_token": x.csrf});
                    ok(c.post("/subscribe", Some(&x.token), &body).await)?;
                } else if obj == Obj::OwnersContact {
                    make_contacts(&self.t, &x, o).await;
                }
                vars.insert("x", json!(x.uid));
            }
            Obj::OwnerGroupMsg => {
                vars.insert("msg", send(c, o, json!({"chat_id": self.group})).await?);
            }
            Obj::MemberGroupMsg => {
                let m = &self.users[2];
                vars.insert("msg", send(c, m, json!({"chat_id": self.group})).await?);
            }
            Obj::OwnerChannelMsg => {
                vars.insert("msg", send(c, o, json!({"chat_id": self.channel})).await?);
            }
            Obj::OwnerDmToContact => {
                let to = json!({"target_id": self.users[3].uid});
                vars.insert("msg", send(c, o, to).await?);
            }
            Obj::OwnerSchedule => {
                let body = json!({"target_id": self.users[3].uid, "when": in_an_hour(),
                                  "data": "authz schedule"});
                let r = ok(c.post("/schedule/message", Some(&o.token), &body).await)?;
                vars.insert("schedule", r["schedule_id"].clone());
            }
            Obj::FreshGroup | Obj::FreshGroupAndCommonContact | Obj::FreshGroupInvite => {
                let chat = self.new_chat("chat").await?;
                vars.insert("chat", json!(chat));
                if obj == Obj::FreshGroupAndCommonContact {
                    let x = new_user(c, "Common").await;
                    for u in &self.users {
                        make_contacts(&self.t, u, &x).await;
                    }
                    vars.insert("x", json!(x.uid));
                }
                if obj == Obj::FreshGroupInvite {
                    let body = json!({"chat_id": chat, "ttl_minutes": 5});
                    let r = ok(c.post("/invites/create", Some(&o.token), &body).await)?;
                    vars.insert("code", r["code"].clone());
                }
            }
        }
        Ok(Prep { vars, token })
    }

    /// A chat of `kind` owned by the owner, with the admin as `admin` and the member as
    /// `member`.
    pub async fn new_chat(&self, kind: &str) -> Result<i64, String> {
        let c = &self.t.client;
        let o = &self.owner().token;
        let r = ok(c
            .post(
                "/chats/create",
                Some(o),
                &json!({"name": "Authz", "type": kind}),
            )
            .await)?;
        let chat = r["chat_id"].as_i64().ok_or("no chat_id")?;
        for u in [&self.users[1], &self.users[2]] {
            let body = json!({"chat_id": chat, "user_unique_id": u.uid});
            ok(c.post("/chats/members/add", Some(o), &body).await)?;
        }
        let body = json!({"chat_id": chat, "user_unique_id": self.users[1].uid, "role": "admin"});
        ok(c.post("/chats/members/role", Some(o), &body).await)?;
        Ok(chat)
    }
}

/// An hour from now in RFC 3339: a `when` no cell of the matrix lives to see.
pub fn in_an_hour() -> String {
    let now = melo::model::Timestamp::now().millis();
    melo::model::Timestamp::from_millis(now + 3_600_000).to_string()
}

/// The body of a 200, or why not.
pub fn ok(r: Resp) -> Result<Value, String> {
    if r.status == 200 {
        Ok(r.body)
    } else {
        Err(format!("setup request answered {}: {}", r.status, r.body))
    }
}

/// `POST /messages/send` by `from` to `to` (`target_id` or `chat_id`); the `message_id`.
async fn send(c: &Client, from: &User, mut to: Value) -> Result<Value, String> {
    to["data"] = json!("authz object");
    let r = ok(c.post("/messages/send", Some(&from.token), &to).await)?;
    Ok(r["message_id"].clone())
}

/// Uploads a small PNG as the avatar of the token's user (`None`: without a token).
pub async fn upload_avatar(c: &Client, token: Option<&str>) -> Resp {
    let req = c
        .request(Method::POST, "/avatar/upload", token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Full::new(Bytes::from(multipart("file", &png(b"authz")))))
        .expect("request");
    c.send(req).await
}

/// `v` with every string that is exactly `"$name"` replaced by that variable (typed: chat ids
/// stay integers). An unknown name is a bug in the table.
pub fn subst(v: &Value, vars: &Vars) -> Value {
    match v {
        Value::String(s) => match s.strip_prefix('$') {
            Some(name) => vars
                .get(name)
                .unwrap_or_else(|| panic!("table uses unknown variable ${name}"))
                .clone(),
            None => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(|x| subst(x, vars)).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, x)| (k.clone(), subst(x, vars))).collect())
        }
        other => other.clone(),
    }
}

/// `path` with each `$name` (lowercase letters and `_`) replaced by its value's text.
pub fn subst_path(path: &str, vars: &Vars) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        let end = tail
            .find(|ch: char| !(ch.is_ascii_lowercase() || ch == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        match vars.get(name) {
            Some(Value::String(s)) => out.push_str(s),
            Some(other) => out.push_str(&other.to_string()),
            None => panic!("table uses unknown variable ${name}"),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Builds the fixture: five users, the owner's contacts, a group chat and a public channel
/// with an admin and a member, avatars of the owner and the member, and a revoked session.
pub async fn setup(t: Target) -> Fx {
    let c = t.client.clone();
    let mut users = Vec::new();
    for name in ["Owner", "Admin", "Member", "Contact", "Stranger"] {
        users.push(new_user(&c, name).await);
    }
    for u in &users[1..4] {
        make_contacts(&t, &users[0], u).await;
    }
    let users: [User; 5] = users.try_into().expect("five users");
    let mut fx = Fx {
        t,
        users,
        revoked_token: String::new(),
        group: 0,
        channel: 0,
        channel_code: String::new(),
        group_invite: String::new(),
    };
    fx.group = fx.new_chat("chat").await.expect("group chat");
    fx.channel = fx.new_chat("channel").await.expect("channel");
    let o = fx.owner().clone();
    let body = json!({"chat_id": fx.channel, "is_public": true});
    let r = ok(c.post("/chats/set_public", Some(&o.token), &body).await).expect("set_public");
    fx.channel_code = r["invite"].as_str().expect("invite").to_owned();
    let body = json!({"chat_id": fx.group, "ttl_minutes": 600});
    let r = ok(c.post("/invites/create", Some(&o.token), &body).await).expect("invite");
    fx.group_invite = r["code"].as_str().expect("code").to_owned();
    for u in [&fx.users[0], &fx.users[2]] {
        ok(upload_avatar(&c, Some(&u.token)).await).expect("avatar");
    }
    let r = ok(login(&c, &o.phone, &o.password, &random_device()).await).expect("login");
    fx.revoked_token = r["access_token"].as_str().expect("token").to_owned();
    let sid = r["session_id"].as_i64().expect("sid");
    let del = c
        .call(
            Method::DELETE,
            &format!("/sessions/{sid}"),
            Some(&o.token),
            None,
        )
        .await;
    ok(del).expect("revoke the second session");
    fx
}
