//! Message routes (docs/protocol.md §4.6) and the WebSocket endpoint on the HTTP port.

use http::Method;
use serde::Deserialize;
use serde_json::json;

use super::paging;
use crate::http::error::ApiError;
use crate::http::extract::Ctx;
use crate::http::response::{ok, Body};
use crate::http::router::{Access, Route};
use crate::model::UserId;
use crate::service::{validate, Error, HistoryQuery, SendRequest};

type Res = Result<http::Response<Body>, ApiError>;

pub(super) fn routes() -> Vec<Route> {
    use Access::{Public, Token};
    vec![
        Route::new(
            Method::GET,
            "/ws",
            Public,
            "WebSocket endpoint (token by header or ?token=)",
            |c| Box::pin(websocket(c)),
        ),
        Route::new(
            Method::POST,
            "/messages/send",
            Token,
            "Send a message (same rules as WS relay)",
            |c| Box::pin(send(c)),
        ),
        Route::new(
            Method::GET,
            "/messages/history/dm/{target_id}",
            Token,
            "DM history with a user",
            |c| Box::pin(dm_history(c)),
        ),
        Route::new(
            Method::GET,
            "/history/{target_id}",
            Token,
            "Legacy DM history (contacts only)",
            |c| Box::pin(legacy_history(c)),
        ),
    ]
}

/// # GET /ws
async fn websocket(c: Ctx) -> Res {
    crate::ws::upgrade(c.app, c.parts, c.client.ip).await
}

#[derive(Deserialize)]
pub(super) struct SendBody {
    #[serde(default)]
    pub(super) target_id: Option<UserId>,
    #[serde(default)]
    pub(super) chat_id: Option<serde_json::Value>,
    pub(super) data: String,
    #[serde(default)]
    pub(super) client_id: Option<String>,
    #[serde(default)]
    pub(super) signature: Option<String>,
}

impl SendBody {
    /// The service request: `chat_id` is a positive integer or a string of digits.
    pub(super) fn into_request(self) -> Result<SendRequest, ApiError> {
        let chat_id = match &self.chat_id {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => match v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            {
                Some(n) if n >= 1 => Some(n),
                _ => return Err(ApiError::field("chat_id", "must be a positive integer")),
            },
        };
        Ok(SendRequest {
            target: self.target_id,
            chat_id,
            payload: self.data,
            client_id: self.client_id,
            signature: self.signature,
        })
    }
}

/// # POST /messages/send
async fn send(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let body: SendBody = c.json().await?;
    let req = body.into_request()?;
    // The rules live in the service (shared with the WS `relay`); only the wire name of the
    // payload field differs on HTTP.
    let out = c
        .app
        .services
        .messages
        .send(&auth, req)
        .await
        .map_err(|e| match e {
            Error::Validation(mut fields) => {
                for f in &mut fields {
                    if f.field == "payload" {
                        f.field = "data".into();
                    }
                }
                Error::Validation(fields)
            }
            other => other,
        })?;
    let mut v = json!({"ok": true, "message_id": out.message_id, "status": "queued"});
    if out.duplicate {
        v["duplicate"] = json!(true);
    }
    if out.chat_id.is_some() {
        v["recipients"] = json!(out.recipients);
    }
    Ok(ok(&v))
}

/// The history peer: a uid, or `00000000` for the system messages' conversation.
fn path_uid(c: &Ctx) -> Result<UserId, ApiError> {
    let raw = c.param("target_id").unwrap_or_default();
    validate::history_peer(raw).map_err(|p| ApiError::field("target_id", p))
}

/// # GET /messages/history/dm/{target_id}
async fn dm_history(c: Ctx) -> Res {
    history(c, false).await
}

/// # GET /history/{target_id}
async fn legacy_history(c: Ctx) -> Res {
    history(c, true).await
}

async fn history(c: Ctx, legacy: bool) -> Res {
    let auth = c.auth()?;
    let peer = path_uid(&c)?;
    let q: HistoryQuery = paging::history(&c)?;
    let messages = &c.app.services.messages;
    let page = if legacy {
        messages.legacy_history(&auth, peer, q).await?
    } else {
        messages.dm_history(&auth, peer, q).await?
    };
    Ok(ok(&page))
}
