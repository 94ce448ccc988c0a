//! Registration, login and CSRF routes (docs/protocol.md §4.2).

use http::Method;
use serde_json::json;

use crate::http::error::ApiError;
use crate::http::extract::Ctx;
use crate::http::response::{ok, Body};
use crate::http::router::{Access, Route};
use crate::service::{LoginRequest, RegisterRequest};

type Res = Result<http::Response<Body>, ApiError>;

pub(super) fn routes() -> Vec<Route> {
    use Access::{Public, Token};
    vec![
        Route::new(
            Method::POST,
            "/register",
            Public,
            "Create an account",
            |c| Box::pin(register(c)),
        ),
        Route::new(
            Method::POST,
            "/login",
            Public,
            "Log in by password or device token",
            |c| Box::pin(login(c)),
        ),
        Route::new(
            Method::GET,
            "/csrf_token",
            Token,
            "The session's CSRF token",
            |c| Box::pin(csrf_token(c)),
        ),
    ]
}

/// # POST /register
async fn register(mut c: Ctx) -> Res {
    let req: RegisterRequest = c.json().await?;
    Ok(ok(&c.app.services.auth.register(req, &c.client).await?))
}

/// # POST /login
async fn login(mut c: Ctx) -> Res {
    let req: LoginRequest = c.json().await?;
    Ok(ok(&c.app.services.auth.login(req, &c.client).await?))
}

/// # GET /csrf_token
async fn csrf_token(c: Ctx) -> Res {
    let auth = c.auth()?;
    let token = c.app.services.auth.csrf_token(auth.session).await?;
    Ok(ok(&json!({"csrf_token": token})))
}
