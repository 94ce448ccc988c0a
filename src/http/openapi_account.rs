//! The `/openapi.json` entries of account deletion and export (issue 17; docs/accounts.md):
//! the two operations, and the `AccountExport` component with its parts.

use serde_json::{json, Value};

use super::openapi::{delete, get, Op};
use super::openapi_schemas::{
    array, boolean, desc, exactly, int, nullable, obj, obj2, one_of, r, string,
};

/// `DELETE /account` and `GET /account/export`.
pub(super) fn ops() -> Vec<Op> {
    vec![
        delete("/account")
            .header(
                "X-CSRF-Token",
                string(),
                "CSRF token (instead of, or matching, body field csrf_token)",
            )
            .json(obj2(
                &[(
                    "password",
                    desc(
                        json!({"type": "string", "minLength": 1, "maxLength": 128}),
                        "the current password; a wrong one is 403 forbidden and counts as a failed login",
                    ),
                )],
                &[(
                    "csrf_token",
                    desc(
                        nullable(string()),
                        "the session's CSRF token; or the X-CSRF-Token header",
                    ),
                )],
            ))
            .ok(obj(&[
                ("status", exactly(json!("deleted"))),
                ("unique_id", desc(r("Uid"), "the erased account's uid, never handed out again")),
            ])),
        get("/account/export")
            .ok(r("AccountExport"))
            .with_headers(&[
                ("Cache-Control", "no-store"),
                ("Content-Disposition", "attachment; filename=\"melo-export-<uid>.json\""),
            ]),
    ]
}

/// A list cut at a cap: `total`, `truncated` and the `items`.
fn capped(item: Value) -> Value {
    obj(&[
        ("total", desc(int(), "how many there are in all")),
        (
            "truncated",
            desc(boolean(), "true when items holds fewer than total"),
        ),
        ("items", array(item)),
    ])
}

/// The components of the export, added through `add`.
pub(super) fn components(add: &mut dyn FnMut(&str, Value)) {
    let ts = || r("Timestamp");
    add(
        "AccountExport",
        obj(&[
            ("exported_at", ts()),
            (
                "profile",
                obj(&[
                    ("unique_id", r("Uid")),
                    ("phone", string()),
                    ("name", string()),
                    ("nickname", string()),
                    ("username", nullable(string())),
                    ("bio", nullable(string())),
                    ("public_e2e_key", nullable(string())),
                    ("created_at", ts()),
                ]),
            ),
            (
                "avatar",
                nullable(obj(&[
                    ("mime", one_of(&["image/png", "image/jpeg", "image/webp"])),
                    ("etag", string()),
                    ("updated_at", ts()),
                    (
                        "url",
                        desc(string(), "/avatar/<uid>: the image, with the same token"),
                    ),
                ])),
            ),
            (
                "settings",
                desc(
                    nullable(json!({"type": "object", "properties": {"invisible": boolean()}})),
                    "the stored privacy choices, null when never changed",
                ),
            ),
            (
                "secret_key_backup",
                nullable(obj(&[
                    (
                        "ciphertext",
                        desc(string(), "as the client uploaded it (client-encrypted)"),
                    ),
                    ("updated_at", ts()),
                ])),
            ),
            ("sessions", capped(r("ExportSession"))),
            (
                "push_registrations",
                array(obj(&[
                    ("session_id", json!({"type": "integer", "minimum": 1})),
                    (
                        "subscription",
                        desc(
                            json!({"type": "object", "required": ["platform"],
                                   "properties": {"platform": one_of(&["web", "android", "ios"]),
                                                  "endpoint": string(), "p256dh": string(),
                                                  "auth": string(), "token": string()}}),
                            "web: endpoint, p256dh, auth; android / ios: token",
                        ),
                    ),
                ])),
            ),
            (
                "contacts",
                capped(obj(&[
                    ("unique_id", r("Uid")),
                    ("state", one_of(&["accepted", "pending"])),
                    ("direction", one_of(&["outgoing", "incoming"])),
                    ("secret", boolean()),
                    ("requested_at", ts()),
                ])),
            ),
            (
                "chats",
                capped(obj(&[
                    ("chat_id", r("ChatId")),
                    ("type", r("ChatType")),
                    ("name", string()),
                    ("role", r("Role")),
                    ("joined_at", nullable(ts())),
                    ("owner_id", r("Uid")),
                    ("created_at", ts()),
                    ("is_public", boolean()),
                    ("last_read_message_id", nullable(string())),
                ])),
            ),
            (
                "queued_entries",
                desc(int(), "entries waiting in the queues of the active devices"),
            ),
            ("conversations", capped(r("ExportConversation"))),
            (
                "messages_truncated",
                desc(
                    boolean(),
                    "some conversation lists fewer messages than it has (caps)",
                ),
            ),
            (
                "scheduled_messages",
                capped(obj(&[
                    ("schedule_id", r("ScheduleId")),
                    ("target_id", nullable(r("Uid"))),
                    ("chat_id", nullable(r("ChatId"))),
                    ("when", ts()),
                    ("created_at", ts()),
                    ("payload_bytes", int()),
                ])),
            ),
        ]),
    );
    add(
        "ExportSession",
        obj(&[
            ("session_id", json!({"type": "integer", "minimum": 1})),
            ("device_id", r("DeviceId")),
            ("device_type", one_of(&["phone", "tablet", "pc", "web"])),
            ("device_name", string()),
            ("ip_address", string()),
            ("created_at", ts()),
            ("last_activity", ts()),
            ("active", boolean()),
            ("device_token_expires", nullable(ts())),
        ]),
    );
    add(
        "ExportConversation",
        obj2(
            &[
                ("message_count", int()),
                (
                    "messages",
                    desc(
                        array(obj(&[
                            ("message_id", r("MessageId")),
                            ("from", r("Uid")),
                            ("to", nullable(r("Uid"))),
                            ("chat_id", nullable(r("ChatId"))),
                            ("ts", ts()),
                            ("edited_at", nullable(ts())),
                            ("deleted", boolean()),
                            ("pinned", boolean()),
                            ("delivered", boolean()),
                            ("read", boolean()),
                            ("payload_bytes", int()),
                            ("my_reaction", nullable(string())),
                        ])),
                        "the newest, newest first; payloads are not included",
                    ),
                ),
            ],
            &[("peer_id", r("Uid")), ("chat_id", r("ChatId"))],
        ),
    );
}
