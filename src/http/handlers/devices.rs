//! Device token and linking routes (docs/protocol.md §4.2).

use http::Method;
use serde::Deserialize;
use serde_json::json;

use crate::http::error::ApiError;
use crate::http::extract::Ctx;
use crate::http::response::{ok, Body};
use crate::http::router::{Access, Route};
use crate::service::AuthorizeRequest;

type Res = Result<http::Response<Body>, ApiError>;

pub(super) fn routes() -> Vec<Route> {
    use Access::{Public, Token};
    vec![
        Route::new(
            Method::POST,
            "/devices/register",
            Token,
            "New device token for this device",
            |c| Box::pin(register(c)),
        ),
        Route::new(
            Method::POST,
            "/devices/refresh",
            Token,
            "Rotate a device token",
            |c| Box::pin(refresh(c)),
        ),
        Route::new(
            Method::POST,
            "/devices/revoke",
            Token,
            "Delete a device token",
            |c| Box::pin(revoke(c)),
        ),
        Route::new(
            Method::POST,
            "/devices/link_code",
            Token,
            "Code for linking a new device",
            |c| Box::pin(link_code(c)),
        ),
        Route::new(
            Method::POST,
            "/devices/authorize",
            Public,
            "Log a new device in with a link code",
            |c| Box::pin(authorize(c)),
        ),
    ]
}

#[derive(Deserialize)]
pub(super) struct DeviceBody {
    pub(super) device_id: String,
    #[serde(default)]
    pub(super) device_token: Option<String>,
}

/// # POST /devices/register
async fn register(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let body: DeviceBody = c.json().await?;
    let token = c
        .app
        .services
        .auth
        .register_device(&auth, &body.device_id)
        .await?;
    Ok(ok(&json!({"ok": true, "device_token": token})))
}

/// # POST /devices/refresh
async fn refresh(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let body: DeviceBody = c.json().await?;
    let Some(current) = body.device_token else {
        return Err(ApiError::field("device_token", "is required"));
    };
    let token = c
        .app
        .services
        .auth
        .refresh_device(&auth, &body.device_id, &current)
        .await?;
    Ok(ok(&json!({"ok": true, "device_token": token})))
}

/// # POST /devices/revoke
async fn revoke(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let body: DeviceBody = c.json().await?;
    c.app
        .services
        .auth
        .revoke_device(&auth, &body.device_id)
        .await?;
    Ok(ok(&json!({"ok": true})))
}

/// # POST /devices/link_code
async fn link_code(c: Ctx) -> Res {
    let auth = c.auth()?;
    let (code, ttl) = c.app.services.auth.link_code(&auth).await?;
    Ok(ok(&json!({"link_code": code, "expires_in": ttl})))
}

/// # POST /devices/authorize
async fn authorize(mut c: Ctx) -> Res {
    let req: AuthorizeRequest = c.json().await?;
    Ok(ok(&c.app.services.auth.authorize(req, &c.client).await?))
}
