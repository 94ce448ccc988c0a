//! `GET /openapi.json`, `/docs` and `/redoc` over a real socket (PROTOCOL §4.1): the document
//! lists exactly the routes below, each with real schemas, and every listed route is served.

mod common;

use std::collections::BTreeSet;

use common::TestServer;
use http::Method;
use serde_json::{json, Value};

/// Every operation the server serves, written out by hand from PROTOCOL §4 and the route table:
/// adding or removing a route without updating this list (and the schema table) fails.
const OPERATIONS: &[(&str, &str)] = &[
    // §4.1
    ("GET", "/"),
    ("GET", "/status"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/public_key"),
    ("GET", "/encryption_public_key"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/openapi.json"),
    ("GET", "/asyncapi.json"),
    ("GET", "/docs"),
    ("GET", "/redoc"),
    ("GET", "/vapid_public_key"),
    // §4.2
    ("POST", "/register"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/csrf_token"),
    ("GET", "/sessions"),
    ("DELETE", "/sessions/{session_id}"),
    ("POST", "/sessions/revoke_all"),
    ("POST", "/sessions/terminate_all"),
    ("POST", "/devices/register"),
    ("POST", "/devices/refresh"),
    ("POST", "/devices/revoke"),
    ("POST", "/devices/link_code"),
    ("POST", "/devices/authorize"),
    // §4.3
    ("POST", "/e2e/public_key"),
    ("POST", "/e2e/secret_key"),
    ("GET", "/e2e/secret_key"),
    ("GET", "/profile"),
    ("PUT", "/profile"),
    ("POST", "/avatar/upload"),
    ("DELETE", "/avatar"),
    ("GET", "/avatar/{user_unique_id}"),
    // §4.4
    ("POST", "/subscribe"),
    ("POST", "/confirm_subscribe"),
    ("POST", "/reject_subscribe"),
    ("POST", "/unsubscribe"),
    ("GET", "/contacts"),
    ("GET", "/contacts/requests"),
    // §4.5
    ("GET", "/statuses"),
    ("GET", "/status/me"),
    ("GET", "/status/contacts"),
    ("POST", "/status/online"),
    ("POST", "/status/offline"),
    ("POST", "/status/typing"),
    ("POST", "/status/read"),
    // §4.6 and §5.1
    ("GET", "/ws"),
    ("POST", "/messages/send"),
    ("GET", "/messages/history/dm/{target_id}"),
    ("GET", "/messages/history/chat/{chat_id}"),
    ("GET", "/history/{target_id}"),
    ("POST", "/messages/edit"),
    ("POST", "/messages/delete"),
    ("POST", "/messages/pin"),
    ("POST", "/messages/react"),
    // §4.7
    ("POST", "/chats/create"),
    ("GET", "/chats/list"),
    ("POST", "/chats/set_public"),
    ("POST", "/chats/set_slow_mode"),
    ("GET", "/chats/by_invite/{code}"),
    ("GET", "/chats/members"),
    ("POST", "/chats/leave"),
    ("POST", "/chats/members/add"),
    ("POST", "/chats/members/remove"),
    ("POST", "/chats/members/role"),
    ("POST", "/invites/create"),
    ("POST", "/invites/join"),
    // §4.8, §4.9
    ("GET", "/ice_servers"),
    ("POST", "/register_push"),
    // Account deletion and export (issue 17, docs/accounts.md)
    ("DELETE", "/account"),
    ("GET", "/account/export"),
    // Scheduled messages (§4.6, docs/scheduled-messages.md)
    ("POST", "/schedule/message"),
    ("GET", "/schedule"),
    ("DELETE", "/schedule/{schedule_id}"),
];

/// Routes the wire contract defines that this build does not serve yet. Serving one means moving it
/// to `OPERATIONS` (and giving it a schema entry).
const PROTOCOL_NOT_SERVED: &[(&str, &str)] = &[];

/// `path` with dummy values for its parameters.
fn concrete(path: &str) -> String {
    path.replace("{session_id}", "1")
        .replace("{user_unique_id}", "12345678")
        .replace("{target_id}", "12345678")
        .replace("{chat_id}", "1")
        .replace("{code}", "AAAAAAAAAAAAAA")
        .replace("{schedule_id}", "0193a1b2c3d4e5f60718293a4b5c6d7e")
}

fn method(m: &str) -> Method {
    Method::from_bytes(m.as_bytes()).expect("method")
}

/// The router's own "no route" answer for `m path`.
fn is_no_route(r: &common::Resp, m: &str, path: &str) -> bool {
    r.status == 404
        && r.reason() == "not_found"
        && r.body["error"]["message"] == format!("No route for {m} {path}")
}

#[tokio::test]
async fn openapi_documents_exactly_the_served_routes_with_schemas() {
    let s = TestServer::start().await;
    let c = &s.client;

    // How the router answers an unknown path, which no listed route may get.
    let unknown = c.get("/definitely-not-a-route", None).await;
    unknown.assert_error(404, "not_found");
    assert!(is_no_route(&unknown, "GET", "/definitely-not-a-route"));

    let r = c.get("/openapi.json", None).await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json")));
    let doc = r.body;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .map(move |m| (m.to_ascii_uppercase(), path.clone()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = OPERATIONS
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        expected.len(),
        OPERATIONS.len(),
        "OPERATIONS has duplicates"
    );
    assert_eq!(
        documented.difference(&expected).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not in OPERATIONS"
    );
    assert_eq!(
        expected.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "in OPERATIONS but not documented"
    );

    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    assert!(schemas.contains_key("Error"));
    for (m, path) in OPERATIONS {
        let op = &doc["paths"][path][m.to_ascii_lowercase()];
        let responses = op["responses"].as_object().expect("responses");
        assert_eq!(
            responses["default"]["content"]["application/json"]["schema"],
            json!({"$ref": "#/components/schemas/Error"}),
            "{m} {path}: error envelope"
        );
        let success: Vec<(&String, &Value)> = responses
            .iter()
            .filter(|(code, _)| code.starts_with(['1', '2', '3']))
            .collect();
        assert!(!success.is_empty(), "{m} {path}: no success response");
        if *path != "/ws" {
            assert!(
                responses["200"]["content"].is_object(),
                "{m} {path}: 200 has a body"
            );
        }
        for (code, resp) in &success {
            for (ct, media) in resp["content"].as_object().into_iter().flatten() {
                let schema = &media["schema"];
                assert!(schema.is_object(), "{m} {path} {code} {ct}: schema");
                if ct.starts_with("application/json") {
                    assert_ne!(
                        *schema,
                        json!({"type": "object"}),
                        "{m} {path} {code}: bare object"
                    );
                    let resolved = match schema["$ref"].as_str() {
                        Some(r) => {
                            let name = r.trim_start_matches("#/components/schemas/");
                            schemas
                                .get(name)
                                .unwrap_or_else(|| panic!("{m} {path}: {r}"))
                        }
                        None => schema,
                    };
                    assert!(
                        resolved["properties"].is_object(),
                        "{m} {path} {code}: JSON response without properties"
                    );
                }
            }
        }
        // Declared path parameters are exactly the template's.
        let declared: Vec<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        let wanted: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        assert_eq!(declared, wanted, "{m} {path}: path parameters");
    }

    // A few shapes in detail, against PROTOCOL §4.
    let register = &doc["paths"]["/register"]["post"];
    let body = &register["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(
        body["required"],
        json!([
            "phone",
            "name",
            "nickname",
            "password",
            "device_id",
            "public_e2e_key"
        ])
    );
    assert_eq!(
        schemas["Password"],
        json!({"type": "string", "minLength": 8, "maxLength": 128})
    );
    let history = &doc["paths"]["/messages/history/dm/{target_id}"]["get"];
    let names: Vec<&str> = history["parameters"]
        .as_array()
        .expect("params")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["target_id", "page", "per_page", "before", "limit"]);
    assert_eq!(
        history["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/HistoryPage"
    );
    let avatar = &doc["paths"]["/avatar/{user_unique_id}"]["get"]["responses"];
    assert!(avatar["200"]["content"]["image/*"].is_object());
    assert!(avatar["304"].is_object());
    assert!(doc["paths"]["/docs"]["get"]["responses"]["200"]["content"]["text/html"].is_object());
    assert!(
        doc["paths"]["/avatar/upload"]["post"]["requestBody"]["content"]["multipart/form-data"]
            .is_object()
    );
    assert_eq!(
        doc["paths"]["/profile"]["get"]["security"],
        json!([{"bearer": []}])
    );
    assert_eq!(doc["paths"]["/login"]["post"]["security"], json!([]));
    let delete = &doc["paths"]["/account"]["delete"];
    assert_eq!(
        delete["requestBody"]["content"]["application/json"]["schema"]["required"],
        json!(["password"])
    );
    assert_eq!(delete["security"], json!([{"bearer": []}]));
    let export = &schemas["AccountExport"]["properties"];
    for part in [
        "profile",
        "sessions",
        "push_registrations",
        "contacts",
        "chats",
    ] {
        assert!(export[part].is_object(), "AccountExport.{part}");
    }

    // Tags: every operation has one, and every tag used is declared with a description.
    let declared: BTreeSet<&str> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| {
            assert!(
                t["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{t}"
            );
            t["name"].as_str().expect("tag name")
        })
        .collect();
    // Error responses: every status an operation lists is an error envelope with its reasons,
    // and each reason is one of the envelope's enumerated reasons.
    let error = &schemas["Error"]["properties"]["error"]["properties"];
    let reasons: BTreeSet<&str> = error["reason"]["enum"]
        .as_array()
        .expect("Error.reason enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let codes: BTreeSet<u64> = error["code"]["enum"]
        .as_array()
        .expect("Error.code enum")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    for (m, path) in OPERATIONS {
        let op = &doc["paths"][path][m.to_ascii_lowercase()];
        let tags = op["tags"].as_array().expect("tags");
        assert!(!tags.is_empty(), "{m} {path}: no tag");
        for t in tags {
            assert!(
                declared.contains(t.as_str().expect("tag")),
                "{m} {path}: {t}"
            );
        }
        let responses = op["responses"].as_object().expect("responses");
        let errors: Vec<(&String, &Value)> = responses
            .iter()
            .filter(|(code, _)| code.starts_with(['4', '5']))
            .collect();
        // The probes take no input and are never rate limited: no 4xx is possible.
        if !["/healthz", "/readyz"].contains(path) {
            assert!(
                errors.iter().any(|(code, _)| code.starts_with('4')),
                "{m} {path}: no 4xx response"
            );
        }
        for (code, resp) in errors {
            assert_eq!(
                resp["content"]["application/json"]["schema"],
                json!({"$ref": "#/components/schemas/Error"}),
                "{m} {path} {code}"
            );
            assert!(
                codes.contains(&code.parse::<u64>().expect("status")),
                "{m} {path} {code}"
            );
            let listed = resp["x-reasons"].as_array().expect("x-reasons");
            assert!(!listed.is_empty(), "{m} {path} {code}");
            for reason in listed {
                let reason = reason.as_str().expect("reason");
                assert!(reasons.contains(reason), "{m} {path} {code}: {reason}");
            }
        }
        if doc["paths"][path][m.to_ascii_lowercase()]["security"] == json!([{"bearer": []}]) {
            assert!(
                responses["401"]["x-reasons"]
                    .as_array()
                    .is_some_and(|r| r.contains(&json!("token_revoked"))),
                "{m} {path}: a token route documents its 401s"
            );
        }
    }
    assert!(
        doc["paths"]["/register"]["post"]["responses"]["409"]["x-reasons"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("phone_taken"))),
        "POST /register documents 409 phone_taken"
    );

    // Every listed operation is routed (dummy path parameters, no token, no body).
    for (m, path) in OPERATIONS {
        let p = concrete(path);
        let r = c.call(method(m), &p, None, None).await;
        assert!(!is_no_route(&r, m, &p), "{m} {p} is not routed: {}", r.body);
        assert_ne!(r.status, 405, "{m} {p}: {}", r.body);
        // Whatever error the server really answered is documented, for this operation too.
        if r.status.as_u16() >= 400 {
            assert!(reasons.contains(r.reason()), "{m} {p}: {}", r.body);
            let documented = &doc["paths"][path][m.to_ascii_lowercase()]["responses"]
                [r.status.as_u16().to_string()]["x-reasons"];
            assert!(
                documented
                    .as_array()
                    .is_some_and(|d| d.contains(&json!(r.reason()))),
                "{m} {p}: answered {} {} which the operation does not list",
                r.status,
                r.reason()
            );
        }
    }
    for (m, path) in PROTOCOL_NOT_SERVED {
        assert!(
            !paths.contains_key(*path) || paths[*path].get(m.to_ascii_lowercase()).is_none(),
            "{m} {path} is documented: move it to OPERATIONS"
        );
        let r = c.call(method(m), path, None, None).await;
        assert!(
            is_no_route(&r, m, path),
            "{m} {path} is served now: move it to OPERATIONS"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn docs_pages_render_the_document_without_external_assets() {
    let s = TestServer::start().await;
    let c = &s.client;
    for page in ["/docs", "/redoc"] {
        let r = c.get(page, None).await;
        assert_eq!(r.status, 200, "{page}");
        assert!(
            r.header("content-type")
                .is_some_and(|t| t.starts_with("text/html")),
            "{page}"
        );
        let html = String::from_utf8(r.raw.to_vec()).expect("utf-8");
        for external in [
            "http://",
            "https://",
            "<script src",
            "<link",
            "@import",
            "url(",
        ] {
            assert!(!html.contains(external), "{page} contains {external}");
        }
        for (m, path) in OPERATIONS {
            assert!(
                html.contains(&format!("<code>{path}</code>")),
                "{page}: {path}"
            );
            assert!(html.contains(&format!(">{m}</span>")), "{page}: {m}");
        }
        // The document itself is rendered: auth, parameters, bodies, responses, schemas.
        for needle in [
            "Auth: bearer token",
            "Auth: none",
            "<h3>Parameters</h3>",
            "Request body (required)",
            "<h3>Responses</h3>",
            "<code>public_e2e_key</code>",
            "<code>multipart/form-data</code>",
            "<code>image/*</code>",
            "id=\"schema-HistoryPage\"",
            "id=\"schema-Error\"",
            "href=\"/openapi.json\"",
            "max length 128",
        ] {
            assert!(html.contains(needle), "{page}: {needle}");
        }
    }
    s.stop().await;
}
