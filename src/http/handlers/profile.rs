//! Profile and E2E key routes (docs/protocol.md §4.3).

use http::Method;
use serde::Deserialize;
use serde_json::json;

use crate::http::error::ApiError;
use crate::http::extract::Ctx;
use crate::http::response::{ok, Body};
use crate::http::router::{Access, Route};
use crate::service::validate;
use crate::service::ProfileUpdate;

type Res = Result<http::Response<Body>, ApiError>;

pub(super) fn routes() -> Vec<Route> {
    use Access::Token;
    vec![
        Route::new(
            Method::GET,
            "/profile",
            Token,
            "Own profile, or ?user_id= a contact's",
            |c| Box::pin(get_profile(c)),
        ),
        Route::new(Method::PUT, "/profile", Token, "Update own profile", |c| {
            Box::pin(put_profile(c))
        }),
        Route::new(
            Method::POST,
            "/e2e/public_key",
            Token,
            "Replace own E2E public key",
            |c| Box::pin(set_public_key(c)),
        ),
        Route::new(
            Method::POST,
            "/e2e/secret_key",
            Token,
            "Store the secret-key backup",
            |c| Box::pin(put_secret_key(c)),
        ),
        Route::new(
            Method::GET,
            "/e2e/secret_key",
            Token,
            "Read the secret-key backup",
            |c| Box::pin(get_secret_key(c)),
        ),
    ]
}

/// # GET /profile
async fn get_profile(c: Ctx) -> Res {
    let auth = c.auth()?;
    let of = match c.query("user_id") {
        Some(raw) => Some(validate::uid(&raw).map_err(|p| ApiError::field("user_id", p))?),
        None => None,
    };
    Ok(ok(&c.app.services.users.profile(&auth, of).await?))
}

/// # PUT /profile
async fn put_profile(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let req: ProfileUpdate = c.json().await?;
    c.app.services.users.update_profile(&auth, req).await?;
    Ok(ok(&json!({"status": "updated"})))
}

#[derive(Deserialize)]
pub(super) struct PublicKeyBody {
    pub(super) public_e2e_key: String,
}

/// # POST /e2e/public_key
async fn set_public_key(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let body: PublicKeyBody = c.json().await?;
    c.app
        .services
        .users
        .set_public_key(&auth, &body.public_e2e_key)
        .await?;
    Ok(ok(&json!({"status": "ok"})))
}

#[derive(Deserialize)]
pub(super) struct SecretKeyBody {
    pub(super) ciphertext: String,
}

/// # POST /e2e/secret_key
async fn put_secret_key(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    let body: SecretKeyBody = c.json().await?;
    c.app
        .services
        .users
        .put_secret_key(&auth, &body.ciphertext)
        .await?;
    Ok(ok(&json!({"status": "ok"})))
}

/// # GET /e2e/secret_key
async fn get_secret_key(c: Ctx) -> Res {
    let auth = c.auth()?;
    Ok(ok(&c.app.services.users.secret_key(&auth).await?))
}
