//! Response helpers.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

/// Body type of every response.
pub type Body = Full<Bytes>;

/// A JSON response; serialization failure becomes a 500 envelope-less body (never expected).
pub(crate) fn json_response<T: Serialize + ?Sized>(
    status: StatusCode,
    value: &T,
) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => raw(
            status,
            "application/json; charset=utf-8",
            Bytes::from(bytes),
        ),
        Err(e) => {
            tracing::error!(error = %e, "response serialization failed");
            raw(
                StatusCode::INTERNAL_SERVER_ERROR,
                "application/json; charset=utf-8",
                Bytes::from_static(br#"{"ok":false,"error":{"code":500,"message":"Internal server error","path":"","reason":"internal_error"}}"#),
            )
        }
    }
}

/// 200 JSON.
pub(crate) fn ok<T: Serialize + ?Sized>(value: &T) -> Response<Body> {
    json_response(StatusCode::OK, value)
}

/// Any body with a content type.
pub(crate) fn raw(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
