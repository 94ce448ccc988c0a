//! `GET /asyncapi.json`: the AsyncAPI 3.0.0 document of the WebSocket (docs/protocol.md §5),
//! built once at startup like `/openapi.json`.
//!
//! The frame types come from the code: [`frames::client_types`] (what the decoder accepts) and
//! [`frames::server_types`] (what the server sends), whose unit tests tie them to the frame
//! enums with exhaustive matches. Each type needs a schema here ([`client_schema`],
//! [`server_schema`](super::openapi_asyncapi_server::server_schema)); a type without one stops the document from building, so the server
//! refuses to start and every test fails until the new frame is described.
//!
//! The document describes the server: it `receive`s client frames and `send`s server frames,
//! both on the one channel `/ws`. A type both sides use (`typing_start`, the call frames) is
//! one message per direction, named `client.<type>` and `server.<type>`.

use serde_json::{json, Map, Value};

use super::openapi_schemas::{desc, exactly, obj2, one_of, r, string};
use crate::service::frames;
use crate::service::frames::call::{MAX_CALL_FRAME, MAX_SDP};

use super::openapi_asyncapi_server::server_schema;

/// The shared schemas the frame schemas reference (taken from the OpenAPI components).
const SHARED: [&str; 9] = [
    "Uid",
    "MessageId",
    "ChatId",
    "ChatIdInput",
    "ClientId",
    "Timestamp",
    "Payload",
    "HistoryItem",
    "ContactStatus",
];

pub(super) fn ty(kind: &str) -> Value {
    exactly(json!(kind))
}

/// A frame: `type`, the `required` fields, the `optional` ones.
pub(super) fn frame(kind: &str, required: &[(&str, Value)], optional: &[(&str, Value)]) -> Value {
    let mut req = vec![("type", ty(kind))];
    req.extend(required.iter().cloned());
    obj2(&req, optional)
}

/// `target` xor `chat_id` plus `fields`, with the optional `client_id`.
pub(super) fn addressed(kind: &str, fields: &[(&str, Value)], optional: &[(&str, Value)]) -> Value {
    let mut opt = vec![
        (
            "target",
            desc(r("Uid"), "DM peer; exactly one of target / chat_id"),
        ),
        ("chat_id", r("ChatIdInput")),
        ("client_id", r("ClientId")),
    ];
    opt.extend(optional.iter().cloned());
    let mut f = frame(kind, fields, &opt);
    f["oneOf"] = json!([{"required": ["target"]}, {"required": ["chat_id"]}]);
    f
}

pub(super) fn seq() -> Value {
    desc(
        json!({"type": "integer", "minimum": 1}),
        "the device's sequence number: acknowledge it",
    )
}

pub(super) fn self_copy() -> Value {
    desc(
        exactly(json!(true)),
        "present on copies for the acting user's other devices",
    )
}

pub(super) fn call_payload() -> Value {
    obj2(
        &[],
        &[
            (
                "signal",
                one_of(&[
                    "offer",
                    "answer",
                    "candidate",
                    "ice",
                    "ringing",
                    "accept",
                    "reject",
                    "hangup",
                ]),
            ),
            ("sdp", json!({"type": "string", "maxLength": MAX_SDP})),
            ("candidate", json!({"type": "object"})),
            ("media", one_of(&["audio", "video"])),
        ],
    )
}

/// The optional fields of a call frame, both directions.
pub(super) fn call_fields() -> Vec<(&'static str, Value)> {
    vec![
        ("media", one_of(&["audio", "video"])),
        ("payload", call_payload()),
        (
            "sdp",
            desc(
                json!({"type": "string", "maxLength": MAX_SDP}),
                "at most 64 KiB",
            ),
        ),
        (
            "candidate",
            desc(json!({"type": "object"}), "an ICE candidate, opaque"),
        ),
        ("client_id", r("ClientId")),
    ]
}

/// The schema and summary of client → server frame `kind`; `None` for a type not described.
pub(crate) fn client_schema(kind: &str) -> Option<(Value, &'static str)> {
    if frames::call::CallKind::of(kind).is_some() {
        let mut optional = vec![(
            "call_id",
            desc(string(), "the active call's id, when known"),
        )];
        optional.extend(call_fields());
        let mut f = frame(kind, &[("target", desc(r("Uid"), "the peer"))], &optional);
        f["description"] = json!(format!(
            "Call signalling; the whole frame is at most {MAX_CALL_FRAME} bytes, fields not listed are dropped"
        ));
        return Some((f, "Call signalling (docs/protocol.md §5.7)"));
    }
    Some(match kind {
        "ping" => (
            frame(kind, &[], &[("client_id", r("ClientId"))]),
            "Keep-alive; answered by pong",
        ),
        "relay" => (
            addressed(
                kind,
                &[("payload", r("Payload"))],
                &[("signature", desc(string(), "opaque, passed to recipients"))],
            ),
            "Send a message whose payload is a string; answered by msg_status queued",
        ),
        "chat_message" => {
            let mut f = addressed(kind, &[], &[]);
            f["additionalProperties"] = json!(true);
            (
                f,
                "Send a message whose payload is this frame's exact text; answered by msg_status queued",
            )
        }
        "get_history" => (
            addressed(
                kind,
                &[],
                &[
                    ("before", desc(r("MessageId"), "older than this message")),
                    (
                        "limit",
                        json!({"type": "integer", "minimum": 1, "maximum": 100, "default": 50}),
                    ),
                ],
            ),
            "Read history (cursor mode); answered by history",
        ),
        "ack_received" => {
            let mut f = frame(
                kind,
                &[],
                &[
                    ("message_id", r("MessageId")),
                    ("seq", json!({"type": "integer"})),
                    (
                        "up_to_seq",
                        desc(
                            json!({"type": "integer"}),
                            "every sent entry with a seq up to this one",
                        ),
                    ),
                    ("client_id", r("ClientId")),
                ],
            );
            f["anyOf"] = json!([{"required": ["message_id"]}, {"required": ["seq"]}, {"required": ["up_to_seq"]}]);
            (f, "Acknowledge durable frames; no reply")
        }
        "ack_read" => (
            frame(
                kind,
                &[("message_id", r("MessageId"))],
                &[("client_id", r("ClientId"))],
            ),
            "Mark a received message read; no reply",
        ),
        "typing_start" | "typing_stop" => (
            addressed(kind, &[], &[]),
            "Typing indication to the peer or the chat; no reply",
        ),
        "presence" => (
            frame(
                kind,
                &[("status", one_of(&["online", "away"]))],
                &[("client_id", r("ClientId"))],
            ),
            "Set this socket active or away; no reply",
        ),
        _ => return None,
    })
}

/// A frame type's schema and summary, `None` for a type not described.
type SchemaOf = fn(&str) -> Option<(Value, &'static str)>;

/// The AsyncAPI 3.0.0 document of the socket; an error names every frame type without a schema.
pub(crate) fn document(version: &str) -> Result<Value, String> {
    let mut messages = Map::new();
    let mut schemas = Map::new();
    let mut channel_messages = Map::new();
    let mut receive = Vec::new();
    let mut send = Vec::new();
    let mut missing = Vec::new();
    let sides: [(&str, Vec<&'static str>, SchemaOf); 2] = [
        ("client", frames::client_types().collect(), client_schema),
        ("server", frames::server_types().collect(), server_schema),
    ];
    for (side, kinds, schema_of) in sides {
        for kind in kinds {
            let Some((schema, summary)) = schema_of(kind) else {
                missing.push(format!("{side} frame {kind}"));
                continue;
            };
            let name = format!("{side}.{kind}");
            schemas.insert(name.clone(), schema);
            messages.insert(
                name.clone(),
                json!({
                    "name": kind,
                    "title": format!("{kind} ({side} → {})", if side == "client" { "server" } else { "client" }),
                    "summary": summary,
                    "contentType": "application/json",
                    "payload": {"$ref": format!("#/components/schemas/{name}")},
                }),
            );
            channel_messages.insert(
                name.clone(),
                json!({"$ref": format!("#/components/messages/{name}")}),
            );
            let reference = json!({"$ref": format!("#/channels/ws/messages/{name}")});
            if side == "client" {
                receive.push(reference);
            } else {
                send.push(reference);
            }
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "AsyncAPI: no schema in openapi_asyncapi.rs for {}",
            missing.join(", ")
        ));
    }
    let shared = super::openapi_components::components();
    for name in SHARED {
        let Some(s) = shared.get(name) else {
            return Err(format!("AsyncAPI: shared schema {name} is gone"));
        };
        schemas.insert(name.to_owned(), s.clone());
    }
    Ok(json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Melo WebSocket",
            "version": version,
            "description": "The frames of the Melo socket, both directions, described from the \
                server's side: it receives client frames and sends server frames. Every frame is \
                one JSON object in a text frame with a string `type`. Durable frames carry `seq` \
                and must be acknowledged (ack_received). The REST API is /openapi.json; the \
                delivery model and errors are in docs/protocol.md.",
        },
        "defaultContentType": "application/json",
        "channels": {
            "ws": {
                "address": "/ws",
                "title": "The socket",
                "description": "GET /ws on the HTTP port (any path on the WebSocket port). \
                    Token: Authorization: Bearer <token>, else the query parameter token.",
                "messages": channel_messages,
                "bindings": {"ws": {
                    "method": "GET",
                    "query": {"type": "object", "properties": {
                        "token": {"type": "string", "description": "access token, when no Authorization header"}}},
                    "bindingVersion": "0.1.0",
                }},
            },
        },
        "operations": {
            "receiveClientFrame": {
                "action": "receive",
                "channel": {"$ref": "#/channels/ws"},
                "title": "Client → server frames",
                "security": [{"$ref": "#/components/securitySchemes/bearer"},
                             {"$ref": "#/components/securitySchemes/queryToken"}],
                "messages": receive,
            },
            "sendServerFrame": {
                "action": "send",
                "channel": {"$ref": "#/channels/ws"},
                "title": "Server → client frames",
                "messages": send,
            },
        },
        "components": {
            "schemas": schemas,
            "messages": messages,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "queryToken": {"type": "httpApiKey", "name": "token", "in": "query"},
            },
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_frame_type_has_a_schema() {
        let doc = document("test").expect("document");
        let messages = doc["components"]["messages"].as_object().expect("messages");
        for kind in frames::client_types() {
            assert!(messages.contains_key(&format!("client.{kind}")), "{kind}");
        }
        for kind in frames::server_types() {
            assert!(messages.contains_key(&format!("server.{kind}")), "{kind}");
        }
        assert_eq!(
            messages.len(),
            frames::client_types().count() + frames::server_types().count()
        );
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document("test").expect("document");
        let text = doc.to_string();
        for part in text.split("\"$ref\":\"#/").skip(1) {
            let path: String = part.chars().take_while(|c| *c != '"').collect();
            let mut at = &doc;
            for seg in path.split('/') {
                at = &at[seg];
            }
            assert!(!at.is_null(), "unresolved #/{path}");
        }
    }
}
