//! Message management routes (docs/protocol.md §4.6): edit, delete, pin, react.

use http::Method;
use serde::Deserialize;
use serde_json::json;

use crate::http::error::ApiError;
use crate::http::extract::Ctx;
use crate::http::response::{ok, Body};
use crate::http::router::{Access, Route};
use crate::model::{MessageId, UserId};
use crate::service::MessageRef;

type Res = Result<http::Response<Body>, ApiError>;

pub(super) fn routes() -> Vec<Route> {
    use Access::Token;
    vec![
        Route::new(
            Method::POST,
            "/messages/edit",
            Token,
            "Edit an own message",
            |c| Box::pin(edit(c)),
        ),
        Route::new(
            Method::POST,
            "/messages/delete",
            Token,
            "Delete an own message",
            |c| Box::pin(delete(c)),
        ),
        Route::new(
            Method::POST,
            "/messages/pin",
            Token,
            "Pin or unpin a message",
            |c| Box::pin(pin(c)),
        ),
        Route::new(
            Method::POST,
            "/messages/react",
            Token,
            "React to a message",
            |c| Box::pin(react(c)),
        ),
    ]
}

#[derive(Deserialize)]
pub(super) struct ManageBody {
    pub(super) message_id: String,
    #[serde(default)]
    pub(super) target_id: Option<UserId>,
    #[serde(default)]
    pub(super) chat_id: Option<i64>,
    #[serde(default)]
    pub(super) new_data: Option<String>,
    #[serde(default)]
    pub(super) pinned: Option<bool>,
    #[serde(default)]
    pub(super) reaction: Option<String>,
}

impl ManageBody {
    pub(super) fn target(&self) -> Result<MessageRef, ApiError> {
        let message_id: MessageId = self
            .message_id
            .parse()
            .map_err(|()| ApiError::field("message_id", "must be 32 hex characters"))?;
        Ok(MessageRef {
            message_id,
            target: self.target_id,
            chat_id: self.chat_id,
        })
    }
}

/// # POST /messages/edit
async fn edit(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let b: ManageBody = c.json().await?;
    let Some(new_data) = b.new_data.as_deref() else {
        return Err(ApiError::field("new_data", "is required"));
    };
    c.app
        .services
        .manage
        .edit(&auth, b.target()?, new_data)
        .await?;
    Ok(ok(&json!({"ok": true})))
}

/// # POST /messages/delete
async fn delete(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let b: ManageBody = c.json().await?;
    c.app.services.manage.delete(&auth, b.target()?).await?;
    Ok(ok(&json!({"ok": true})))
}

/// # POST /messages/pin
async fn pin(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let b: ManageBody = c.json().await?;
    let pinned = b.pinned.unwrap_or(true);
    c.app
        .services
        .manage
        .pin(&auth, b.target()?, pinned)
        .await?;
    Ok(ok(&json!({"ok": true})))
}

/// # POST /messages/react
async fn react(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let b: ManageBody = c.json().await?;
    let Some(reaction) = b.reaction.as_deref() else {
        return Err(ApiError::field("reaction", "is required"));
    };
    c.app
        .services
        .manage
        .react(&auth, b.target()?, reaction)
        .await?;
    Ok(ok(&json!({"ok": true})))
}
