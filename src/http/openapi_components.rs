//! `#/components/schemas` of `/openapi.json` (see [`super::openapi`]).

use serde_json::{json, Map, Value};

use super::openapi_schemas::{
    array, boolean, desc, exactly, int, nullable, obj, obj2, ok_and, one_of, r, string,
};

/// `#/components/schemas`: shapes used by more than one operation, and the identifiers of
/// docs/protocol.md §1.2.
pub(crate) fn components() -> Value {
    let timestamp = || r("Timestamp");
    let mut c = Map::new();
    let mut add = |name: &str, v: Value| {
        c.insert(name.to_owned(), v);
    };
    add(
        "Error",
        json!({
        "type": "object", "required": ["ok", "error"],
        "properties": {
            "ok": {"const": false},
            "error": {"type": "object", "required": ["code", "message", "path", "reason"],
                "properties": {
                    "code": {"type": "integer", "description": "the HTTP status"},
                    "message": {"type": "string", "description": "English, not stable"},
                    "path": {"type": "string"},
                    "reason": {"type": "string", "description": "stable snake_case code (docs/protocol.md §2.2)"},
                    "fields": {"type": "array", "description": "422 only", "items": {"type": "object",
                        "required": ["field", "problem"],
                        "properties": {"field": {"type": "string"}, "problem": {"type": "string"}}}},
                    "retry_after": {"type": "integer", "description": "429 only: seconds"},
                    "verification": {"type": "object", "required": ["method"],
                        "description": "403 verification_required only: what to prove before repeating POST /register with verification",
                        "properties": {"method": {"type": "string"}, "hint": {"type": "string"}}}}}}}),
    );
    add(
        "Uid",
        json!({"type": "string", "pattern": "^[0-9]{8}$", "description": "user id (a JSON string; new ones never start with 0, imported ones may; 00000000 is the sender of system messages)"}),
    );
    add(
        "MessageId",
        json!({"type": "string", "pattern": "^[0-9a-fA-F]{32}$",
        "description": "UUIDv7 without dashes, lowercase on output"}),
    );
    add("ChatId", json!({"type": "integer", "minimum": 1}));
    add(
        "ChatIdInput",
        json!({"description": "a chat id; a string of decimal digits is also accepted",
        "anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": "^[0-9]+$"}]}),
    );
    add("ChatType", one_of(&["chat", "channel"]));
    add(
        "DeviceId",
        json!({"type": "string", "pattern": "^[0-9a-fA-F]{16}$", "description": "lowercase on output"}),
    );
    add(
        "ClientId",
        json!({"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,64}$", "description": "idempotency key"}),
    );
    add(
        "Timestamp",
        json!({"type": "string", "format": "date-time", "description": "RFC 3339 UTC, e.g. 2025-10-21T09:15:02.481Z"}),
    );
    add(
        "Token43",
        json!({"type": "string", "minLength": 43, "maxLength": 43, "description": "URL-safe base64, no padding"}),
    );
    add(
        "InviteCode",
        json!({"type": "string", "minLength": 14, "maxLength": 14}),
    );
    add(
        "Payload",
        json!({"type": "string", "minLength": 1, "maxLength": 1_048_576,
        "description": "opaque, 1 byte to 1 MiB of UTF-8"}),
    );
    add(
        "DisplayName",
        json!({"type": "string", "minLength": 1,
        "description": "tags <…> removed, then 1-50 letters, digits, '_', ' ' or '-'"}),
    );
    add(
        "Password",
        json!({"type": "string", "minLength": 8, "maxLength": 128}),
    );
    add(
        "PemPublicKey",
        json!({"type": "string", "maxLength": 16_384,
        "description": "PEM RSA public key (SPKI or PKCS#1), 2048-8192 bits"}),
    );
    add(
        "PublicKey",
        obj(&[(
            "public_key",
            desc(string(), "the current JWT signing key, SPKI PEM"),
        )]),
    );
    add(
        "Jwk",
        obj(&[
            ("kty", exactly(json!("RSA"))),
            ("use", exactly(json!("sig"))),
            ("alg", exactly(json!("RS256"))),
            ("kid", string()),
            ("n", string()),
            ("e", string()),
        ]),
    );
    add(
        "ServerStatus",
        obj(&[
            ("status", one_of(&["ok", "degraded"])),
            ("version", string()),
            (
                "services",
                obj(&[
                    ("redis", boolean()),
                    ("database", boolean()),
                    ("websocket", boolean()),
                ]),
            ),
            (
                "websocket",
                obj2(
                    &[("port", int())],
                    &[(
                        "connections",
                        desc(
                            int(),
                            "users with a socket on this node; only with a valid token",
                        ),
                    )],
                ),
            ),
            ("http_port", int()),
            ("ws_port", int()),
        ]),
    );
    add("OkTrue", ok_and(&[]));
    add(
        "Revoked",
        obj(&[("status", exactly(json!("ok"))), ("revoked_count", int())]),
    );
    add("DeviceToken", ok_and(&[("device_token", r("Token43"))]));
    add(
        "LoginResponse",
        obj(&[
            ("access_token", desc(string(), "RS256 JWT")),
            ("token_type", exactly(json!("bearer"))),
            ("expires_in", desc(int(), "seconds")),
            ("session_id", json!({"type": "integer", "minimum": 1})),
            ("csrf_token", r("Token43")),
            ("device_token", r("Token43")),
            ("public_e2e_key", nullable(string())),
            ("unique_id", r("Uid")),
            ("phone", string()),
            ("name", string()),
            ("nickname", string()),
            ("device_id", r("DeviceId")),
        ]),
    );
    add(
        "Session",
        obj(&[
            ("id", json!({"type": "integer", "minimum": 1})),
            ("device_id", r("DeviceId")),
            ("device_type", one_of(&["phone", "tablet", "pc", "web"])),
            ("device_name", string()),
            ("ip_address", string()),
            ("created_at", timestamp()),
            ("last_activity", timestamp()),
            ("is_current", boolean()),
        ]),
    );
    add(
        "Profile",
        obj2(
            &[
                ("unique_id", r("Uid")),
                ("name", string()),
                ("nickname", string()),
                ("username", nullable(string())),
                ("bio", nullable(string())),
                ("public_e2e_key", nullable(string())),
            ],
            &[
                ("csrf_token", desc(r("Token43"), "own profile only")),
                ("phone", desc(string(), "own profile only")),
            ],
        ),
    );
    add(
        "Contact",
        obj(&[
            ("unique_id", r("Uid")),
            ("nickname", string()),
            ("public_e2e_key", nullable(string())),
        ]),
    );
    add(
        "ContactStatus",
        obj(&[
            (
                "status",
                desc(
                    string(),
                    "not_subscribed | online | away | was at <timestamp> | inactive | closed",
                ),
            ),
            ("typing", boolean()),
        ]),
    );
    add(
        "Presence",
        obj(&[
            ("user_id", r("Uid")),
            ("status", one_of(&["online", "away", "offline"])),
            ("last_seen", nullable(timestamp())),
            (
                "is_typing_in_chat",
                desc(
                    nullable(r("ChatId")),
                    "the group chat this user is typing in, shown only when the caller is a member of it",
                ),
            ),
        ]),
    );
    add(
        "IceServer",
        obj2(
            &[("urls", string())],
            &[
                (
                    "username",
                    desc(string(), "TURN: <expiry unix seconds>:<uid>"),
                ),
                ("credential", desc(string(), "TURN: base64 HMAC-SHA1")),
            ],
        ),
    );
    add(
        "HistoryItem",
        obj2(
            &[
                ("message_id", r("MessageId")),
                ("from", r("Uid")),
                ("to", nullable(r("Uid"))),
                ("chat_id", nullable(r("ChatId"))),
                ("ts", timestamp()),
                ("edited_at", nullable(timestamp())),
                ("deleted", boolean()),
                ("pinned", boolean()),
                (
                    "reactions",
                    desc(
                        json!({"type": "object", "additionalProperties": array(r("Uid"))}),
                        "reaction → users",
                    ),
                ),
            ],
            &[(
                "status",
                desc(
                    one_of(&["queued", "delivered", "read"]),
                    "DMs sent by the caller only",
                ),
            )],
        ),
    );
    add(
        "HistoryPage",
        obj(&[
            (
                "messages",
                desc(array(string()), "payloads, parallel to items"),
            ),
            ("items", array(r("HistoryItem"))),
            ("page", desc(nullable(int()), "null in cursor mode")),
            ("per_page", int()),
            ("total", int()),
            ("pages", desc(nullable(int()), "null in cursor mode")),
            ("has_more", boolean()),
            ("next_before", nullable(r("MessageId"))),
        ]),
    );
    add(
        "Chat",
        obj(&[
            ("id", r("ChatId")),
            ("name", string()),
            ("type", r("ChatType")),
            ("created_at", timestamp()),
            ("owner_id", r("Uid")),
            ("is_public", boolean()),
            (
                "invite_code",
                desc(nullable(r("InviteCode")), "only while public"),
            ),
            ("slow_mode_seconds", int()),
            ("role", r("Role")),
            (
                "last_read_message_id",
                desc(
                    nullable(string()),
                    "the caller's read marker (POST /status/read): 32 hex, or an imported id of at most 64 bytes",
                ),
            ),
        ]),
    );
    add("Role", one_of(&["owner", "admin", "member"]));
    add(
        "Member",
        obj(&[
            ("unique_id", r("Uid")),
            ("nickname", string()),
            ("role", r("Role")),
            ("joined_at", timestamp()),
            ("public_e2e_key", nullable(string())),
        ]),
    );
    super::openapi_account::components(&mut add);
    super::openapi_schedule::components(&mut add);
    Value::Object(c)
}
