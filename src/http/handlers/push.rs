//! Push routes (docs/protocol.md §4.1 `/vapid_public_key`, §4.9 `/register_push`).

use http::Method;
use serde_json::json;

use crate::http::error::ApiError;
use crate::http::extract::Ctx;
use crate::http::response::{ok, Body};
use crate::http::router::{Access, Route};
use crate::service::RegisterPush;

type Res = Result<http::Response<Body>, ApiError>;

pub(super) fn routes() -> Vec<Route> {
    use Access::{Public, Token};
    vec![
        Route::new(
            Method::GET,
            "/vapid_public_key",
            Public,
            "The Web Push VAPID public key",
            |c| Box::pin(vapid_public_key(c)),
        ),
        Route::new(
            Method::POST,
            "/register_push",
            Token,
            "Register push for this device",
            |c| Box::pin(register_push(c)),
        ),
    ]
}

/// # GET /vapid_public_key
async fn vapid_public_key(c: Ctx) -> Res {
    let key = c.app.services.core().vapid.public_base64url();
    Ok(ok(&json!({ "vapid_public_key": key })))
}

/// # POST /register_push
async fn register_push(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let req: RegisterPush = c.json().await?;
    c.app.services.push.register(&auth, req).await?;
    Ok(ok(&json!({"status": "ok"})))
}
