//! Per-request context: body limits, JSON decoding, bearer tokens, query parameters.

use std::sync::Arc;

use bytes::Bytes;
use http::header;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::App;
use crate::service::{Authenticated, ClientInfo, FieldError};

/// Longest time a request body may take to arrive.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Boxed request body: hyper's `Incoming` or an embedder's body type.
pub(crate) type ReqBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Everything a handler gets.
pub(crate) struct Ctx {
    pub(crate) app: Arc<App>,
    pub(crate) parts: http::request::Parts,
    pub(crate) body: Option<ReqBody>,
    pub(crate) params: Vec<(String, String)>,
    pub(crate) client: ClientInfo,
    pub(crate) auth: Option<Authenticated>,
    /// The route's body limit (`http.max_body_bytes` unless the route sets its own).
    pub(crate) body_limit: usize,
}

impl Ctx {
    /// The authenticated identity; the router guarantees it for routes marked `auth`.
    pub(crate) fn auth(&self) -> Result<Authenticated, ApiError> {
        self.auth.ok_or_else(ApiError::internal)
    }

    /// A path parameter.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A decoded query parameter (last one wins).
    pub(crate) fn query(&self, name: &str) -> Option<String> {
        let q = self.parts.uri.query()?;
        let mut found = None;
        for pair in q.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if percent_decode(k).as_deref() == Some(name) {
                found = percent_decode(v);
            }
        }
        found
    }

    /// A header as UTF-8 text.
    pub(crate) fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Reads the whole body within the route's limit (see [`Ctx::bytes`]).
    pub(crate) async fn body(&mut self) -> Result<Bytes, ApiError> {
        self.bytes(self.body_limit).await
    }

    /// Reads the whole body within `limit` bytes: 413 when `Content-Length` says more (before
    /// reading) or when a chunked body crosses it.
    pub(crate) async fn bytes(&mut self, limit: usize) -> Result<Bytes, ApiError> {
        let declared = self
            .header(header::CONTENT_LENGTH)
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(ApiError::payload_too_large(limit));
        }
        let Some(mut body) = self.body.take() else {
            return Ok(Bytes::new());
        };
        let mut buf = bytes::BytesMut::with_capacity(declared.map_or(0, |n| n as usize).min(limit));
        let deadline = tokio::time::Instant::now() + BODY_READ_TIMEOUT;
        while let Some(frame) = tokio::time::timeout_at(deadline, body.frame())
            .await
            .map_err(|_| {
                ApiError::new(
                    http::StatusCode::REQUEST_TIMEOUT,
                    "validation_failed",
                    "Body not received in time",
                )
                .closing()
            })?
        {
            let frame =
                frame.map_err(|_| ApiError::field("body", "could not be read").closing())?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    return Err(ApiError::payload_too_large(limit));
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    }

    /// Decodes a JSON object body into `T`. An empty body reads as `{}`. Failures are 422 with
    /// the offending field (or `body`).
    pub(crate) async fn json<T: DeserializeOwned>(&mut self) -> Result<T, ApiError> {
        let bytes = self.body().await?;
        decode_json(&bytes)
    }
}

/// Decodes a JSON object body into `T` (see [`Ctx::json`]).
pub(crate) fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Decode straight into `T` (no intermediate `Value`, whose size could be many times the
    // body's); the first significant byte must open an object.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let bytes = match first {
        None => &b"{}"[..],
        Some(b'{') => bytes,
        Some(_) => return Err(ApiError::field("body", "must be a JSON object")),
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::field("body", "must be a JSON object");
        }
        let inner = inner.to_string();
        let field = match inner
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            Some(missing) if path == "." => missing.to_owned(),
            Some(missing) => format!("{path}.{missing}"),
            None if path == "." => "body".to_owned(),
            None => path,
        };
        let problem = if inner.starts_with("missing field") {
            "is required".to_owned()
        } else {
            inner
        };
        ApiError::validation(vec![FieldError::new(field, problem)])
    })?;
    de.end()
        .map_err(|_| ApiError::field("body", "must be one JSON object"))?;
    Ok(value)
}

/// A body that was already read, for decoding again.
pub(crate) fn full_body(bytes: Bytes) -> ReqBody {
    http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// The bearer token of an `Authorization` header (scheme case-insensitive).
pub(crate) fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        let mut h = http::HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            http::HeaderValue::from_static("bEaReR abc"),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(
            header::AUTHORIZATION,
            http::HeaderValue::from_static("Basic abc"),
        );
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer"),
        );
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn percent() {
        assert_eq!(percent_decode("a%2Cb+c").as_deref(), Some("a,b c"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
    }
}
