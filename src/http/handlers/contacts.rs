//! Contact routes (docs/protocol.md §4.4). The four POST routes need the CSRF token.

use http::Method;
use serde_json::json;

use super::paging;
use crate::http::error::ApiError;
use crate::http::extract::Ctx;
use crate::http::response::{ok, Body};
use crate::http::router::{Access, Route};
use crate::service::ContactRequest;

type Res = Result<http::Response<Body>, ApiError>;

pub(super) fn routes() -> Vec<Route> {
    use Access::Token;
    vec![
        Route::new(
            Method::POST,
            "/subscribe",
            Token,
            "Ask a user to become a contact",
            |c| Box::pin(subscribe(c)),
        ),
        Route::new(
            Method::POST,
            "/confirm_subscribe",
            Token,
            "Accept a contact request",
            |c| Box::pin(confirm(c)),
        ),
        Route::new(
            Method::POST,
            "/reject_subscribe",
            Token,
            "Reject a contact request",
            |c| Box::pin(reject(c)),
        ),
        Route::new(
            Method::POST,
            "/unsubscribe",
            Token,
            "End a contact or withdraw a request",
            |c| Box::pin(unsubscribe(c)),
        ),
        Route::new(Method::GET, "/contacts", Token, "Accepted contacts", |c| {
            Box::pin(list(c))
        }),
        Route::new(
            Method::GET,
            "/contacts/requests",
            Token,
            "Pending contact requests",
            |c| Box::pin(requests(c)),
        ),
    ]
}

/// Decodes the body and checks the CSRF token (body field and/or `X-CSRF-Token` header) right
/// after authentication, before anything else (docs/protocol.md §3.3).
async fn csrf_body(c: &mut Ctx) -> Result<ContactRequest, ApiError> {
    let auth = c.auth()?;
    let header = c
        .header(http::HeaderName::from_static("x-csrf-token"))
        .map(str::to_owned);
    // Read the body once; a missing/bad CSRF token wins over field errors.
    let bytes = c.body().await?;
    let body_token = body_csrf_token(&bytes);
    c.app
        .services
        .auth
        .check_csrf(auth.session, body_token.as_deref(), header.as_deref())
        .await?;
    c.body = Some(crate::http::extract::full_body(bytes));
    c.json().await
}

/// The `csrf_token` string of a body, if it is a JSON object with one.
pub(super) fn body_csrf_token(bytes: &[u8]) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| {
            v.get("csrf_token")
                .and_then(|t| t.as_str())
                .map(str::to_owned)
        })
}

/// # POST /subscribe
async fn subscribe(mut c: Ctx) -> Res {
    let req = csrf_body(&mut c).await?;
    let auth = c.auth()?;
    let status = c
        .app
        .services
        .contacts
        .subscribe(&auth, req.target_id, req.secret)
        .await?;
    Ok(ok(&json!({"status": status})))
}

/// # POST /confirm_subscribe
async fn confirm(mut c: Ctx) -> Res {
    let req = csrf_body(&mut c).await?;
    let auth = c.auth()?;
    c.app
        .services
        .contacts
        .confirm(&auth, req.target_id)
        .await?;
    Ok(ok(&json!({"status": "confirmed"})))
}

/// # POST /reject_subscribe
async fn reject(mut c: Ctx) -> Res {
    let req = csrf_body(&mut c).await?;
    let auth = c.auth()?;
    c.app.services.contacts.reject(&auth, req.target_id).await?;
    Ok(ok(&json!({"status": "rejected"})))
}

/// # POST /unsubscribe
async fn unsubscribe(mut c: Ctx) -> Res {
    let req = csrf_body(&mut c).await?;
    let auth = c.auth()?;
    c.app
        .services
        .contacts
        .unsubscribe(&auth, req.target_id)
        .await?;
    Ok(ok(&json!({"status": "unsubscribed"})))
}

/// # GET /contacts
async fn list(c: Ctx) -> Res {
    let auth = c.auth()?;
    let (offset, per_page, page) = paging::page(&c, 20)?;
    let (contacts, total) = c
        .app
        .services
        .contacts
        .list(&auth, offset, per_page)
        .await?;
    Ok(ok(&json!({
        "contacts": contacts, "page": page, "per_page": per_page, "total": total,
        "pages": total.div_ceil(per_page),
    })))
}

/// # GET /contacts/requests
async fn requests(c: Ctx) -> Res {
    let auth = c.auth()?;
    Ok(ok(&c.app.services.contacts.pending(&auth).await?))
}
