//! The one mapping from failures to HTTP responses (PROTOCOL §2).

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
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "Request validation failed",
        );
        e.fields = fields;
        e
    }

    pub(crate) fn field(field: &str, problem: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, problem)])
    }

    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal server error",
        )
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

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        use StatusCode as S;
        let (status, reason, message) = match e {
            Error::Validation(fields) => return Self::validation(fields),
            Error::Unauthenticated => (S::UNAUTHORIZED, "unauthenticated", "Missing bearer token"),
            Error::InvalidToken => (S::UNAUTHORIZED, "invalid_token", "Invalid token"),
            Error::TokenExpired => (S::UNAUTHORIZED, "token_expired", "Token expired"),
            Error::TokenRevoked => (S::UNAUTHORIZED, "token_revoked", "Session revoked"),
            Error::InvalidCredentials => (
                S::UNAUTHORIZED,
                "invalid_credentials",
                "Invalid credentials",
            ),
            Error::CsrfInvalid => (
                S::FORBIDDEN,
                "csrf_invalid",
                "CSRF token missing or invalid",
            ),
            Error::Forbidden => (S::FORBIDDEN, "forbidden", "Not permitted"),
            Error::NotAContact => (S::FORBIDDEN, "not_a_contact", "Not a contact"),
            Error::NotFound => (S::NOT_FOUND, "not_found", "Not found"),
            Error::CannotRevokeCurrent => (
                S::BAD_REQUEST,
                "cannot_revoke_current",
                "Use /logout to end the current session",
            ),
            Error::InvalidTarget => (
                S::BAD_REQUEST,
                "invalid_target",
                "The target is the caller itself",
            ),
            Error::UserNotFound => (S::NOT_FOUND, "user_not_found", "No such user"),
            Error::AlreadyContact => (S::CONFLICT, "already_contact", "Already a contact"),
            Error::RequestPending => (
                S::CONFLICT,
                "request_pending",
                "A request is already pending",
            ),
            Error::NoPendingRequest => (S::NOT_FOUND, "no_pending_request", "No pending request"),
            Error::NotAMember => (S::FORBIDDEN, "not_a_member", "Not a member of that chat"),
            Error::MessageNotFound => (S::NOT_FOUND, "message_not_found", "Message not found"),
            Error::PhoneTaken => (S::CONFLICT, "phone_taken", "Phone already registered"),
            Error::InviteInvalid => (S::NOT_FOUND, "invite_invalid", "Invite invalid or expired"),
            Error::OwnerCannotLeave => (
                S::CONFLICT,
                "owner_cannot_leave",
                "The owner cannot leave the chat",
            ),
            Error::PayloadTooLarge { limit } => {
                return Self::new(
                    S::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("Upload exceeds {limit} bytes"),
                )
            }
            Error::UnsupportedMediaType => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Only PNG, JPEG and WebP images are accepted",
            ),
            Error::RateLimited { retry_after } => {
                let mut e = Self::new(S::TOO_MANY_REQUESTS, "rate_limited", "Too many requests");
                e.retry_after = Some(retry_after);
                return e;
            }
            Error::SlowMode { retry_after } => {
                let mut e = Self::new(S::TOO_MANY_REQUESTS, "slow_mode", "Slow mode: wait");
                e.retry_after = Some(retry_after);
                return e;
            }
            Error::LoginLocked { retry_after } => {
                let mut e = Self::new(
                    S::TOO_MANY_REQUESTS,
                    "login_locked",
                    "Too many failed logins",
                );
                e.retry_after = Some(retry_after);
                return e;
            }
            Error::Unavailable(detail) => {
                tracing::error!(error = %detail, "backend unavailable");
                (
                    S::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Service temporarily unavailable",
                )
            }
            Error::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                return Self::internal();
            }
        };
        Self::new(status, reason, message)
    }
}
