//! Chats, channels, members and invites (docs/protocol.md §4.7), and chat history (§4.6).

use http::Method;
use serde::Deserialize;
use serde_json::json;

use super::paging;
use crate::http::error::ApiError;
use crate::http::extract::Ctx;
use crate::http::response::{ok, Body};
use crate::http::router::{Access, Route};
use crate::model::UserId;
use crate::service::validate;

type Res = Result<http::Response<Body>, ApiError>;

pub(super) fn routes() -> Vec<Route> {
    use Access::{Public, Token};
    let r =
        |m, p, a, s, h: fn(Ctx) -> crate::http::router::HandlerFuture| Route::new(m, p, a, s, h);
    vec![
        r(
            Method::POST,
            "/chats/create",
            Token,
            "Create a group chat or channel",
            |c| Box::pin(create(c)),
        ),
        r(
            Method::GET,
            "/chats/list",
            Token,
            "The caller's chats",
            |c| Box::pin(list(c)),
        ),
        r(
            Method::POST,
            "/chats/set_public",
            Token,
            "Make a chat public or private",
            |c| Box::pin(set_public(c)),
        ),
        r(
            Method::POST,
            "/chats/set_slow_mode",
            Token,
            "Set a chat's slow mode",
            |c| Box::pin(set_slow_mode(c)),
        ),
        r(
            Method::GET,
            "/chats/by_invite/{code}",
            Public,
            "A public chat by its permanent code",
            |c| Box::pin(by_invite(c)),
        ),
        r(
            Method::GET,
            "/chats/members",
            Token,
            "Members of a chat",
            |c| Box::pin(members(c)),
        ),
        r(Method::POST, "/chats/leave", Token, "Leave a chat", |c| {
            Box::pin(leave(c))
        }),
        r(
            Method::POST,
            "/chats/members/add",
            Token,
            "Add a contact to a chat",
            |c| Box::pin(add(c)),
        ),
        r(
            Method::POST,
            "/chats/members/remove",
            Token,
            "Remove a member",
            |c| Box::pin(remove(c)),
        ),
        r(
            Method::POST,
            "/chats/members/role",
            Token,
            "Change a member's role",
            |c| Box::pin(role(c)),
        ),
        r(
            Method::POST,
            "/invites/create",
            Token,
            "Create a temporary invite",
            |c| Box::pin(invite_create(c)),
        ),
        r(
            Method::POST,
            "/invites/join",
            Token,
            "Join by invite or public code",
            |c| Box::pin(invite_join(c)),
        ),
        r(
            Method::GET,
            "/messages/history/chat/{chat_id}",
            Token,
            "Chat history (members only)",
            |c| Box::pin(history(c)),
        ),
    ]
}

/// A chat id: a positive integer, or a string of digits.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum IdInput {
    Int(i64),
    Text(String),
}

pub(super) fn chat_id(v: Option<IdInput>, field: &str) -> Result<i64, ApiError> {
    let n = match v {
        Some(IdInput::Int(n)) => Some(n),
        Some(IdInput::Text(s)) => s.parse().ok(),
        None => return Err(ApiError::field(field, "is required")),
    };
    n.filter(|n| *n >= 1)
        .ok_or_else(|| ApiError::field(field, "must be a positive integer"))
}

fn query_chat_id(c: &Ctx) -> Result<i64, ApiError> {
    chat_id(c.query("chat_id").map(IdInput::Text), "chat_id")
}

#[derive(Deserialize)]
pub(super) struct CreateBody {
    pub(super) name: String,
    #[serde(default, rename = "type")]
    pub(super) kind: Option<String>,
}

/// # POST /chats/create
async fn create(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let b: CreateBody = c.json().await?;
    let kind = b.kind.unwrap_or_else(|| "chat".into());
    let id = c.app.services.chats.create(&auth, &b.name, &kind).await?;
    Ok(ok(&json!({"ok": true, "chat_id": id, "type": kind})))
}

/// # GET /chats/list
async fn list(c: Ctx) -> Res {
    let auth = c.auth()?;
    let (offset, limit, page) = paging::page(&c, 20)?;
    let (chats, total) = c.app.services.chats.list(&auth, offset, limit).await?;
    Ok(ok(
        &json!({"chats": chats, "page": page, "per_page": limit, "total": total,
        "pages": total.div_ceil(limit)}),
    ))
}

#[derive(Deserialize)]
pub(super) struct ChatBody {
    #[serde(default)]
    pub(super) chat_id: Option<IdInput>,
}

#[derive(Deserialize)]
pub(super) struct PublicBody {
    #[serde(default)]
    pub(super) chat_id: Option<IdInput>,
    pub(super) is_public: bool,
}

/// # POST /chats/set_public
async fn set_public(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let b: PublicBody = c.json().await?;
    let id = chat_id(b.chat_id, "chat_id")?;
    let code = c
        .app
        .services
        .chats
        .set_public(&auth, id, b.is_public)
        .await?;
    Ok(ok(&json!({"ok": true, "invite": code})))
}

#[derive(Deserialize)]
pub(super) struct SlowBody {
    #[serde(default)]
    pub(super) chat_id: Option<IdInput>,
    pub(super) seconds: u64,
}

/// # POST /chats/set_slow_mode
async fn set_slow_mode(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let b: SlowBody = c.json().await?;
    let id = chat_id(b.chat_id, "chat_id")?;
    let secs = c
        .app
        .services
        .chats
        .set_slow_mode(&auth, id, b.seconds)
        .await?;
    Ok(ok(&json!({"ok": true, "slow_mode": secs})))
}

/// # GET /chats/by_invite/{code}
async fn by_invite(c: Ctx) -> Res {
    let code = c.param("code").unwrap_or_default().to_owned();
    let (id, name, kind) = c.app.services.chats.by_invite(&code).await?;
    Ok(ok(&json!({"chat_id": id, "name": name, "type": kind})))
}

/// # GET /chats/members
async fn members(c: Ctx) -> Res {
    let auth = c.auth()?;
    let id = query_chat_id(&c)?;
    let (offset, limit, page) = paging::page(&c, 100)?;
    let (members, total) = c
        .app
        .services
        .chats
        .members(&auth, id, offset, limit)
        .await?;
    Ok(ok(
        &json!({"members": members, "page": page, "per_page": limit, "total": total,
        "pages": total.div_ceil(limit)}),
    ))
}

/// # POST /chats/leave
async fn leave(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let b: ChatBody = c.json().await?;
    let id = chat_id(b.chat_id, "chat_id")?;
    c.app.services.chats.leave(&auth, id).await?;
    Ok(ok(&json!({"ok": true})))
}

#[derive(Deserialize)]
pub(super) struct MemberBody {
    #[serde(default)]
    pub(super) chat_id: Option<IdInput>,
    pub(super) user_unique_id: String,
    #[serde(default)]
    pub(super) role: Option<String>,
}

pub(super) fn member_args(b: &mut MemberBody) -> Result<(i64, UserId), ApiError> {
    let id = chat_id(b.chat_id.take(), "chat_id")?;
    let user =
        validate::uid(&b.user_unique_id).map_err(|p| ApiError::field("user_unique_id", p))?;
    Ok((id, user))
}

/// # POST /chats/members/add
async fn add(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let mut b: MemberBody = c.json().await?;
    let (id, user) = member_args(&mut b)?;
    c.app.services.chats.add_member(&auth, id, user).await?;
    Ok(ok(&json!({"ok": true})))
}

/// # POST /chats/members/remove
async fn remove(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let mut b: MemberBody = c.json().await?;
    let (id, user) = member_args(&mut b)?;
    c.app.services.chats.remove_member(&auth, id, user).await?;
    Ok(ok(&json!({"ok": true})))
}

/// # POST /chats/members/role
async fn role(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let mut b: MemberBody = c.json().await?;
    let (id, user) = member_args(&mut b)?;
    let role = b.role.unwrap_or_default();
    c.app
        .services
        .chats
        .set_role(&auth, id, user, &role)
        .await?;
    Ok(ok(&json!({"ok": true})))
}

#[derive(Deserialize)]
pub(super) struct InviteBody {
    #[serde(default)]
    pub(super) chat_id: Option<IdInput>,
    #[serde(default)]
    pub(super) ttl_minutes: Option<u64>,
}

/// # POST /invites/create
async fn invite_create(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let b: InviteBody = c.json().await?;
    let id = chat_id(b.chat_id, "chat_id")?;
    let ttl = b.ttl_minutes.unwrap_or(60);
    let (code, expires_in) = c.app.services.chats.create_invite(&auth, id, ttl).await?;
    Ok(ok(
        &json!({"ok": true, "code": code, "expires_in": expires_in}),
    ))
}

#[derive(Deserialize)]
pub(super) struct JoinBody {
    pub(super) code: String,
}

/// # POST /invites/join
async fn invite_join(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let b: JoinBody = c.json().await?;
    let id = c.app.services.chats.join_by_code(&auth, &b.code).await?;
    Ok(ok(&json!({"ok": true, "chat_id": id})))
}

/// # GET /messages/history/chat/{chat_id}
async fn history(c: Ctx) -> Res {
    let auth = c.auth()?;
    let raw = c.param("chat_id").unwrap_or_default().to_owned();
    let id = chat_id(Some(IdInput::Text(raw)), "chat_id")?;
    let q = paging::history(&c)?;
    let page = c.app.services.messages.chat_history(&auth, id, q).await?;
    Ok(ok(&page))
}
