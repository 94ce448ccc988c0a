//! The one error table: for every [`Error`] its HTTP status and reason (docs/protocol.md §2.2), its
//! WebSocket `error` reason (§5.2), its socket close (§5.1) and a message safe to show.
//!
//! `http/error.rs`, the socket task and WebSocket admission all read their answers here, so the
//! two vocabularies cannot drift apart. The few rows that differ between the transports do so
//! on purpose and say why: §5.2 has fewer reasons than §2.2, and a reason a frame handler
//! cannot produce (a login lockout, a CSRF failure…) is `internal_error` on a socket.

use std::borrow::Cow;

use http::StatusCode;
use serde::Serialize;

use super::Error;

/// A WebSocket `error` frame reason (docs/protocol.md §5.2), the whole vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WsReason {
    /// Not JSON, or not an object.
    InvalidJson,
    /// Binary frame, missing or mistyped field, bad uid, both or neither of `target`/`chat_id`.
    InvalidFrame,
    /// A `type` the server does not know.
    UnknownType,
    /// No accepted contact relationship (also unknown uids).
    NotAContact,
    /// Not a member of that chat (also unknown chats).
    NotAMember,
    /// A role rule forbids it.
    Forbidden,
    /// The frame targets the sender.
    InvalidTarget,
    /// No such message received by the sender.
    UnknownMessage,
    /// No active call of this device with that peer.
    CallNotFound,
    /// The caller is already in a call.
    CallInProgress,
    /// The connection's frame budget is spent.
    RateLimited,
    /// The server failed (also every backend outage: §5.2 has no `unavailable`).
    InternalError,
}

impl WsReason {
    /// Every reason, in the order of docs/protocol.md §2.3.
    pub(crate) const ALL: [Self; 12] = [
        Self::InvalidJson,
        Self::InvalidFrame,
        Self::UnknownType,
        Self::NotAContact,
        Self::NotAMember,
        Self::Forbidden,
        Self::InvalidTarget,
        Self::UnknownMessage,
        Self::CallNotFound,
        Self::CallInProgress,
        Self::RateLimited,
        Self::InternalError,
    ];

    /// The wire spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::InvalidFrame => "invalid_frame",
            Self::UnknownType => "unknown_type",
            Self::NotAContact => "not_a_contact",
            Self::NotAMember => "not_a_member",
            Self::Forbidden => "forbidden",
            Self::InvalidTarget => "invalid_target",
            Self::UnknownMessage => "unknown_message",
            Self::CallNotFound => "call_not_found",
            Self::CallInProgress => "call_in_progress",
            Self::RateLimited => "rate_limited",
            Self::InternalError => "internal_error",
        }
    }
}

/// One row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ErrorRow {
    /// HTTP status.
    pub status: StatusCode,
    /// HTTP `reason` (docs/protocol.md §2.2).
    pub reason: &'static str,
    /// WebSocket `error` reason (docs/protocol.md §5.2).
    pub ws: WsReason,
    /// English text for humans, never internal details (not stable, docs/protocol.md §2.1).
    pub message: &'static str,
}

const fn row(
    status: StatusCode,
    reason: &'static str,
    ws: WsReason,
    message: &'static str,
) -> ErrorRow {
    ErrorRow {
        status,
        reason,
        ws,
        message,
    }
}

impl Error {
    /// The stable `reason` of this error in the HTTP error envelope (`"user_not_found"`, …;
    /// docs/protocol.md §2.2 lists them all).
    pub fn reason(&self) -> &'static str {
        self.row().reason
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> http::StatusCode {
        self.row().status
    }

    /// This error's row of the table.
    pub(crate) fn row(&self) -> ErrorRow {
        use StatusCode as S;
        use WsReason as W;
        // Rows whose socket reason is `internal_error` without being a failure are errors no
        // frame handler returns (authentication happens at admission, see `Error::close`).
        match self {
            Self::Validation(_) => row(
                S::UNPROCESSABLE_ENTITY,
                "validation_failed",
                W::InvalidFrame,
                "Request validation failed",
            ),
            Self::Unauthenticated => row(
                S::UNAUTHORIZED,
                "unauthenticated",
                W::InternalError,
                "Missing bearer token",
            ),
            Self::InvalidToken => row(
                S::UNAUTHORIZED,
                "invalid_token",
                W::InternalError,
                "Invalid token",
            ),
            Self::TokenExpired => row(
                S::UNAUTHORIZED,
                "token_expired",
                W::InternalError,
                "Token expired",
            ),
            Self::TokenRevoked => row(
                S::UNAUTHORIZED,
                "token_revoked",
                W::InternalError,
                "Session revoked",
            ),
            Self::InvalidCredentials => row(
                S::UNAUTHORIZED,
                "invalid_credentials",
                W::InternalError,
                "Invalid credentials",
            ),
            Self::AccountLocked => row(
                S::FORBIDDEN,
                "account_locked",
                W::InternalError,
                "This account is locked",
            ),
            Self::RegistrationClosed => row(
                S::FORBIDDEN,
                "registration_closed",
                W::InternalError,
                "Registration is closed",
            ),
            Self::InviteRequired => row(
                S::FORBIDDEN,
                "invite_required",
                W::InternalError,
                "Registration needs an invite code",
            ),
            // Not `invite_invalid`: that is the 404 of chat invite codes.
            Self::RegistrationInviteInvalid => row(
                S::FORBIDDEN,
                "registration_invite_invalid",
                W::InternalError,
                "Invite code invalid, used or expired",
            ),
            // The embedder's policy (`hooks::RegistrationPolicy`): its reason is the message.
            Self::RegistrationDenied { .. } => row(
                S::FORBIDDEN,
                "registration_denied",
                W::InternalError,
                "Registration denied",
            ),
            // The error body carries `verification: {method, hint}` (`http/error.rs`).
            Self::VerificationRequired { .. } => row(
                S::FORBIDDEN,
                "verification_required",
                W::InternalError,
                "Registration needs a verification",
            ),
            Self::CsrfInvalid => row(
                S::FORBIDDEN,
                "csrf_invalid",
                W::InternalError,
                "CSRF token missing or invalid",
            ),
            Self::Forbidden => row(S::FORBIDDEN, "forbidden", W::Forbidden, "Not permitted"),
            Self::NotAContact => row(
                S::FORBIDDEN,
                "not_a_contact",
                W::NotAContact,
                "Not a contact",
            ),
            // On a socket only messages are looked up (`ack_read`, edits): not found is
            // `unknown_message` there.
            Self::NotFound => row(S::NOT_FOUND, "not_found", W::UnknownMessage, "Not found"),
            Self::CannotRevokeCurrent => row(
                S::BAD_REQUEST,
                "cannot_revoke_current",
                W::InternalError,
                "Use /logout to end the current session",
            ),
            Self::InvalidTarget => row(
                S::BAD_REQUEST,
                "invalid_target",
                W::InvalidTarget,
                "The target is the caller itself",
            ),
            Self::UserNotFound => row(
                S::NOT_FOUND,
                "user_not_found",
                W::InternalError,
                "No such user",
            ),
            Self::AlreadyContact => row(
                S::CONFLICT,
                "already_contact",
                W::InternalError,
                "Already a contact",
            ),
            Self::RequestPending => row(
                S::CONFLICT,
                "request_pending",
                W::InternalError,
                "A request is already pending",
            ),
            Self::NoPendingRequest => row(
                S::NOT_FOUND,
                "no_pending_request",
                W::InternalError,
                "No pending request",
            ),
            Self::NotAMember => row(
                S::FORBIDDEN,
                "not_a_member",
                W::NotAMember,
                "Not a member of that chat",
            ),
            Self::MessageNotFound => row(
                S::NOT_FOUND,
                "message_not_found",
                W::UnknownMessage,
                "Message not found",
            ),
            Self::InviteInvalid => row(
                S::NOT_FOUND,
                "invite_invalid",
                W::InternalError,
                "Invite invalid or expired",
            ),
            Self::OwnerCannotLeave => row(
                S::CONFLICT,
                "owner_cannot_leave",
                W::InternalError,
                "The owner cannot leave the chat",
            ),
            // A socket answers slow mode with `msg_status` `rate_limited` (§5.4), not `error`.
            Self::SlowMode { .. } => row(
                S::TOO_MANY_REQUESTS,
                "slow_mode",
                W::RateLimited,
                "Slow mode: wait",
            ),
            Self::PhoneTaken => row(
                S::CONFLICT,
                "phone_taken",
                W::InternalError,
                "Phone already registered",
            ),
            Self::PayloadTooLarge { .. } => row(
                S::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                W::InternalError,
                "Upload too large",
            ),
            Self::UnsupportedMediaType => row(
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                W::InternalError,
                "Only PNG, JPEG and WebP images are accepted",
            ),
            Self::RateLimited { .. } => row(
                S::TOO_MANY_REQUESTS,
                "rate_limited",
                W::RateLimited,
                "Too many requests",
            ),
            Self::LoginLocked { .. } => row(
                S::TOO_MANY_REQUESTS,
                "login_locked",
                W::InternalError,
                "Too many failed logins",
            ),
            // `POST /register_push` exists over HTTP only.
            Self::InvalidSubscription => row(
                S::UNPROCESSABLE_ENTITY,
                "invalid_subscription",
                W::InternalError,
                "The push endpoint must be on a host with public addresses only",
            ),
            // Calls are signalled over the socket only; the HTTP row exists for completeness.
            Self::CallNotFound => row(
                S::NOT_FOUND,
                "call_not_found",
                W::CallNotFound,
                "No active call of this device with that peer",
            ),
            Self::CallInProgress => row(
                S::CONFLICT,
                "call_in_progress",
                W::CallInProgress,
                "You are already in a call",
            ),
            // Scheduled messages exist over HTTP only (`/schedule/...`).
            Self::ScheduleNotFound => row(
                S::NOT_FOUND,
                "schedule_not_found",
                W::InternalError,
                "Scheduled message not found",
            ),
            Self::ScheduleLimit { .. } => row(
                S::TOO_MANY_REQUESTS,
                "schedule_limit",
                W::InternalError,
                "Too many scheduled messages pending",
            ),
            // §5.2 has no `unavailable`: a backend outage is `internal_error` on a socket.
            Self::Unavailable(_) => row(
                S::SERVICE_UNAVAILABLE,
                "unavailable",
                W::InternalError,
                "Service temporarily unavailable",
            ),
            Self::Internal(_) => row(
                S::INTERNAL_SERVER_ERROR,
                "internal_error",
                W::InternalError,
                "Internal server error",
            ),
        }
    }

    /// The message to show: the row's, with the limit of an upload that was too large.
    pub fn message(&self) -> Cow<'static, str> {
        match self {
            Self::PayloadTooLarge { limit } => format!("Upload exceeds {limit} bytes").into(),
            Self::RegistrationDenied { reason } if !reason.is_empty() => reason.clone().into(),
            other => other.row().message.into(),
        }
    }

    /// The message of a socket `error` frame: a validation failure names its first field
    /// (a frame has no `fields` list), everything else is [`Error::message`].
    pub fn ws_message(&self) -> Cow<'static, str> {
        match self {
            Self::Validation(f) => f.first().map_or(Cow::Borrowed("invalid frame"), |f| {
                format!("{} {}", f.field, f.problem).into()
            }),
            other => other.message(),
        }
    }

    /// Seconds to wait, for the errors that carry them (HTTP `retry_after`).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after }
            | Self::SlowMode { retry_after }
            | Self::LoginLocked { retry_after }
            | Self::ScheduleLimit { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// The close code and reason when this error ends (or refuses) a socket (docs/protocol.md §5.1): a
    /// token failure closes 1008 with its HTTP reason, anything else 1011 `internal_error`.
    pub fn close(&self) -> (u16, &'static str) {
        match self {
            Self::Unauthenticated
            | Self::InvalidToken
            | Self::TokenExpired
            | Self::TokenRevoked => (1008, self.row().reason),
            _ => (1011, WsReason::InternalError.as_str()),
        }
    }
}

/// The answers the HTTP layer gives itself, outside [`Error`]: (status, reason). With the table's
/// rows they are every `reason` an HTTP error envelope can carry ([`http_reasons`]).
pub(crate) const HTTP_LAYER_REASONS: [(StatusCode, &str); 6] = [
    // No route for the path (`http/error.rs`).
    (StatusCode::NOT_FOUND, "not_found"),
    // The path exists, the method does not.
    (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
    // A body that did not arrive in time (`http/extract.rs`).
    (StatusCode::REQUEST_TIMEOUT, "validation_failed"),
    // `GET /metrics` on a listener that does not serve it.
    (StatusCode::NOT_FOUND, "feature_disabled"),
    // `GET /ws` without a WebSocket upgrade.
    (StatusCode::UPGRADE_REQUIRED, "upgrade_required"),
    // `GET /readyz` with a backend down.
    (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
];

impl Error {
    /// One value of every variant, in declaration order: what generated documentation
    /// (`/openapi.json`) enumerates. [`Error::example_index`] keeps it complete.
    pub(crate) fn examples() -> Vec<Self> {
        vec![
            Self::Validation(Vec::new()),
            Self::Unauthenticated,
            Self::InvalidToken,
            Self::TokenExpired,
            Self::TokenRevoked,
            Self::InvalidCredentials,
            Self::AccountLocked,
            Self::RegistrationClosed,
            Self::InviteRequired,
            Self::RegistrationInviteInvalid,
            Self::RegistrationDenied {
                reason: String::new(),
            },
            Self::VerificationRequired {
                method: String::new(),
                hint: None,
            },
            Self::CsrfInvalid,
            Self::Forbidden,
            Self::NotAContact,
            Self::NotFound,
            Self::CannotRevokeCurrent,
            Self::InvalidTarget,
            Self::UserNotFound,
            Self::AlreadyContact,
            Self::RequestPending,
            Self::NoPendingRequest,
            Self::NotAMember,
            Self::MessageNotFound,
            Self::InviteInvalid,
            Self::OwnerCannotLeave,
            Self::SlowMode { retry_after: 1 },
            Self::PhoneTaken,
            Self::PayloadTooLarge { limit: 0 },
            Self::UnsupportedMediaType,
            Self::RateLimited { retry_after: 1 },
            Self::LoginLocked { retry_after: 1 },
            Self::InvalidSubscription,
            Self::CallNotFound,
            Self::CallInProgress,
            Self::ScheduleNotFound,
            Self::ScheduleLimit { retry_after: 1 },
            Self::Unavailable(String::new()),
            Self::Internal(String::new()),
        ]
    }

    /// The position of this variant in [`Error::examples`]. Exhaustive: a new variant does not
    /// compile until it has a position here, and the unit test `examples_name_every_variant`
    /// fails until [`Error::examples`] holds it.
    #[cfg(test)]
    pub(crate) fn example_index(&self) -> usize {
        match self {
            Self::Validation(_) => 0,
            Self::Unauthenticated => 1,
            Self::InvalidToken => 2,
            Self::TokenExpired => 3,
            Self::TokenRevoked => 4,
            Self::InvalidCredentials => 5,
            Self::AccountLocked => 6,
            Self::RegistrationClosed => 7,
            Self::InviteRequired => 8,
            Self::RegistrationInviteInvalid => 9,
            Self::RegistrationDenied { .. } => 10,
            Self::VerificationRequired { .. } => 11,
            Self::CsrfInvalid => 12,
            Self::Forbidden => 13,
            Self::NotAContact => 14,
            Self::NotFound => 15,
            Self::CannotRevokeCurrent => 16,
            Self::InvalidTarget => 17,
            Self::UserNotFound => 18,
            Self::AlreadyContact => 19,
            Self::RequestPending => 20,
            Self::NoPendingRequest => 21,
            Self::NotAMember => 22,
            Self::MessageNotFound => 23,
            Self::InviteInvalid => 24,
            Self::OwnerCannotLeave => 25,
            Self::SlowMode { .. } => 26,
            Self::PhoneTaken => 27,
            Self::PayloadTooLarge { .. } => 28,
            Self::UnsupportedMediaType => 29,
            Self::RateLimited { .. } => 30,
            Self::LoginLocked { .. } => 31,
            Self::InvalidSubscription => 32,
            Self::CallNotFound => 33,
            Self::CallInProgress => 34,
            Self::ScheduleNotFound => 35,
            Self::ScheduleLimit { .. } => 36,
            Self::Unavailable(_) => 37,
            Self::Internal(_) => 38,
        }
    }
}

/// Every (status, `reason`) an HTTP error envelope can carry: the table's rows, then
/// [`HTTP_LAYER_REASONS`]; each pair once, in that order.
pub(crate) fn http_reasons() -> Vec<(StatusCode, &'static str)> {
    let mut out: Vec<(StatusCode, &'static str)> = Vec::new();
    let rows = Error::examples().into_iter().map(|e| {
        let row = e.row();
        (row.status, row.reason)
    });
    for pair in rows.chain(HTTP_LAYER_REASONS) {
        if !out.contains(&pair) {
            out.push(pair);
        }
    }
    out
}

#[cfg(test)]
#[path = "error_table_tests.rs"]
mod tests;
