//! The schemas of the frames the server sends, for `/asyncapi.json` (see
//! [`openapi_asyncapi`](super::openapi_asyncapi)).

use serde_json::{json, Value};

use super::openapi_asyncapi::{call_fields, frame, self_copy, seq};
use super::openapi_schemas::{array, boolean, desc, exactly, int, nullable, one_of, r, string};
use crate::service::frames;
use crate::service::WsReason;

/// A durable message event (`edit`, `delete`, `pin`, `react`).
fn message_event(kind: &str, extra: &[(&str, Value)]) -> Value {
    let mut optional = vec![
        ("to", desc(r("Uid"), "DMs only")),
        ("chat_id", desc(r("ChatId"), "chats only")),
        ("self", self_copy()),
    ];
    optional.extend(extra.iter().cloned());
    frame(
        kind,
        &[
            ("seq", seq()),
            ("message_id", r("MessageId")),
            ("from", r("Uid")),
            ("ts", r("Timestamp")),
        ],
        &optional,
    )
}

fn contact_event(kind: &str, with_profile: bool) -> Value {
    let mut required = vec![
        ("seq", seq()),
        ("from_id", r("Uid")),
        ("ts", r("Timestamp")),
    ];
    let mut optional = Vec::new();
    if with_profile {
        required.push((
            "from_phone",
            desc(
                json!({"type": "null"}),
                "always null: a phone is never shown",
            ),
        ));
        required.push(("from_nickname", string()));
        optional.push(("secret", boolean()));
    }
    frame(kind, &required, &optional)
}

/// The schema and summary of server → client frame `kind`; `None` for a type not described.
pub(crate) fn server_schema(kind: &str) -> Option<(Value, &'static str)> {
    if frames::call::CallKind::of(kind).is_some() {
        let mut f = frame(
            kind,
            &[
                ("call_id", string()),
                ("from", desc(r("Uid"), "the sender")),
                ("target", r("Uid")),
                ("ts", r("Timestamp")),
            ],
            &call_fields(),
        );
        f["description"] = json!("The peer's call frame, with call_id, from and ts added");
        return Some((f, "A call frame forwarded from the peer (ephemeral)"));
    }
    let ws_reasons: Vec<&str> = WsReason::ALL.iter().map(|r| r.as_str()).collect();
    Some(match kind {
        "relay_delivery" => (
            frame(
                kind,
                &[
                    ("seq", seq()),
                    ("message_id", r("MessageId")),
                    ("from", r("Uid")),
                    ("payload", string()),
                    ("ts", r("Timestamp")),
                ],
                &[
                    ("to", desc(r("Uid"), "DMs only")),
                    ("chat_id", desc(r("ChatId"), "chats only")),
                    ("signature", string()),
                    ("self", self_copy()),
                    (
                        "system",
                        desc(
                            exactly(json!(true)),
                            "present on system messages: sent by the server itself from the \
                            reserved uid 00000000, not end-to-end encrypted",
                        ),
                    ),
                ],
            ),
            "A message (durable)",
        ),
        "msg_status" => {
            let status = frame(
                kind,
                &[
                    ("message_id", r("MessageId")),
                    ("status", one_of(&["queued", "delivered", "read"])),
                    ("from", r("Uid")),
                    ("to", nullable(r("Uid"))),
                    ("ts", r("Timestamp")),
                ],
                &[
                    (
                        "seq",
                        desc(
                            seq(),
                            "delivered and read only (durable); queued is a reply",
                        ),
                    ),
                    ("chat_id", r("ChatId")),
                    ("client_id", r("ClientId")),
                    (
                        "duplicate",
                        desc(exactly(json!(true)), "a repeated client_id"),
                    ),
                    ("self", self_copy()),
                ],
            );
            let slow = frame(
                kind,
                &[
                    ("status", exactly(json!("rate_limited"))),
                    ("chat_id", nullable(r("ChatId"))),
                    ("client_id", nullable(string())),
                    ("retry_after", desc(int(), "seconds")),
                    ("ts", r("Timestamp")),
                ],
                &[],
            );
            (
                json!({"oneOf": [status, slow]}),
                "A message's status: queued (reply), delivered / read (durable), or rate_limited (slow mode)",
            )
        }
        "gap" => (
            frame(
                kind,
                &[
                    ("seq", seq()),
                    ("from_seq", int()),
                    ("to_seq", int()),
                    ("count", int()),
                    ("reason", one_of(&["overflow", "expired"])),
                    ("ts", r("Timestamp")),
                ],
                &[],
            ),
            "Queue entries that were dropped (durable)",
        ),
        "subscription_request" => (contact_event(kind, true), "A contact request (durable)"),
        "subscription_confirmed" => (
            contact_event(kind, true),
            "A contact request was accepted (durable)",
        ),
        "subscription_removed" => (
            contact_event(kind, false),
            "A contact relationship or request ended (durable)",
        ),
        "edit" => (
            message_event(kind, &[("payload", string())]),
            "A message's payload was replaced (durable)",
        ),
        "delete" => (message_event(kind, &[]), "A message was deleted (durable)"),
        "pin" => (
            message_event(kind, &[("pinned", boolean())]),
            "A message was pinned or unpinned (durable)",
        ),
        "react" => (
            message_event(
                kind,
                &[(
                    "reaction",
                    desc(string(), "empty: the reaction was removed"),
                )],
            ),
            "A reaction was set or removed (durable)",
        ),
        "chat_member" => (
            frame(
                kind,
                &[
                    ("seq", seq()),
                    ("chat_id", r("ChatId")),
                    ("user_id", r("Uid")),
                    (
                        "action",
                        one_of(&["added", "removed", "left", "role_changed"]),
                    ),
                    ("role", one_of(&["owner", "admin", "member"])),
                    ("by", r("Uid")),
                    ("ts", r("Timestamp")),
                ],
                &[],
            ),
            "Chat membership changed (durable)",
        ),
        "key_changed" => (
            frame(
                kind,
                &[
                    ("seq", seq()),
                    ("user_id", r("Uid")),
                    ("public_e2e_key", string()),
                    ("ts", r("Timestamp")),
                ],
                &[],
            ),
            "A contact's public key changed (durable)",
        ),
        "pong" => (
            frame(
                kind,
                &[
                    (
                        "contacts_status",
                        desc(
                            json!({"type": "object", "additionalProperties": r("ContactStatus")}),
                            "uid → status, one entry per accepted contact",
                        ),
                    ),
                    ("server_version", string()),
                    ("timestamp", r("Timestamp")),
                ],
                &[],
            ),
            "The reply to ping",
        ),
        "sync_done" => (
            frame(
                kind,
                &[
                    ("count", int()),
                    ("last_seq", int()),
                    ("ts", r("Timestamp")),
                ],
                &[],
            ),
            "The backlog has been sent",
        ),
        "error" => (
            frame(
                kind,
                &[
                    ("reason", one_of(&ws_reasons)),
                    ("message", desc(string(), "English, not stable")),
                    (
                        "ref",
                        desc(
                            nullable(string()),
                            "the refused frame's client_id, else its type, else null",
                        ),
                    ),
                ],
                &[],
            ),
            "A refused frame",
        ),
        "history" => (
            frame(
                kind,
                &[
                    ("target", nullable(r("Uid"))),
                    ("chat_id", nullable(r("ChatId"))),
                    ("messages", array(string())),
                    ("items", array(r("HistoryItem"))),
                    ("has_more", boolean()),
                    ("next_before", nullable(r("MessageId"))),
                ],
                &[],
            ),
            "The reply to get_history",
        ),
        "status_change" => (
            frame(
                kind,
                &[
                    ("user_id", r("Uid")),
                    ("status", one_of(&["online", "away", "offline"])),
                    ("timestamp", r("Timestamp")),
                ],
                &[],
            ),
            "A contact's presence changed",
        ),
        "typing_start" | "typing_stop" => (
            frame(
                kind,
                &[
                    ("user_id", r("Uid")),
                    ("chat_id", nullable(r("ChatId"))),
                    ("timestamp", r("Timestamp")),
                ],
                &[],
            ),
            "A peer's typing indication",
        ),
        "messages_read" => (
            frame(
                kind,
                &[
                    ("user_id", r("Uid")),
                    ("chat_id", r("ChatId")),
                    ("last_read_message_id", r("MessageId")),
                    ("timestamp", r("Timestamp")),
                ],
                &[],
            ),
            "A member's read marker moved",
        ),
        "call_state" => (
            frame(
                kind,
                &[
                    ("call_id", string()),
                    (
                        "state",
                        one_of(&[
                            "ringing",
                            "busy",
                            "missed",
                            "accepted",
                            "answered_elsewhere",
                            "rejected",
                            "connected",
                            "ended",
                        ]),
                    ),
                    ("from", r("Uid")),
                    ("to", r("Uid")),
                    ("ts", r("Timestamp")),
                ],
                &[("reason", one_of(&["connection_lost", "session_revoked"]))],
            ),
            "A call changed state",
        ),
        _ => return None,
    })
}
