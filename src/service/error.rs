use crate::crypto::CryptoError;
use crate::ephemeral::EphemeralError;
use crate::store::StoreError;

/// One problem with one input field (docs/protocol.md §2.1 `fields`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// Body field (dotted for nested), query or path parameter, or `body`.
    pub field: String,
    /// Human-readable problem.
    pub problem: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// The domain error of every service call (and of [`Melo`](crate::Melo)'s own methods). Each
/// variant has one answer on both transports (HTTP status and `reason`, WebSocket `error`
/// reason, socket close code), kept in one table; `docs/protocol.md` lists them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input failed validation.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// No usable `Authorization` header.
    #[error("unauthenticated")]
    Unauthenticated,
    /// Token malformed, badly signed, wrong claims, or its user is gone.
    #[error("invalid token")]
    InvalidToken,
    /// Token expired.
    #[error("token expired")]
    TokenExpired,
    /// The token's session was revoked.
    #[error("token revoked")]
    TokenRevoked,
    /// Login failed (one answer for every cause).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The credentials are right but an operator locked the account (`melo::admin`).
    #[error("account locked")]
    AccountLocked,
    /// `REGISTRATION=closed`: no new accounts.
    #[error("registration closed")]
    RegistrationClosed,
    /// `REGISTRATION=invite` and the registration carries no invite code.
    #[error("invite required")]
    InviteRequired,
    /// `REGISTRATION=invite` and the invite code is unknown, used or expired.
    #[error("registration invite invalid")]
    RegistrationInviteInvalid,
    /// The embedder's registration policy refused the registration
    /// ([`RegistrationDecision::Deny`](crate::hooks::RegistrationDecision::Deny)).
    #[error("registration denied")]
    RegistrationDenied {
        /// The policy's text for the client.
        reason: String,
    },
    /// The embedder's registration policy wants a proof first
    /// ([`RegistrationDecision::RequireVerification`](crate::hooks::RegistrationDecision::RequireVerification)).
    #[error("verification required")]
    VerificationRequired {
        /// What kind of proof (`"sms"`, `"captcha"`…).
        method: String,
        /// What else the client needs to give it.
        hint: Option<String>,
    },
    /// CSRF token missing or wrong.
    #[error("csrf invalid")]
    CsrfInvalid,
    /// Role or authorship forbids it.
    #[error("forbidden")]
    Forbidden,
    /// No accepted contact relationship.
    #[error("not a contact")]
    NotAContact,
    /// Resource does not exist or is not visible.
    #[error("not found")]
    NotFound,
    /// `DELETE /sessions/{id}` on the caller's own session.
    #[error("cannot revoke current session")]
    CannotRevokeCurrent,
    /// The request targets the caller itself.
    #[error("invalid target")]
    InvalidTarget,
    /// `/subscribe` target does not exist.
    #[error("user not found")]
    UserNotFound,
    /// Already accepted contacts.
    #[error("already contact")]
    AlreadyContact,
    /// The caller already asked that user.
    #[error("request pending")]
    RequestPending,
    /// No pending request to confirm or reject.
    #[error("no pending request")]
    NoPendingRequest,
    /// Not a member of that chat (also unknown chats).
    #[error("not a member")]
    NotAMember,
    /// Message unknown, expired, or not in a conversation of the caller.
    #[error("message not found")]
    MessageNotFound,
    /// Unknown, expired or non-public invite code.
    #[error("invite invalid")]
    InviteInvalid,
    /// The owner of a chat cannot leave it.
    #[error("owner cannot leave")]
    OwnerCannotLeave,
    /// Slow mode: the member posted in this chat less than its slow-mode interval ago.
    #[error("slow mode")]
    SlowMode {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// Phone already registered.
    #[error("phone taken")]
    PhoneTaken,
    /// An upload (not the request body) is over its size limit.
    #[error("payload too large (limit {limit} bytes)")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// An upload's type (sniffed from its bytes) is not accepted.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// HTTP budget exhausted.
    #[error("rate limited")]
    RateLimited {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// Failed-login lockout.
    #[error("login locked")]
    LoginLocked {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// A web push endpoint whose host does not resolve to public addresses only (docs/protocol.md
    /// §4.9; see its section 6 on this correction).
    #[error("invalid subscription")]
    InvalidSubscription,
    /// No active call of the sender's device with that peer (a call frame).
    #[error("call not found")]
    CallNotFound,
    /// The caller is already in a call.
    #[error("call in progress")]
    CallInProgress,
    /// A scheduled message unknown, not the caller's, already sent, discarded or cancelled.
    #[error("schedule not found")]
    ScheduleNotFound,
    /// The caller has `SCHEDULE_MAX_PENDING` scheduled messages pending.
    #[error("too many scheduled messages")]
    ScheduleLimit {
        /// Seconds until the earliest of them is due (a slot frees up then).
        retry_after: u64,
    },
    /// A backend is unreachable.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Unexpected failure; details are logged, never shown.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// A single-field validation error.
    pub fn field(field: &str, problem: &str) -> Self {
        Self::Validation(vec![FieldError::new(field, problem)])
    }

    /// Logs a server-side failure (`Unavailable` as a warning, `Internal` as an error) with what
    /// was being done; answers to the client (validation, authorization…) are not logged.
    /// Messages carry no PII: they come from backends and name operations, never values.
    pub fn log(&self, during: &'static str) {
        match self {
            Self::Unavailable(m) => tracing::warn!(error = %m, during, "backend unavailable"),
            Self::Internal(m) => tracing::error!(error = %m, during, "internal error"),
            _ => {}
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => Self::Unavailable(format!("store: {m}")),
            other => Self::Internal(format!("store: {other}")),
        }
    }
}

impl From<EphemeralError> for Error {
    fn from(e: EphemeralError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl From<CryptoError> for Error {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Busy => Self::Unavailable("password hashing saturated".into()),
            other => Self::Internal(format!("crypto: {other}")),
        }
    }
}

/// Result alias of service calls.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;
