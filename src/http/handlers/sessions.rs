//! Session routes (docs/protocol.md §4.2).

use http::Method;
use serde_json::json;

use crate::http::error::ApiError;
use crate::http::extract::Ctx;
use crate::http::response::{ok, Body};
use crate::http::router::{Access, Route};
use crate::model::SessionId;

type Res = Result<http::Response<Body>, ApiError>;

pub(super) fn routes() -> Vec<Route> {
    use Access::Token;
    vec![
        Route::new(
            Method::GET,
            "/sessions",
            Token,
            "Active sessions of the caller",
            |c| Box::pin(list(c)),
        ),
        Route::new(
            Method::DELETE,
            "/sessions/{session_id}",
            Token,
            "Revoke one other session",
            |c| Box::pin(revoke(c)),
        ),
        Route::new(
            Method::POST,
            "/sessions/revoke_all",
            Token,
            "Revoke every other session",
            |c| Box::pin(revoke_all(c)),
        ),
        Route::new(
            Method::POST,
            "/sessions/terminate_all",
            Token,
            "Alias of /sessions/revoke_all",
            |c| Box::pin(revoke_all(c)),
        ),
        Route::new(
            Method::POST,
            "/logout",
            Token,
            "Revoke the caller's own session",
            |c| Box::pin(logout(c)),
        ),
    ]
}

/// # GET /sessions
async fn list(c: Ctx) -> Res {
    let auth = c.auth()?;
    Ok(ok(
        &json!({"sessions": c.app.services.sessions.list(&auth).await?}),
    ))
}

/// # DELETE /sessions/{session_id}
async fn revoke(c: Ctx) -> Res {
    let auth = c.auth()?;
    let id = c
        .param("session_id")
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|n| *n >= 1)
        .ok_or_else(|| ApiError::field("session_id", "must be a positive integer"))?;
    c.app.services.sessions.revoke(&auth, SessionId(id)).await?;
    Ok(ok(&json!({"status": "ok", "message": "Session revoked"})))
}

/// # POST /sessions/revoke_all, /sessions/terminate_all
async fn revoke_all(c: Ctx) -> Res {
    let auth = c.auth()?;
    let n = c.app.services.sessions.revoke_others(&auth).await?;
    Ok(ok(&json!({"status": "ok", "revoked_count": n})))
}

/// # POST /logout
async fn logout(c: Ctx) -> Res {
    let auth = c.auth()?;
    c.app.services.sessions.logout(&auth).await?;
    Ok(ok(&json!({"status": "ok"})))
}
