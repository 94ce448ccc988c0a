//! Tags and error responses of `/openapi.json`.
//!
//! Every operation gets one tag from [`tag_of`] (by path) and an error response per HTTP status
//! it can answer with: the ones every route of its kind shares ([`common_reasons`]: a token
//! route's 401s, a route with input's 422, a metered route's 429…) and the ones of its own
//! service ([`route_reasons`]). Statuses come from the error table (`http_reasons`), never
//! from here, so a reason is documented with the status the server really sends. A route
//! without a tag, or a reason the error table does not know, is a problem that stops the
//! document from building (see [`super::openapi::problems`]).

use http::Method;

use super::router::{Access, Route};

/// The tags, in the order the document lists them, with their descriptions.
pub(crate) const TAGS: [(&str, &str); 12] = [
    (
        "ops",
        "Service banner, health and readiness probes, metrics, and the API documents themselves.",
    ),
    (
        "keys",
        "The server's JWT verification keys and the user's end-to-end key material.",
    ),
    (
        "accounts",
        "Registration, account export and account deletion.",
    ),
    (
        "auth",
        "Login (password, device token or link code), logout, CSRF tokens and device tokens.",
    ),
    (
        "sessions",
        "The caller's sessions (one per device) and their revocation.",
    ),
    (
        "profile",
        "The caller's profile, other users' profiles, avatars.",
    ),
    (
        "contacts",
        "Contact requests and the accepted contacts list (CSRF-protected writes).",
    ),
    (
        "presence",
        "Online/away/offline status, typing indications and read markers over HTTP.",
    ),
    (
        "messages",
        "Sending over HTTP, history, message edits/deletes/pins/reactions, scheduled messages.",
    ),
    (
        "chats",
        "Group chats and channels, their members and invites.",
    ),
    (
        "calls",
        "The WebSocket endpoint (frames: /asyncapi.json) and WebRTC ICE configuration.",
    ),
    ("push", "Push registrations and the Web Push VAPID key."),
];

/// The tag of the route at `path`, `None` for a path no rule covers.
pub(crate) fn tag_of(path: &str) -> Option<&'static str> {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    Some(match (path, first) {
        ("/" | "/status" | "/healthz" | "/readyz" | "/metrics" | "/docs" | "/redoc", _)
        | ("/openapi.json" | "/asyncapi.json", _) => "ops",
        ("/public_key" | "/encryption_public_key" | "/.well-known/jwks.json", _) => "keys",
        (_, "e2e") => "keys",
        ("/register", _) | (_, "account") => "accounts",
        ("/login" | "/logout" | "/csrf_token", _) | (_, "devices") => "auth",
        (_, "sessions") => "sessions",
        (_, "profile" | "avatar") => "profile",
        ("/subscribe" | "/confirm_subscribe" | "/reject_subscribe" | "/unsubscribe", _) => {
            "contacts"
        }
        (_, "contacts") => "contacts",
        (_, "statuses" | "status") => "presence",
        (_, "messages" | "history" | "schedule") => "messages",
        (_, "chats" | "invites") => "chats",
        ("/ws" | "/ice_servers", _) => "calls",
        ("/register_push" | "/vapid_public_key", _) => "push",
        _ => return None,
    })
}

/// The reasons of a token failure (docs/protocol.md §3.1).
const TOKEN: [&str; 4] = [
    "unauthenticated",
    "invalid_token",
    "token_expired",
    "token_revoked",
];

/// Reasons every route like `route` can answer: 401s with a token, 422 with any input (a body,
/// a query or a path parameter), 413 with a body, 429 unless the route is unmetered.
pub(crate) fn common_reasons(route: &Route, has_input: bool, has_body: bool) -> Vec<&'static str> {
    let mut out = Vec::new();
    if route.access == Access::Token {
        out.extend(TOKEN);
    }
    if has_input {
        out.push("validation_failed");
    }
    if has_body {
        out.push("payload_too_large");
    }
    if !super::UNMETERED.contains(&route.path) {
        out.push("rate_limited");
    }
    out
}

/// The reasons of the service behind `method path`, beyond [`common_reasons`].
pub(crate) fn route_reasons(method: &Method, path: &str) -> &'static [&'static str] {
    const CSRF: &str = "csrf_invalid";
    const SEND: &[&str] = &[
        "invalid_target",
        "not_a_contact",
        "not_a_member",
        "forbidden",
        "slow_mode",
    ];
    const MANAGE: &[&str] = &["message_not_found", "forbidden"];
    const CHAT_ADMIN: &[&str] = &["not_a_member", "forbidden"];
    match (method.as_str(), path) {
        ("GET", "/readyz") => &["not_ready"],
        ("GET", "/metrics") => &["feature_disabled"],
        ("GET", "/ws") => &["upgrade_required"],
        ("POST", "/register") => &[
            "phone_taken",
            "registration_closed",
            "invite_required",
            "registration_invite_invalid",
        ],
        ("POST", "/login") => &["invalid_credentials", "account_locked", "login_locked"],
        ("POST", "/devices/authorize") => {
            &["invalid_credentials", "account_locked", "login_locked"]
        }
        ("POST", "/devices/register") => &["forbidden"],
        ("POST", "/devices/refresh") => &["invalid_credentials"],
        ("DELETE", "/sessions/{session_id}") => &["not_found", "cannot_revoke_current"],
        ("DELETE", "/account") => &[CSRF, "forbidden"],
        ("GET", "/profile") => &["not_a_contact"],
        ("PUT", "/profile") => &["forbidden"],
        ("POST", "/avatar/upload") => &["unsupported_media_type"],
        ("GET", "/avatar/{user_unique_id}") => &["not_found"],
        ("POST", "/subscribe") => &[
            CSRF,
            "invalid_target",
            "user_not_found",
            "request_pending",
            "already_contact",
        ],
        ("POST", "/confirm_subscribe" | "/reject_subscribe") => &[CSRF, "no_pending_request"],
        ("POST", "/unsubscribe") => &[CSRF, "not_found"],
        ("POST", "/status/typing") => &["not_a_member", "forbidden"],
        ("POST", "/status/read") => &["not_a_member", "message_not_found"],
        ("POST", "/messages/send") => SEND,
        ("GET", "/messages/history/chat/{chat_id}") => &["not_a_member"],
        ("GET", "/history/{target_id}") => &["not_a_contact"],
        ("POST", "/messages/edit" | "/messages/delete" | "/messages/pin") => MANAGE,
        ("POST", "/messages/react") => MANAGE,
        ("POST", "/schedule/message") => &[
            "invalid_target",
            "not_a_contact",
            "not_a_member",
            "forbidden",
            "schedule_limit",
        ],
        ("DELETE", "/schedule/{schedule_id}") => &["schedule_not_found"],
        ("POST", "/chats/set_public" | "/chats/set_slow_mode" | "/invites/create") => CHAT_ADMIN,
        ("GET", "/chats/members") => CHAT_ADMIN,
        ("POST", "/chats/members/remove" | "/chats/members/role") => CHAT_ADMIN,
        ("POST", "/chats/members/add") => &["not_a_member", "forbidden", "not_a_contact"],
        ("POST", "/chats/leave") => &["not_a_member", "owner_cannot_leave"],
        ("GET", "/chats/by_invite/{code}") => &["invite_invalid"],
        ("POST", "/invites/join") => &["invite_invalid"],
        ("POST", "/register_push") => &["invalid_subscription"],
        _ => &[],
    }
}
