//! Avatar routes (docs/protocol.md §4.3): multipart upload, raw-image download with an ETag, delete.

use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use serde_json::json;

use crate::config::Config;
use crate::http::error::ApiError;
use crate::http::extract::Ctx;
use crate::http::multipart::{self, MultipartError};
use crate::http::response::{ok, raw, Body};
use crate::http::router::{Access, Route};
use crate::service::validate;

type Res = Result<http::Response<Body>, ApiError>;

/// Room for the multipart framing around the image: the upload route's body limit is
/// `AVATAR_MAX_BYTES` plus this (docs/protocol.md §4.3).
const MULTIPART_OVERHEAD: usize = 64 * 1024;

/// `Cache-Control` of served avatars.
const CACHE_CONTROL: &str = "private, max-age=300";

fn upload_limit(config: &Config) -> usize {
    config
        .push
        .avatar_max_bytes
        .saturating_add(MULTIPART_OVERHEAD)
}

pub(super) fn routes() -> Vec<Route> {
    use Access::Token;
    vec![
        Route::new(
            Method::POST,
            "/avatar/upload",
            Token,
            "Replace own avatar (multipart part `file`: PNG, JPEG or WebP)",
            |c| Box::pin(upload(c)),
        )
        .multipart(upload_limit),
        // Also serves `/avatar/` (every route matches with one trailing slash).
        Route::new(Method::DELETE, "/avatar", Token, "Delete own avatar", |c| {
            Box::pin(delete(c))
        }),
        Route::new(
            Method::GET,
            "/avatar/{user_unique_id}",
            Token,
            "An avatar's image bytes (owner, contacts and chat peers only)",
            |c| Box::pin(get(c)),
        ),
    ]
}

/// # POST /avatar/upload
async fn upload(mut c: Ctx) -> Res {
    let auth = c.auth()?;
    // The content type is checked before the body is read: a non-multipart request is refused
    // without receiving it.
    let boundary = upload_boundary(c.header(header::CONTENT_TYPE).unwrap_or(""))?;
    let body = c.body().await?;
    let file = upload_file(&body, &boundary)?;
    let done = c.app.services.avatars.upload(&auth, &file).await?;
    Ok(ok(&json!({
        "ok": true,
        "mime": done.image_type.mime(),
        "size": done.size,
    })))
}

fn no_file() -> ApiError {
    ApiError::field(
        "file",
        "a multipart/form-data part named `file` is required",
    )
}

/// The boundary of an upload's `Content-Type`.
pub(super) fn upload_boundary(content_type: &str) -> Result<String, ApiError> {
    multipart::boundary(content_type).map_err(|_| no_file())
}

/// The part named `file` of an upload's body.
pub(super) fn upload_file(body: &Bytes, boundary: &str) -> Result<Bytes, ApiError> {
    match multipart::find_part(body, boundary, "file") {
        Ok(Some(file)) => Ok(file),
        Ok(None) => Err(no_file()),
        Err(MultipartError::Malformed | MultipartError::NotMultipart) => Err(ApiError::field(
            "file",
            "malformed multipart/form-data body",
        )),
    }
}

/// # DELETE /avatar
async fn delete(c: Ctx) -> Res {
    let auth = c.auth()?;
    c.app.services.avatars.delete(&auth).await?;
    Ok(ok(&json!({"ok": true})))
}

/// # GET /avatar/{user_unique_id}
async fn get(c: Ctx) -> Res {
    let auth = c.auth()?;
    let path = c.parts.uri.path();
    // A malformed uid names nobody: the same 404 as an invisible avatar.
    let owner = validate::uid(c.param("user_unique_id").unwrap_or_default())
        .map_err(|_| ApiError::from(crate::service::Error::NotFound))?;
    let avatar = c.app.services.avatars.get(&auth, owner).await?;
    let etag = HeaderValue::from_str(&format!("\"{}\"", avatar.etag())).map_err(|_| {
        tracing::error!(%path, "stored avatar etag is not a header value");
        ApiError::internal()
    })?;
    let cached = c
        .header(header::IF_NONE_MATCH)
        .is_some_and(|v| etag_matches(v, avatar.etag()));
    let mut resp = if cached {
        let mut r = http::Response::new(Body::default());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let bytes = avatar.open()?;
        raw(StatusCode::OK, avatar.image_type().mime(), bytes.into())
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, etag);
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    Ok(resp)
}

/// `If-None-Match` (a list of entity tags, weak or strong, or `*`) matches `etag` (unquoted),
/// by the weak comparison RFC 9110 §13.1.2 prescribes for it.
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|tag| {
        tag == "*"
            || tag
                .strip_prefix("W/")
                .unwrap_or(tag)
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                == Some(etag)
    })
}

#[cfg(test)]
mod tests {
    use super::etag_matches;

    #[test]
    fn if_none_match() {
        assert!(etag_matches("\"abc\"", "abc"));
        assert!(etag_matches("W/\"abc\"", "abc"));
        assert!(etag_matches("\"x\", \"abc\"", "abc"));
        assert!(etag_matches("*", "abc"));
        assert!(!etag_matches("\"abcd\"", "abc"));
        assert!(!etag_matches("abc", "abc"), "unquoted is not an entity tag");
        assert!(!etag_matches("", "abc"));
    }
}
