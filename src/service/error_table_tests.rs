use std::collections::HashSet;
use std::mem::discriminant;

use super::*;
use crate::service::FieldError;

/// docs/protocol.md §2.2, the whole table (status, reason).
const HTTP_REASONS: &[(u16, &str)] = &[
    (400, "invalid_target"),
    (400, "cannot_revoke_current"),
    (401, "unauthenticated"),
    (401, "invalid_token"),
    (401, "token_expired"),
    (401, "token_revoked"),
    (401, "invalid_credentials"),
    (403, "csrf_invalid"),
    // Operator tools and registration modes (issue 17), beyond docs/protocol.md §2.2.
    (403, "account_locked"),
    (403, "registration_closed"),
    (403, "invite_required"),
    (403, "registration_invite_invalid"),
    // The embedder's registration policy (docs/hooks.md), beyond docs/protocol.md §2.2.
    (403, "registration_denied"),
    (403, "verification_required"),
    (403, "forbidden"),
    (403, "not_a_contact"),
    (403, "not_a_member"),
    (404, "not_found"),
    (404, "feature_disabled"),
    (404, "user_not_found"),
    (404, "message_not_found"),
    (404, "no_pending_request"),
    (404, "invite_invalid"),
    // Scheduled messages (docs/scheduled-messages.md), beyond docs/protocol.md §2.2.
    (404, "schedule_not_found"),
    (429, "schedule_limit"),
    (405, "method_not_allowed"),
    (409, "phone_taken"),
    (409, "already_contact"),
    (409, "request_pending"),
    (409, "owner_cannot_leave"),
    (413, "payload_too_large"),
    (415, "unsupported_media_type"),
    (422, "validation_failed"),
    (422, "invalid_subscription"),
    (429, "rate_limited"),
    (429, "login_locked"),
    (429, "slow_mode"),
    (500, "internal_error"),
    (503, "unavailable"),
    (503, "not_ready"),
];

/// docs/protocol.md §5.2, in its order.
const WS_REASONS: [&str; 12] = [
    "invalid_json",
    "invalid_frame",
    "unknown_type",
    "not_a_contact",
    "not_a_member",
    "forbidden",
    "invalid_target",
    "unknown_message",
    "call_not_found",
    "call_in_progress",
    "rate_limited",
    "internal_error",
];

/// One value of every variant.
fn every_variant() -> Vec<Error> {
    vec![
        Error::Validation(vec![FieldError::new("target", "must be a uid")]),
        Error::Unauthenticated,
        Error::InvalidToken,
        Error::TokenExpired,
        Error::TokenRevoked,
        Error::InvalidCredentials,
        Error::AccountLocked,
        Error::RegistrationClosed,
        Error::InviteRequired,
        Error::RegistrationInviteInvalid,
        Error::RegistrationDenied {
            reason: "no".into(),
        },
        Error::VerificationRequired {
            method: "sms".into(),
            hint: None,
        },
        Error::CsrfInvalid,
        Error::Forbidden,
        Error::NotAContact,
        Error::NotFound,
        Error::CannotRevokeCurrent,
        Error::InvalidTarget,
        Error::UserNotFound,
        Error::AlreadyContact,
        Error::RequestPending,
        Error::NoPendingRequest,
        Error::NotAMember,
        Error::MessageNotFound,
        Error::InviteInvalid,
        Error::OwnerCannotLeave,
        Error::SlowMode { retry_after: 7 },
        Error::PhoneTaken,
        Error::PayloadTooLarge { limit: 1024 },
        Error::UnsupportedMediaType,
        Error::RateLimited { retry_after: 8 },
        Error::LoginLocked { retry_after: 9 },
        Error::InvalidSubscription,
        Error::CallNotFound,
        Error::CallInProgress,
        Error::ScheduleNotFound,
        Error::ScheduleLimit { retry_after: 10 },
        Error::Unavailable("redis: connection refused".into()),
        Error::Internal("store: row 5 unreadable".into()),
    ]
}

/// What the protocol (docs/protocol.md §2) says each variant answers: (status, HTTP reason, socket reason). No wildcard:
/// a new variant does not compile until it is written down here (and in `every_variant`).
fn expected(e: &Error) -> (u16, &'static str, &'static str) {
    match e {
        Error::Validation(_) => (422, "validation_failed", "invalid_frame"),
        Error::Unauthenticated => (401, "unauthenticated", "internal_error"),
        Error::InvalidToken => (401, "invalid_token", "internal_error"),
        Error::TokenExpired => (401, "token_expired", "internal_error"),
        Error::TokenRevoked => (401, "token_revoked", "internal_error"),
        Error::InvalidCredentials => (401, "invalid_credentials", "internal_error"),
        Error::AccountLocked => (403, "account_locked", "internal_error"),
        Error::RegistrationClosed => (403, "registration_closed", "internal_error"),
        Error::InviteRequired => (403, "invite_required", "internal_error"),
        Error::RegistrationInviteInvalid => (403, "registration_invite_invalid", "internal_error"),
        Error::RegistrationDenied { .. } => (403, "registration_denied", "internal_error"),
        Error::VerificationRequired { .. } => (403, "verification_required", "internal_error"),
        Error::CsrfInvalid => (403, "csrf_invalid", "internal_error"),
        Error::Forbidden => (403, "forbidden", "forbidden"),
        Error::NotAContact => (403, "not_a_contact", "not_a_contact"),
        Error::NotFound => (404, "not_found", "unknown_message"),
        Error::CannotRevokeCurrent => (400, "cannot_revoke_current", "internal_error"),
        Error::InvalidTarget => (400, "invalid_target", "invalid_target"),
        Error::UserNotFound => (404, "user_not_found", "internal_error"),
        Error::AlreadyContact => (409, "already_contact", "internal_error"),
        Error::RequestPending => (409, "request_pending", "internal_error"),
        Error::NoPendingRequest => (404, "no_pending_request", "internal_error"),
        Error::NotAMember => (403, "not_a_member", "not_a_member"),
        Error::MessageNotFound => (404, "message_not_found", "unknown_message"),
        Error::InviteInvalid => (404, "invite_invalid", "internal_error"),
        Error::OwnerCannotLeave => (409, "owner_cannot_leave", "internal_error"),
        Error::SlowMode { .. } => (429, "slow_mode", "rate_limited"),
        Error::PhoneTaken => (409, "phone_taken", "internal_error"),
        Error::PayloadTooLarge { .. } => (413, "payload_too_large", "internal_error"),
        Error::UnsupportedMediaType => (415, "unsupported_media_type", "internal_error"),
        Error::RateLimited { .. } => (429, "rate_limited", "rate_limited"),
        Error::LoginLocked { .. } => (429, "login_locked", "internal_error"),
        Error::InvalidSubscription => (422, "invalid_subscription", "internal_error"),
        Error::CallNotFound => (404, "call_not_found", "call_not_found"),
        Error::CallInProgress => (409, "call_in_progress", "call_in_progress"),
        Error::ScheduleNotFound => (404, "schedule_not_found", "internal_error"),
        Error::ScheduleLimit { .. } => (429, "schedule_limit", "internal_error"),
        Error::Unavailable(_) => (503, "unavailable", "internal_error"),
        Error::Internal(_) => (500, "internal_error", "internal_error"),
    }
}

#[test]
fn every_variant_has_its_protocol_row() {
    let all = every_variant();
    let kinds: HashSet<_> = all.iter().map(discriminant).collect();
    assert_eq!(kinds.len(), all.len(), "one value per variant");
    assert_eq!(
        all.len(),
        39,
        "every variant (add new ones to every_variant)"
    );
    for e in &all {
        let r = e.row();
        let (status, reason, ws) = expected(e);
        assert_eq!(
            (r.status.as_u16(), r.reason, r.ws.as_str()),
            (status, reason, ws),
            "{e:?}"
        );
        // HTTP pairs come from §2.2, except the socket-only call rows.
        let socket_only = matches!(e, Error::CallNotFound | Error::CallInProgress);
        assert!(
            socket_only || HTTP_REASONS.contains(&(status, reason)),
            "{e:?}: ({status}, {reason}) is not in docs/protocol.md §2.2"
        );
        assert!(WS_REASONS.contains(&r.ws.as_str()), "{e:?}");
        assert!(!r.message.is_empty() && !e.message().is_empty());
    }
}

#[test]
fn the_socket_vocabulary_is_protocol_5_2() {
    let ours: Vec<&str> = WsReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(ours, WS_REASONS);
    for r in WsReason::ALL {
        let json = serde_json::to_string(&r).expect("serializes");
        assert_eq!(json, format!("\"{}\"", r.as_str()));
    }
}

#[test]
fn failures_never_show_their_details() {
    for e in [
        Error::Unavailable("redis at 10.0.0.7 refused".into()),
        Error::Internal("store: row of +79995550142".into()),
    ] {
        for shown in [e.message(), e.ws_message()] {
            assert!(
                !shown.contains("10.0.0.7") && !shown.contains("+7999"),
                "{shown}"
            );
        }
    }
    // Unavailable is 503 over HTTP but a row of its own on the socket: `internal_error`.
    let r = Error::Unavailable(String::new()).row();
    assert_eq!((r.status.as_u16(), r.ws), (503, WsReason::InternalError));
}

#[test]
fn messages_carry_their_detail() {
    assert_eq!(
        Error::PayloadTooLarge { limit: 1024 }.message(),
        "Upload exceeds 1024 bytes"
    );
    assert_eq!(
        Error::field("limit", "must be 1..=100").ws_message(),
        "limit must be 1..=100"
    );
    assert_eq!(Error::Validation(vec![]).ws_message(), "invalid frame");
    assert_eq!(
        Error::RegistrationDenied {
            reason: "Invite only this week".into()
        }
        .message(),
        "Invite only this week"
    );
    assert_eq!(Error::SlowMode { retry_after: 3 }.retry_after(), Some(3));
    assert_eq!(Error::Forbidden.retry_after(), None);
}

#[test]
fn socket_closes() {
    assert_eq!(Error::TokenExpired.close(), (1008, "token_expired"));
    assert_eq!(Error::TokenRevoked.close(), (1008, "token_revoked"));
    assert_eq!(Error::InvalidToken.close(), (1008, "invalid_token"));
    assert_eq!(Error::Unauthenticated.close(), (1008, "unauthenticated"));
    assert_eq!(
        Error::Unavailable("x".into()).close(),
        (1011, "internal_error")
    );
    assert_eq!(
        Error::Internal("x".into()).close(),
        (1011, "internal_error")
    );
}

#[test]
fn examples_name_every_variant() {
    let examples = Error::examples();
    let positions: Vec<usize> = examples.iter().map(Error::example_index).collect();
    assert_eq!(
        positions,
        (0..examples.len()).collect::<Vec<_>>(),
        "Error::examples holds each variant once, in example_index order"
    );
    assert_eq!(examples.len(), every_variant().len());
}

#[test]
fn http_reasons_cover_the_table_and_the_http_layer() {
    let all = http_reasons();
    for e in every_variant() {
        let row = e.row();
        assert!(all.contains(&(row.status, row.reason)), "{e:?}");
    }
    for (status, reason) in HTTP_REASONS {
        assert!(
            all.iter()
                .any(|(s, r)| s.as_u16() == *status && r == reason),
            "({status}, {reason})"
        );
    }
}
