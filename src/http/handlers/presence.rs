//! Presence over HTTP (docs/protocol.md §4.5).

use http::Method;
use serde::{Deserialize, Deserializer};
use serde_json::json;

use super::chats::{chat_id, IdInput};

use crate::http::error::ApiError;
use crate::http::extract::Ctx;
use crate::http::response::{ok, Body};
use crate::http::router::{Access, Route};
use crate::model::{MessageId, UserId};
use crate::service::validate;

type Res = Result<http::Response<Body>, ApiError>;

pub(super) fn routes() -> Vec<Route> {
    use Access::Token;
    vec![
        Route::new(
            Method::GET,
            "/statuses",
            Token,
            "Statuses of up to 100 users",
            |c| Box::pin(statuses(c)),
        ),
        Route::new(Method::GET, "/status/me", Token, "Own status", |c| {
            Box::pin(me(c))
        }),
        Route::new(
            Method::GET,
            "/status/contacts",
            Token,
            "Statuses of all contacts",
            |c| Box::pin(contacts(c)),
        ),
        Route::new(
            Method::POST,
            "/status/online",
            Token,
            "Leave invisible mode",
            |c| Box::pin(online(c)),
        ),
        Route::new(
            Method::POST,
            "/status/offline",
            Token,
            "Enter invisible mode",
            |c| Box::pin(offline(c)),
        ),
        Route::new(
            Method::POST,
            "/status/typing",
            Token,
            "Typing in a group chat, or stop",
            |c| Box::pin(typing(c)),
        ),
        Route::new(
            Method::POST,
            "/status/read",
            Token,
            "Move the caller's read marker in a chat",
            |c| Box::pin(read(c)),
        ),
        Route::new(
            Method::GET,
            "/ice_servers",
            Token,
            "STUN/TURN servers with TURN credentials",
            |c| Box::pin(ice_servers(c)),
        ),
    ]
}

/// # GET /statuses
async fn statuses(c: Ctx) -> Res {
    let auth = c.auth()?;
    let raw = c.query("user_ids").unwrap_or_default();
    let ids: Vec<&str> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if ids.is_empty() || ids.len() > 100 {
        return Err(ApiError::field("user_ids", "must list 1 to 100 uids"));
    }
    let ids: Vec<UserId> = ids
        .iter()
        .map(|s| validate::uid(s))
        .collect::<Result<_, _>>()
        .map_err(|p| ApiError::field("user_ids", p))?;
    let mut out = serde_json::Map::new();
    for id in ids {
        let s = c.app.services.presence.status_for(auth.user, id).await?;
        out.insert(id.to_string(), json!(s));
    }
    Ok(ok(&json!({"statuses": out})))
}

/// # GET /status/me
async fn me(c: Ctx) -> Res {
    let auth = c.auth()?;
    let p = &c.app.services.presence;
    let status = p.status_of(auth.user).await;
    Ok(ok(&json!({
        "user_id": auth.user, "status": status, "last_seen": p.last_seen(auth.user).await,
        "is_typing_in_chat": p.own_typing_chat(auth.user).await,
    })))
}

/// # GET /status/contacts
async fn contacts(c: Ctx) -> Res {
    let auth = c.auth()?;
    let list = c.app.services.presence.contacts_presence(auth.user).await?;
    Ok(ok(&json!({"contacts": list})))
}

/// A field that must be present, though it may be null: `None` when absent, `Some(None)` when
/// null.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<IdInput>>, D::Error> {
    Option::<IdInput>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct TypingBody {
    #[serde(default, deserialize_with = "present")]
    chat_id: Option<Option<IdInput>>,
}

/// # POST /status/typing
async fn typing(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let b: TypingBody = c.json().await?;
    let chat = match b.chat_id {
        None => {
            return Err(ApiError::field(
                "chat_id",
                "is required (a chat id, or null)",
            ))
        }
        Some(None) => None,
        Some(id) => Some(chat_id(id, "chat_id")?),
    };
    c.app.services.presence.typing_http(&auth, chat).await?;
    Ok(ok(&json!({"status": "ok"})))
}

#[derive(Deserialize)]
struct ReadBody {
    #[serde(default)]
    chat_id: Option<IdInput>,
    #[serde(default)]
    message_id: Option<String>,
}

/// # POST /status/read
async fn read(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let b: ReadBody = c.json().await?;
    let chat = chat_id(b.chat_id, "chat_id")?;
    let message_id: MessageId = b
        .message_id
        .ok_or_else(|| ApiError::field("message_id", "is required"))?
        .parse()
        .map_err(|()| ApiError::field("message_id", "must be 32 hex characters"))?;
    c.app
        .services
        .chats
        .mark_read(&auth, chat, message_id)
        .await?;
    Ok(ok(&json!({"status": "ok"})))
}

/// # POST /status/online
async fn online(c: Ctx) -> Res {
    let auth = c.auth()?;
    c.app
        .services
        .presence
        .set_invisible(auth.user, false)
        .await?;
    Ok(ok(&json!({"status": "ok"})))
}

/// # POST /status/offline
async fn offline(c: Ctx) -> Res {
    let auth = c.auth()?;
    c.app
        .services
        .presence
        .set_invisible(auth.user, true)
        .await?;
    Ok(ok(&json!({"status": "ok"})))
}

/// # GET /ice_servers
async fn ice_servers(c: Ctx) -> Res {
    let auth = c.auth()?;
    let cfg = &c.app.services.core().config.realtime;
    Ok(ok(&crate::service::ice::ice_servers(
        cfg,
        &auth,
        crate::model::Timestamp::now(),
    )))
}
