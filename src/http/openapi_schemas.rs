//! The schema table of `/openapi.json`: one [`Op`] per served (method, path), and the schema
//! helpers it and `openapi_components.rs` (the shared schemas) are written with. Field names,
//! types and limits follow the handlers' serde types and the service validation (docs/protocol.md §1.2,
//! §1.5, §4). How to add a route: see [`super::openapi`].

use serde_json::{json, Map, Value};

use super::openapi::{delete, get, post, put, Op};

/// A reference to the component schema `name`.
pub(crate) fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

pub(super) fn string() -> Value {
    json!({"type": "string"})
}

pub(super) fn int() -> Value {
    json!({"type": "integer", "minimum": 0})
}

pub(super) fn boolean() -> Value {
    json!({"type": "boolean"})
}

/// A string of one of `values`.
pub(super) fn one_of(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

/// Exactly `v`.
pub(super) fn exactly(v: Value) -> Value {
    json!({ "const": v })
}

pub(super) fn array(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

/// `v` or null.
pub(super) fn nullable(v: Value) -> Value {
    json!({"anyOf": [v, {"type": "null"}]})
}

/// `v` with a description.
pub(super) fn desc(mut v: Value, text: &str) -> Value {
    v["description"] = json!(text);
    v
}

/// An object whose `required` fields are always present and `optional` fields may be absent.
pub(super) fn obj2(required: &[(&str, Value)], optional: &[(&str, Value)]) -> Value {
    let mut props = Map::new();
    for (k, v) in required.iter().chain(optional) {
        props.insert((*k).to_owned(), v.clone());
    }
    let names: Vec<&str> = required.iter().map(|(k, _)| *k).collect();
    json!({"type": "object", "required": names, "properties": props})
}

/// An object whose fields are all required.
pub(super) fn obj(required: &[(&str, Value)]) -> Value {
    obj2(required, &[])
}

/// `{"ok": true}` plus `fields`.
pub(super) fn ok_and(fields: &[(&str, Value)]) -> Value {
    let mut all = vec![("ok", exactly(json!(true)))];
    all.extend(fields.iter().cloned());
    obj(&all)
}

/// `{"status": <value>}`.
fn status(value: &str) -> Value {
    obj(&[("status", exactly(json!(value)))])
}

/// A page-mode list: `key` holds the items (docs/protocol.md §1.4).
fn page_of(key: &str, item: Value) -> Value {
    obj(&[
        (key, array(item)),
        ("page", int()),
        ("per_page", int()),
        ("total", int()),
        ("pages", int()),
    ])
}

/// The body of the four contact routes.
fn contact_body(target: &str) -> Value {
    obj2(
        &[("target_id", desc(r("Uid"), target))],
        &[(
            "csrf_token",
            desc(
                nullable(string()),
                "the session's CSRF token; or the X-CSRF-Token header",
            ),
        )],
    )
}

fn csrf_header(o: Op) -> Op {
    o.header(
        "X-CSRF-Token",
        string(),
        "CSRF token (instead of, or matching, body field csrf_token)",
    )
}

/// `{chat_id, user_unique_id}` plus `extra`.
fn member_body(extra: &[(&str, Value)]) -> Value {
    let mut all = vec![("chat_id", r("ChatIdInput")), ("user_unique_id", r("Uid"))];
    all.extend(extra.iter().cloned());
    obj(&all)
}

/// Body of the message-management routes: `message_id`, optional conversation, plus `extra`.
fn manage_body(extra_required: &[(&str, Value)], extra_optional: &[(&str, Value)]) -> Value {
    let mut req = vec![("message_id", r("MessageId"))];
    req.extend(extra_required.iter().cloned());
    let mut opt = vec![
        (
            "target_id",
            desc(nullable(r("Uid")), "the DM peer; must match the message"),
        ),
        (
            "chat_id",
            desc(
                nullable(r("ChatId")),
                "the chat; must match the message (a JSON integer here)",
            ),
        ),
    ];
    opt.extend(extra_optional.iter().cloned());
    obj2(&req, &opt)
}

fn uid_param(o: Op, name: &str) -> Op {
    o.path_param(name, r("Uid"), "a uid")
}

/// Every documented operation. One entry per route of `handlers::routes()`; the unit tests in
/// `openapi.rs` fail on a missing or stale entry.
pub(crate) fn table() -> Vec<Op> {
    let mut ops = vec![
        // §4.1 service, health and keys
        get("/").ok(obj(&[("detail", desc(string(), "Melo server <version>"))])),
        get("/status").ok(r("ServerStatus")),
        get("/healthz").ok(status("ok")),
        get("/readyz").ok(obj(&[
            ("status", exactly(json!("ready"))),
            ("checks", obj(&[("database", boolean()), ("redis", boolean())])),
        ])),
        get("/public_key").ok(r("PublicKey")),
        get("/encryption_public_key").ok(r("PublicKey")),
        get("/.well-known/jwks.json")
            .ok(obj(&[("keys", array(r("Jwk")))]))
            .with_headers(&[("Cache-Control", "public, max-age=300")]),
        get("/openapi.json").ok(obj(&[
            ("openapi", exactly(json!("3.1.0"))),
            ("info", obj(&[("title", string()), ("version", string())])),
            ("paths", desc(json!({"type": "object"}), "one entry per served path")),
            ("components", json!({"type": "object"})),
        ])),
        get("/asyncapi.json").ok(obj(&[
            ("asyncapi", exactly(json!("3.0.0"))),
            ("info", obj(&[("title", string()), ("version", string())])),
            ("channels", desc(json!({"type": "object"}), "the socket, /ws")),
            ("operations", desc(json!({"type": "object"}), "receive (client frames) and send (server frames)")),
            ("components", json!({"type": "object"})),
        ])),
        get("/metrics").text(
            200,
            "Prometheus text exposition of this node (404 feature_disabled when METRICS_ENABLED=false)",
            "text/plain; version=0.0.4",
        ),
        get("/docs").text(200, "This document rendered as HTML", "text/html"),
        get("/redoc").text(200, "This document rendered as HTML", "text/html"),
        get("/vapid_public_key").ok(obj(&[(
            "vapid_public_key",
            desc(string(), "base64url P-256 point, no padding"),
        )])),
        // §4.2 registration, login, sessions, devices
        post("/register")
            .json(obj2(
                &[
                    ("phone", desc(string(), "normalized to E.164: ^\\+[1-9][0-9]{1,14}$")),
                    ("name", r("DisplayName")),
                    ("nickname", r("DisplayName")),
                    ("password", r("Password")),
                    ("device_id", r("DeviceId")),
                    ("public_e2e_key", r("PemPublicKey")),
                ],
                &[(
                    "invite_code",
                    desc(
                        nullable(string()),
                        "REGISTRATION=invite: a single-use code from an operator \
                         (XXXXX-XXXXX-XXXXX-XXXXX-XXXXX, Crockford base 32; case, dashes and \
                         spaces ignored), ignored otherwise. 403 registration_closed \
                         (REGISTRATION=closed), invite_required (no code), \
                         registration_invite_invalid (unknown, used or expired code)",
                    ),
                ), (
                    "verification",
                    desc(
                        nullable(string()),
                        "at most 1024 bytes: the answer (an SMS code, a captcha token…) to a \
                         403 verification_required, whose error.verification says what to \
                         prove; passed as is to the embedder's registration policy. The \
                         policy may also refuse with 403 registration_denied",
                    ),
                )],
            ))
            .ok(obj(&[
                ("unique_id", r("Uid")),
                ("public_e2e_key", string()),
                ("phone", string()),
                ("name", string()),
                ("nickname", string()),
                ("device_id", r("DeviceId")),
            ])),
        post("/login")
            .json(obj2(
                &[
                    ("identifier", desc(string(), "a uid, or a phone (normalized as in /register)")),
                    ("device_id", r("DeviceId")),
                ],
                &[
                    ("password", desc(nullable(string()), "required unless device_token is valid; the right credentials of an account an operator locked answer 403 account_locked")),
                    ("device_token", desc(nullable(string()), "auto-login token of (user, device)")),
                    ("public_e2e_key", desc(nullable(string()), "when non-empty: replaces the key (rules of PemPublicKey)")),
                ],
            ))
            .ok(r("LoginResponse")),
        get("/csrf_token").ok(obj(&[("csrf_token", r("Token43"))])),
        get("/sessions").ok(obj(&[("sessions", array(r("Session")))])),
        delete("/sessions/{session_id}")
            .path_param("session_id", json!({"type": "integer", "minimum": 1}), "a session id of the caller")
            .ok(obj(&[("status", exactly(json!("ok"))), ("message", string())])),
        post("/sessions/revoke_all").ok(r("Revoked")),
        post("/sessions/terminate_all").ok(r("Revoked")),
        post("/logout").ok(status("ok")),
        post("/devices/register")
            .json(obj2(&[("device_id", desc(r("DeviceId"), "the current session's device"))], &[("device_token", desc(nullable(string()), "ignored"))]))
            .ok(r("DeviceToken")),
        post("/devices/refresh")
            .json(obj(&[("device_id", r("DeviceId")), ("device_token", desc(string(), "the current device token"))]))
            .ok(r("DeviceToken")),
        post("/devices/revoke").json(obj(&[("device_id", r("DeviceId"))])).ok(r("OkTrue")),
        post("/devices/link_code")
            .json_optional(desc(json!({"type": "object", "properties": {}}), "ignored; send {}"))
            .ok(obj(&[
                ("link_code", json!({"type": "string", "pattern": "^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$"})),
                ("expires_in", desc(int(), "seconds")),
            ])),
        post("/devices/authorize")
            .json(obj2(
                &[
                    ("identifier", desc(string(), "the approving user's uid or phone")),
                    ("device_id", desc(r("DeviceId"), "the new device")),
                    ("link_code", desc(string(), "XXXX-XXXX, case-insensitive")),
                ],
                &[("public_e2e_key", nullable(string()))],
            ))
            .ok(r("LoginResponse")),
        // §4.3 keys, profile, avatar
        post("/e2e/public_key").json(obj(&[("public_e2e_key", r("PemPublicKey"))])).ok(status("ok")),
        post("/e2e/secret_key")
            .json(obj(&[("ciphertext", json!({"type": "string", "minLength": 16, "maxLength": 65_536}))]))
            .ok(status("ok")),
        get("/e2e/secret_key").ok(obj2(
            &[("ciphertext", nullable(string()))],
            &[("updated_at", r("Timestamp"))],
        )),
        get("/profile")
            .query("user_id", r("Uid"), "an accepted contact (default: the caller)")
            .ok(r("Profile")),
        put("/profile")
            .json(obj2(
                &[],
                &[
                    ("name", nullable(r("DisplayName"))),
                    ("nickname", nullable(r("DisplayName"))),
                    ("username", nullable(json!({"type": "string", "maxLength": 32, "pattern": "^[A-Za-z0-9_]*$"}))),
                    ("bio", nullable(json!({"type": "string", "maxLength": 500}))),
                    ("password", desc(nullable(r("Password")), "needs current_password; revokes the other sessions")),
                    ("current_password", nullable(string())),
                ],
            ))
            .ok(status("updated")),
        post("/avatar/upload")
            .multipart(obj(&[("file", json!({"type": "string", "format": "binary",
                "description": "PNG, JPEG or WebP (sniffed), at most AVATAR_MAX_BYTES"}))]))
            .ok(ok_and(&[("mime", one_of(&["image/png", "image/jpeg", "image/webp"])), ("size", int())])),
        delete("/avatar").ok(r("OkTrue")),
        uid_param(get("/avatar/{user_unique_id}"), "user_unique_id")
            .header("If-None-Match", string(), "an ETag seen before")
            .reply(200, "The image", "image/*", json!({"type": "string", "format": "binary"}))
            .with_headers(&[("ETag", "entity tag"), ("Cache-Control", "private, max-age=300")])
            .empty(304, "Not modified (If-None-Match matched)")
            .with_headers(&[("ETag", "entity tag"), ("Cache-Control", "private, max-age=300")]),
        // §4.4 contacts
        csrf_header(post("/subscribe"))
            .json({
                let mut b = contact_body("the user to ask");
                b["properties"]["secret"] = json!({"type": "boolean", "default": false});
                b
            })
            .ok(obj(&[("status", one_of(&["subscription_requested", "confirmed"]))])),
        csrf_header(post("/confirm_subscribe")).json(contact_body("the requester")).ok(status("confirmed")),
        csrf_header(post("/reject_subscribe")).json(contact_body("the requester")).ok(status("rejected")),
        csrf_header(post("/unsubscribe")).json(contact_body("the other user")).ok(status("unsubscribed")),
        get("/contacts").paged(20).ok(page_of("contacts", r("Contact"))),
        get("/contacts/requests").ok(obj(&[
            ("incoming", array(obj(&[("unique_id", r("Uid")), ("nickname", string()), ("secret", boolean()), ("requested_at", r("Timestamp"))]))),
            ("outgoing", array(obj(&[("unique_id", r("Uid")), ("requested_at", r("Timestamp"))]))),
        ])),
        // §4.5 presence, §4.8 WebRTC
        get("/statuses")
            .query_required("user_ids", string(), "1 to 100 comma-separated uids")
            .ok(obj(&[("statuses", desc(json!({"type": "object", "additionalProperties": r("ContactStatus")}), "uid → status"))])),
        get("/status/me").ok(r("Presence")),
        get("/status/contacts").ok(obj(&[("contacts", array(r("Presence")))])),
        post("/status/online").ok(status("ok")),
        post("/status/offline").ok(status("ok")),
        post("/status/typing")
            .json(obj(&[(
                "chat_id",
                desc(
                    nullable(r("ChatIdInput")),
                    "a group chat: typing_start there; null: typing_stop in the chat the caller types in",
                ),
            )]))
            .ok(status("ok")),
        post("/status/read")
            .json(obj(&[
                ("chat_id", r("ChatIdInput")),
                ("message_id", desc(r("MessageId"), "a message of that chat; the marker only moves forward")),
            ]))
            .ok(status("ok")),
        get("/ice_servers").ok(obj(&[("ice_servers", array(r("IceServer"))), ("ttl", desc(int(), "seconds"))])),
        // §4.6 messages, §5.1 WebSocket
        get("/ws")
            .query("token", string(), "access token, when no Authorization header")
            .empty(101, "Switching Protocols: the WebSocket of docs/protocol.md §5"),
        post("/messages/send")
            .json(obj2(
                &[("data", r("Payload"))],
                &[
                    ("target_id", desc(nullable(r("Uid")), "DM recipient; exactly one of target_id / chat_id")),
                    ("chat_id", nullable(r("ChatIdInput"))),
                    ("client_id", nullable(r("ClientId"))),
                    ("signature", desc(nullable(string()), "opaque, passed to recipients")),
                ],
            ))
            .ok(obj2(
                &[("ok", exactly(json!(true))), ("message_id", r("MessageId")), ("status", exactly(json!("queued")))],
                &[
                    ("duplicate", desc(exactly(json!(true)), "a repeated client_id: the first message_id")),
                    ("recipients", desc(int(), "chat messages: member users other than the caller")),
                ],
            )),
        uid_param(get("/messages/history/dm/{target_id}"), "target_id").history().ok(r("HistoryPage")),
        uid_param(get("/history/{target_id}"), "target_id").history().ok(r("HistoryPage")),
        get("/messages/history/chat/{chat_id}")
            .path_param("chat_id", r("ChatId"), "a chat of the caller")
            .history()
            .ok(r("HistoryPage")),
        post("/messages/edit").json(manage_body(&[("new_data", r("Payload"))], &[])).ok(r("OkTrue")),
        post("/messages/delete").json(manage_body(&[], &[])).ok(r("OkTrue")),
        post("/messages/pin")
            .json(manage_body(&[], &[("pinned", json!({"type": "boolean", "default": true}))]))
            .ok(r("OkTrue")),
        post("/messages/react")
            .json(manage_body(&[("reaction", desc(json!({"type": "string", "maxLength": 32}), "\"\" removes the caller's reaction"))], &[]))
            .ok(r("OkTrue")),
        // §4.7 chats, channels, invites
        post("/chats/create")
            .json(obj2(
                &[("name", desc(json!({"type": "string", "minLength": 2, "maxLength": 128}), "2-128 characters after trimming"))],
                &[("type", json!({"type": ["string", "null"], "enum": ["chat", "channel", null], "default": "chat"}))],
            ))
            .ok(ok_and(&[("chat_id", r("ChatId")), ("type", r("ChatType"))])),
        get("/chats/list").paged(20).ok(page_of("chats", r("Chat"))),
        post("/chats/set_public")
            .json(obj(&[("chat_id", r("ChatIdInput")), ("is_public", boolean())]))
            .ok(ok_and(&[("invite", desc(nullable(string()), "the permanent code while public"))])),
        post("/chats/set_slow_mode")
            .json(obj(&[("chat_id", r("ChatIdInput")), ("seconds", json!({"type": "integer", "minimum": 0, "maximum": 86_400}))]))
            .ok(ok_and(&[("slow_mode", int())])),
        get("/chats/by_invite/{code}")
            .path_param("code", string(), "a public chat's permanent code")
            .ok(obj(&[("chat_id", r("ChatId")), ("name", string()), ("type", r("ChatType"))])),
        get("/chats/members")
            .query_required("chat_id", r("ChatIdInput"), "the chat")
            .paged(100)
            .ok(page_of("members", r("Member"))),
        post("/chats/leave").json(obj(&[("chat_id", r("ChatIdInput"))])).ok(r("OkTrue")),
        post("/chats/members/add").json(member_body(&[])).ok(r("OkTrue")),
        post("/chats/members/remove").json(member_body(&[])).ok(r("OkTrue")),
        post("/chats/members/role").json(member_body(&[("role", one_of(&["admin", "member"]))])).ok(r("OkTrue")),
        post("/invites/create")
            .json(obj2(
                &[("chat_id", r("ChatIdInput"))],
                &[("ttl_minutes", json!({"type": ["integer", "null"], "minimum": 1, "maximum": 10_080, "default": 60}))],
            ))
            .ok(ok_and(&[("code", r("InviteCode")), ("expires_in", desc(int(), "seconds"))])),
        post("/invites/join")
            .json(obj(&[("code", desc(string(), "a temporary invite or a public chat's permanent code"))]))
            .ok(ok_and(&[("chat_id", r("ChatId"))])),
        // §4.9 push
        post("/register_push")
            .json(obj2(
                &[],
                &[
                    ("platform", json!({"type": ["string", "null"], "enum": ["web", "android", "ios", null], "default": "web"})),
                    ("subscription", desc(nullable(obj(&[
                        ("endpoint", desc(json!({"type": "string", "minLength": 10, "maxLength": 2048}), "an https URL")),
                        ("keys", obj(&[
                            ("p256dh", json!({"type": "string", "minLength": 1, "maxLength": 256})),
                            ("auth", json!({"type": "string", "minLength": 1, "maxLength": 256})),
                        ])),
                    ])), "platform web: PushSubscription.toJSON()")),
                    ("push_token", desc(nullable(json!({"type": "string", "minLength": 1, "maxLength": 2048})), "platforms android, ios (alias: token)")),
                ],
            ))
            .ok(status("ok")),
    ];
    // Account deletion and export (issue 17).
    ops.extend(super::openapi_account::ops());
    // Scheduled messages.
    ops.extend(super::openapi_schedule::ops());
    ops
}
