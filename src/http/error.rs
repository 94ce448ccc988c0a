//! The one mapping from failures to HTTP responses (docs/protocol.md §2): service errors through the
//! error table ([`Error::row`]), and the few failures of HTTP itself (unknown route, method,
//! body too large).

use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

use super::response::{json_response, Body};
use crate::service::{Error, FieldError};

/// An HTTP failure: status, stable reason, human message, and the extras some reasons carry.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) reason: &'static str,
    pub(crate) message: String,
    pub(crate) fields: Vec<FieldError>,
    pub(crate) retry_after: Option<u64>,
    pub(crate) allow: Option<String>,
    /// `verification_required`: what the client must prove (boxed: rare, and it keeps every
    /// `Result<_, ApiError>` small).
    pub(crate) verification: Option<Box<Verification>>,
    /// The request body may still be on the wire: answer with `Connection: close` so neither
    /// side reuses a connection whose next bytes are the rest of that body.
    pub(crate) close: bool,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            reason,
            message: message.into(),
            fields: Vec::new(),
            retry_after: None,
            allow: None,
            verification: None,
            close: false,
        }
    }

    pub(crate) fn not_found(method: &http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("No route for {method} {path}"),
        )
    }

    pub(crate) fn method_not_allowed(method: &http::Method, path: &str, allow: String) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("Method {method} not allowed for {path}"),
        );
        e.allow = Some(allow);
        e
    }

    pub(crate) fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("Body exceeds {limit} bytes"),
        )
        .closing()
    }

    /// Marks the answer as the connection's last (see [`ApiError::close`]).
    pub(crate) fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    pub(crate) fn validation(fields: Vec<FieldError>) -> Self {
        Error::Validation(fields).into()
    }

    pub(crate) fn field(field: &str, problem: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, problem)])
    }

    /// 500 `internal_error`, for a failure already logged.
    pub(crate) fn internal() -> Self {
        let row = Error::Internal(String::new()).row();
        Self::new(row.status, row.reason, row.message)
    }

    /// Renders the envelope; `path` is the request path without query.
    pub(crate) fn into_response(self, path: &str) -> http::Response<Body> {
        #[derive(Serialize)]
        struct Envelope<'a> {
            ok: bool,
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            code: u16,
            message: &'a str,
            path: &'a str,
            reason: &'a str,
            #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
            fields: &'a [FieldError],
            #[serde(skip_serializing_if = "Option::is_none")]
            retry_after: Option<u64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            verification: Option<&'a Verification>,
        }
        let body = Envelope {
            ok: false,
            error: Inner {
                code: self.status.as_u16(),
                message: &self.message,
                path,
                reason: self.reason,
                fields: &self.fields,
                retry_after: self.retry_after,
                verification: self.verification.as_deref(),
            },
        };
        let mut resp = json_response(self.status, &body);
        let h = resp.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(allow) = self.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
            h.insert(header::ALLOW, allow);
        }
        if self.close {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// The `verification` member of a `verification_required` error: what the embedder's
/// registration policy asks the client to prove before it repeats `POST /register`.
#[derive(Debug, Serialize)]
pub(crate) struct Verification {
    method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

impl From<Error> for ApiError {
    /// Status, reason and message from the error table ([`Error::row`]); server-side failures
    /// are logged, never shown.
    fn from(e: Error) -> Self {
        e.log("http request");
        let row = e.row();
        let mut api = Self::new(row.status, row.reason, e.message());
        api.retry_after = e.retry_after();
        match e {
            Error::Validation(fields) => api.fields = fields,
            Error::VerificationRequired { method, hint } => {
                api.verification = Some(Box::new(Verification { method, hint }));
            }
            _ => {}
        }
        api
    }
}
