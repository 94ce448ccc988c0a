//! The client contract stays complete and true, over a real server:
//!
//! - `/asyncapi.json` is a valid AsyncAPI 3.0.0 document (checked against the official JSON
//!   Schema, vendored in tests/fixtures/asyncapi/), has a message per frame type, and the frames
//!   a real session exchanges match it: every client type it lists is one the server decodes,
//!   and every server frame received validates against its schema, with no undocumented field.
//! - docs/protocol.md names every route of `/openapi.json`, every frame type of
//!   `/asyncapi.json` (in its frame index, with its direction), and every error reason of both.
//!
//! Both lists come from the served documents, which the server builds from its route table and
//! its typed frames; so a new route, frame or error code fails here until it is documented.

mod common;

use std::collections::BTreeSet;

use common::realtime::{pair, Target};
use common::ws::{is, WsClient, WAIT};
use common::TestServer;
use serde_json::{json, Value};

const PROTOCOL_MD: &str = include_str!("../docs/protocol.md");
const ASYNCAPI_SCHEMA: &str = include_str!("fixtures/asyncapi/3.0.0-without-id.json");

async fn asyncapi(s: &TestServer) -> Value {
    let r = s.client.get("/asyncapi.json", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json")));
    r.body
}

/// (direction, wire type) of every message of the document, from its two operations.
fn frames_of(doc: &Value) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (op, side) in [
        ("receiveClientFrame", "client"),
        ("sendServerFrame", "server"),
    ] {
        let refs = doc["operations"][op]["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("{op}.messages"));
        for m in refs {
            let reference = m["$ref"].as_str().expect("message $ref");
            let key = reference
                .strip_prefix("#/channels/ws/messages/")
                .expect("a message of the ws channel");
            let message = &doc["components"]["messages"][key];
            let kind = message["name"].as_str().expect("message name");
            assert_eq!(key, format!("{side}.{kind}"), "{op}: {reference}");
            out.push((side, kind.to_owned()));
        }
    }
    out
}

/// A validator of the component schema `name` of `doc` (references resolve inside `doc`).
fn validator(doc: &Value, name: &str) -> jsonschema::Validator {
    let root = json!({
        "$ref": format!("#/components/schemas/{name}"),
        "components": {"schemas": doc["components"]["schemas"]},
    });
    jsonschema::draft7::new(&root).unwrap_or_else(|e| panic!("schema {name}: {e}"))
}

/// The property names a schema allows (the union over `oneOf` alternatives).
fn properties(schema: &Value) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = schema["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.clone())
        .collect();
    for alt in schema["oneOf"].as_array().into_iter().flatten() {
        out.extend(properties(alt));
    }
    out
}

#[tokio::test]
async fn asyncapi_is_valid_asyncapi_3_and_matches_the_socket() {
    let s = TestServer::start().await;
    let doc = asyncapi(&s).await;

    // Valid against the official AsyncAPI 3.0.0 JSON Schema.
    let meta: Value = serde_json::from_str(ASYNCAPI_SCHEMA).expect("vendored schema");
    let spec = jsonschema::draft7::new(&meta).expect("the AsyncAPI schema compiles");
    let problems: Vec<String> = spec
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        problems.is_empty(),
        "not AsyncAPI 3.0.0:\n{}",
        problems.join("\n")
    );
    // The validator is not vacuous: a document without `info` is refused.
    let mut broken = doc.clone();
    broken.as_object_mut().expect("object").remove("info");
    assert!(!spec.is_valid(&broken), "a document without info passed");

    // Listed in the OpenAPI document, and one channel for the socket.
    let openapi = s.client.get("/openapi.json", None).await.body;
    assert!(openapi["paths"]["/asyncapi.json"]["get"].is_object());
    assert_eq!(doc["channels"]["ws"]["address"], "/ws");
    assert_eq!(doc["operations"]["receiveClientFrame"]["action"], "receive");
    assert_eq!(doc["operations"]["sendServerFrame"]["action"], "send");

    let frames = frames_of(&doc);
    let client: Vec<&str> = frames
        .iter()
        .filter(|(side, _)| *side == "client")
        .map(|(_, k)| k.as_str())
        .collect();
    let server: BTreeSet<&str> = frames
        .iter()
        .filter(|(side, _)| *side == "server")
        .map(|(_, k)| k.as_str())
        .collect();
    // Every message has a payload schema with its `type` as a constant.
    for (side, kind) in &frames {
        let schema = &doc["components"]["schemas"][format!("{side}.{kind}")];
        let alternatives: Vec<&Value> = match schema["oneOf"].as_array() {
            Some(alts) if schema["properties"].is_null() => alts.iter().collect(),
            _ => vec![schema],
        };
        for alt in alternatives {
            assert_eq!(
                alt["properties"]["type"]["const"],
                json!(kind),
                "{side}.{kind}"
            );
            assert!(
                alt["required"]
                    .as_array()
                    .is_some_and(|r| r.contains(&json!("type"))),
                "{side}.{kind}: type is required"
            );
        }
    }
    for must in ["ping", "relay", "ack_received", "call_start"] {
        assert!(client.contains(&must), "client frame {must}");
    }
    for must in [
        "pong",
        "relay_delivery",
        "msg_status",
        "sync_done",
        "error",
        "call_state",
    ] {
        assert!(server.contains(must), "server frame {must}");
    }

    let t = Target::new(s.client.clone(), s.addr, s.ws_addr);
    let (a, b) = pair(&t, "Alice", "Bob").await;
    let mut ws_a = WsClient::open(s.addr, &a.token).await;
    let mut ws_b = WsClient::open(s.addr, &b.token).await;
    let mut seen: Vec<Value> = Vec::new();
    for ws in [&mut ws_a, &mut ws_b] {
        seen.push(ws.recv_type("sync_done", WAIT).await);
    }

    // Every client type the document lists is decoded by the server (a bare frame is answered,
    // never with `unknown_type`), and a type it does not list is `unknown_type`.
    for kind in &client {
        ws_a.send_json(&json!({"type": kind})).await;
        let reply = ws_a
            .recv_where(
                &format!("the answer to a bare {kind}"),
                |f| is(f, "pong") || (is(f, "error") && f["ref"] == *kind),
                WAIT,
            )
            .await;
        assert_ne!(
            reply["reason"], "unknown_type",
            "{kind} is documented but unknown"
        );
        seen.push(reply);
    }
    ws_a.send_json(&json!({"type": "not_a_documented_frame"}))
        .await;
    let unknown = ws_a.recv_type("error", WAIT).await;
    assert_eq!(unknown["reason"], "unknown_type", "{unknown}");
    seen.push(unknown);

    // A short session: message, delivery, receipt, typing, history, a call that is refused.
    ws_a.send_json(
        &json!({"type": "relay", "target": b.uid, "payload": "p-1", "client_id": "c-1"}),
    )
    .await;
    seen.push(ws_a.recv_type("msg_status", WAIT).await);
    let delivery = ws_b.recv_type("relay_delivery", WAIT).await;
    ws_b.send_json(&json!({"type": "ack_received", "message_id": delivery["message_id"]}))
        .await;
    seen.push(delivery);
    seen.push(ws_a.recv_type("msg_status", WAIT).await);
    ws_a.send_json(&json!({"type": "typing_start", "target": b.uid}))
        .await;
    seen.push(ws_b.recv_type("typing_start", WAIT).await);
    ws_a.send_json(&json!({"type": "get_history", "target": b.uid, "limit": 5}))
        .await;
    seen.push(ws_a.recv_type("history", WAIT).await);
    ws_a.send_json(&json!({"type": "call_start", "target": b.uid, "media": "audio"}))
        .await;
    seen.push(ws_a.recv_type("call_state", WAIT).await);
    seen.push(ws_b.recv_type("call_start", WAIT).await);
    ws_b.send_json(&json!({"type": "call_reject", "target": a.uid}))
        .await;
    seen.push(
        ws_a.recv_where(
            "call_state rejected",
            |f| is(f, "call_state") && f["state"] == "rejected",
            WAIT,
        )
        .await,
    );

    // Durable message events, made over HTTP, reach the peer's socket.
    let mid = seen
        .iter()
        .find(|f| is(f, "relay_delivery"))
        .map(|f| f["message_id"].clone())
        .expect("a delivery");
    for (route, extra, event) in [
        ("/messages/pin", json!({"pinned": true}), "pin"),
        ("/messages/react", json!({"reaction": "+1"}), "react"),
        ("/messages/edit", json!({"new_data": "p-2"}), "edit"),
        ("/messages/delete", json!({}), "delete"),
    ] {
        let mut body = json!({"message_id": mid});
        body.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        let r = s.client.post(route, Some(&a.token), &body).await;
        assert_eq!(r.status, 200, "{route}: {}", r.body);
        seen.push(ws_b.recv_type(event, WAIT).await);
    }

    // Every server frame received is documented, validates, and has no undocumented field.
    for frame in &seen {
        let kind = frame["type"].as_str().expect("type");
        assert!(
            server.contains(kind),
            "server frame {kind} is not documented: {frame}"
        );
        let name = format!("server.{kind}");
        let v = validator(&doc, &name);
        let errors: Vec<String> = v.iter_errors(frame).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{frame} against {name}: {errors:?}");
        let allowed = properties(&doc["components"]["schemas"][&name]);
        for key in frame.as_object().expect("object").keys() {
            assert!(
                allowed.contains(key),
                "{kind}.{key} is not documented: {frame}"
            );
        }
    }
    let kinds: BTreeSet<&str> = seen.iter().filter_map(|f| f["type"].as_str()).collect();
    assert!(
        kinds.len() >= 9,
        "the session saw too few frame types: {kinds:?}"
    );
    ws_a.close().await;
    ws_b.close().await;
    s.stop().await;
}

/// The text of docs/protocol.md from the heading starting with `from` to the next heading of
/// the same or a higher level.
fn section(heading: &str) -> &'static str {
    let start = PROTOCOL_MD
        .find(&format!("\n{heading}"))
        .unwrap_or_else(|| panic!("docs/protocol.md has no heading {heading:?}"));
    let level = heading.chars().take_while(|c| *c == '#').count();
    let rest = &PROTOCOL_MD[start + 1..];
    let end = rest[1..]
        .match_indices('\n')
        .map(|(i, _)| i + 2)
        .find(|i| {
            let line = &rest[*i..];
            let hashes = line.chars().take_while(|c| *c == '#').count();
            (1..=level).contains(&hashes) && line[hashes..].starts_with(' ')
        })
        .unwrap_or(rest.len());
    &rest[..end]
}

#[tokio::test]
async fn protocol_md_names_every_route_frame_and_error() {
    let s = TestServer::start().await;
    let openapi = s.client.get("/openapi.json", None).await.body;
    let doc = asyncapi(&s).await;
    let mut missing = Vec::new();

    // Routes, as `METHOD /path`, in the REST section.
    let rest = section("## 4.");
    let paths = openapi["paths"].as_object().expect("paths");
    assert!(paths.len() > 50, "too few paths: {}", paths.len());
    for (path, item) in paths {
        for method in item.as_object().expect("path item").keys() {
            let needle = format!("`{} {path}`", method.to_ascii_uppercase());
            if !rest.contains(&needle) {
                missing.push(format!("route {needle}"));
            }
        }
    }

    // Frames, each with its direction, in the frame index.
    let index = section("### 5.8");
    let frames = frames_of(&doc);
    assert!(frames.len() > 40, "too few frames: {}", frames.len());
    for (side, kind) in &frames {
        let direction = if *side == "client" {
            "client → server"
        } else {
            "server → client"
        };
        let row = format!("| `{kind}` |");
        let ok = index.lines().any(|l| {
            l.starts_with(&row) && (l.contains(direction) || l.contains("both directions"))
        });
        if !ok {
            missing.push(format!("frame {kind} ({direction}) in the §5.8 index"));
        }
    }

    // Every HTTP error reason and every socket error reason, in the errors section.
    let errors = section("## 2.");
    let reasons = openapi["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
        ["reason"]["enum"]
        .as_array()
        .expect("Error.reason enum");
    let ws_reasons = doc["components"]["schemas"]["server.error"]["properties"]["reason"]["enum"]
        .as_array()
        .expect("server.error reason enum");
    assert!(reasons.len() > 30 && ws_reasons.len() > 10);
    for reason in reasons.iter().chain(ws_reasons) {
        let needle = format!("`{}`", reason.as_str().expect("string"));
        if !errors.contains(&needle) {
            missing.push(format!("error reason {needle}"));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/protocol.md does not name:\n{}",
        missing.join("\n")
    );

    // No pointer to documents outside the repository.
    for outside in ["PROTOCOL.md", "DESIGN.md", "../shared"] {
        assert!(
            !PROTOCOL_MD.contains(outside),
            "docs/protocol.md mentions {outside}"
        );
    }
    s.stop().await;
}
