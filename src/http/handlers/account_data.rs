//! Account deletion and export (issue 17; docs/accounts.md): `DELETE /account` and
//! `GET /account/export`. Documented for client authors in docs/accounts.md.

use http::{header, HeaderValue, Method};
use serde::Deserialize;
use serde_json::json;

use crate::http::error::ApiError;
use crate::http::extract::{decode_json, Ctx};
use crate::http::response::{ok, Body};
use crate::http::router::{Access, Route};

type Res = Result<http::Response<Body>, ApiError>;

/// The largest `DELETE /account` body: a password (at most 128 characters, up to 4 bytes
/// each) and a CSRF token, with room for JSON escapes.
const DELETE_BODY_LIMIT: usize = 4096;

pub(super) fn routes() -> Vec<Route> {
    use Access::Token;
    vec![
        Route::new(
            Method::DELETE,
            "/account",
            Token,
            "Delete the caller's account for good (password and CSRF token)",
            |c| Box::pin(delete_account(c)),
        )
        .limit(|_| DELETE_BODY_LIMIT),
        Route::new(
            Method::GET,
            "/account/export",
            Token,
            "Everything the server holds about the caller",
            |c| Box::pin(export(c)),
        ),
    ]
}

/// `DELETE /account` body.
#[derive(Deserialize)]
pub(super) struct DeleteBody {
    /// The current password.
    pub(super) password: String,
    /// Or the `X-CSRF-Token` header (read from the raw body before decoding).
    #[serde(default)]
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

/// # DELETE /account
///
/// The token, then the CSRF token (body field and/or header, as the contact routes check it,
/// before anything else), then the body, then the password.
async fn delete_account(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let header = c
        .header(http::HeaderName::from_static("x-csrf-token"))
        .map(str::to_owned);
    let bytes = c.body().await?;
    let body_token = super::contacts::body_csrf_token(&bytes);
    let services = &c.app.services;
    services
        .auth
        .check_csrf(auth.session, body_token.as_deref(), header.as_deref())
        .await?;
    let body: DeleteBody = decode_json(&bytes)?;
    let done = services
        .accounts
        .delete_own_account(&auth, &body.password, &c.client)
        .await?;
    Ok(ok(&json!({"status": "deleted", "unique_id": done.user_id})))
}

/// # GET /account/export
async fn export(c: Ctx) -> Res {
    let auth = c.auth()?;
    let doc = c.app.services.accounts.export(&auth).await?;
    let mut resp = ok(&doc);
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"melo-export-{}.json\"",
        auth.user
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
