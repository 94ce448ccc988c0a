//! The `/openapi.json` entries of scheduled messages (docs/scheduled-messages.md): the three
//! operations and the `ScheduledMessage` component.

use serde_json::{json, Value};

use super::openapi::{delete, get, post, Op};
use super::openapi_schemas::{array, desc, exactly, int, nullable, obj, obj2, r, string};

/// `POST /schedule/message`, `GET /schedule`, `DELETE /schedule/{schedule_id}`.
pub(super) fn ops() -> Vec<Op> {
    vec![
        post("/schedule/message")
            .json(obj2(
                &[
                    (
                        "when",
                        desc(
                            r("Timestamp"),
                            "RFC 3339 (no offset: UTC); after now, at most 30 days ahead",
                        ),
                    ),
                    (
                        "data",
                        desc(
                            json!({"anyOf": [r("Payload"), {"type": "object"}]}),
                            "the payload; an object is sent as its JSON text (1 byte to 1 MiB)",
                        ),
                    ),
                ],
                &[
                    (
                        "target_id",
                        desc(
                            nullable(r("Uid")),
                            "DM recipient; exactly one of target_id / chat_id",
                        ),
                    ),
                    ("chat_id", nullable(r("ChatIdInput"))),
                    (
                        "client_id",
                        desc(
                            nullable(r("ClientId")),
                            "idempotency key: repeated by the same device while pending, the first schedule_id",
                        ),
                    ),
                    (
                        "signature",
                        desc(nullable(string()), "opaque, passed to recipients"),
                    ),
                ],
            ))
            .ok(obj(&[
                ("status", exactly(json!("ok"))),
                ("schedule_id", r("ScheduleId")),
            ])),
        get("/schedule").paged(50).ok(obj(&[
            (
                "items",
                desc(array(r("ScheduledMessage")), "pending, due soonest first"),
            ),
            ("page", int()),
            ("per_page", int()),
            ("total", int()),
            ("pages", int()),
        ])),
        delete("/schedule/{schedule_id}")
            .path_param(
                "schedule_id",
                r("ScheduleId"),
                "a pending scheduled message of the caller (else 404 schedule_not_found)",
            )
            .ok(obj(&[("status", exactly(json!("ok")))])),
    ]
}

/// The components of these operations, added through `add`.
pub(super) fn components(add: &mut dyn FnMut(&str, Value)) {
    add(
        "ScheduleId",
        json!({"type": "string", "pattern": "^[0-9a-fA-F]{32}$",
        "description": "UUIDv7 without dashes, lowercase on output"}),
    );
    add(
        "ScheduledMessage",
        obj(&[
            ("schedule_id", r("ScheduleId")),
            ("target_id", nullable(r("Uid"))),
            ("chat_id", nullable(r("ChatId"))),
            ("when", desc(r("Timestamp"), "when it is sent")),
            ("created_at", r("Timestamp")),
            ("data", desc(r("Payload"), "the payload as it will be sent")),
            ("signature", nullable(string())),
            ("client_id", nullable(r("ClientId"))),
        ]),
    );
}
