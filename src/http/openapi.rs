//! `GET /openapi.json`: the OpenAPI 3.1 document of the route table, with a request and response
//! schema for every route, and the self-contained HTML rendering `/docs` and `/redoc` serve.
//!
//! The route table (`handlers::routes()`) says what is served: method, path, access, summary.
//! The schema table ([`openapi_schemas::table`](super::openapi_schemas)) says what goes over the
//! wire: one [`Op`] per (method, path) with its parameters, request body and success responses.
//! [`document`] joins the two and refuses to build (so the server refuses to start, and every
//! test fails) when a route has no schema entry, an entry names no route, an entry has no success
//! response, a path parameter is undescribed, or the body kinds (JSON / multipart) disagree. The
//! unit test `every_route_has_a_schema` reports the same problems by name.
//!
//! # Adding a route
//! Register the route in its handler group as usual, then add ONE entry to the `table()` list in
//! `openapi_schemas.rs`, for example for a Prometheus endpoint:
//!
//! ```text
//! get("/metrics").text(200, "Prometheus exposition", "text/plain; version=0.0.4"),
//! ```
//!
//! or for a JSON route: `post("/x/y").json(obj(&[("id", r("Uid"))])).ok(r("OkTrue")),`.
//! Shapes used more than once belong in `openapi_components.rs` and are referenced with
//! `r("Name")`. The error envelope (`#/components/schemas/Error`) is added to every operation as
//! its `default` response, and once per error status the operation can answer with: the
//! statuses come from the error table, the reasons from `openapi_errors.rs` (give a new route
//! its tag and its service's reasons there).

use std::collections::{BTreeMap, BTreeSet};

use http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::openapi_errors;
use super::openapi_schemas;
use super::router::{Access, BodyKind, Route};

pub(crate) use super::openapi_html::docs_html;

/// The documentation of one operation: everything about it except what the route table says.
pub(crate) struct Op {
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    params: Vec<Value>,
    /// Content type, schema, required.
    body: Option<(&'static str, Value, bool)>,
    /// Status code → OpenAPI response object.
    responses: Vec<(u16, Value)>,
}

/// An operation on `path`.
pub(crate) fn op(method: Method, path: &'static str) -> Op {
    Op {
        method,
        path,
        params: Vec::new(),
        body: None,
        responses: Vec::new(),
    }
}

/// `GET path`.
pub(crate) fn get(path: &'static str) -> Op {
    op(Method::GET, path)
}

/// `POST path`.
pub(crate) fn post(path: &'static str) -> Op {
    op(Method::POST, path)
}

/// `PUT path`.
pub(crate) fn put(path: &'static str) -> Op {
    op(Method::PUT, path)
}

/// `DELETE path`.
pub(crate) fn delete(path: &'static str) -> Op {
    op(Method::DELETE, path)
}

impl Op {
    fn param(mut self, name: &str, place: &str, required: bool, schema: Value, desc: &str) -> Self {
        let mut p = json!({"name": name, "in": place, "required": required, "schema": schema});
        if !desc.is_empty() {
            p["description"] = json!(desc);
        }
        self.params.push(p);
        self
    }

    /// An optional query parameter.
    pub(crate) fn query(self, name: &str, schema: Value, desc: &str) -> Self {
        self.param(name, "query", false, schema, desc)
    }

    /// A required query parameter.
    pub(crate) fn query_required(self, name: &str, schema: Value, desc: &str) -> Self {
        self.param(name, "query", true, schema, desc)
    }

    /// The path parameter `{name}` of the route's path.
    pub(crate) fn path_param(self, name: &str, schema: Value, desc: &str) -> Self {
        self.param(name, "path", true, schema, desc)
    }

    /// An optional request header.
    pub(crate) fn header(self, name: &str, schema: Value, desc: &str) -> Self {
        self.param(name, "header", false, schema, desc)
    }

    /// Page mode (docs/protocol.md §1.4): `page` and `per_page` with the route's default page size.
    pub(crate) fn paged(self, default_per_page: u64) -> Self {
        self.query(
            "page",
            json!({"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": 1}),
            "1-based page",
        )
        .query(
            "per_page",
            json!({"type": "integer", "minimum": 1, "maximum": 100, "default": default_per_page}),
            "page size",
        )
    }

    /// History paging (docs/protocol.md §1.4, §4.6): page mode or cursor mode, never both.
    pub(crate) fn history(self) -> Self {
        self.paged(50)
            .query(
                "before",
                openapi_schemas::r("MessageId"),
                "cursor mode: messages older than this one (not with page/per_page)",
            )
            .query(
                "limit",
                json!({"type": "integer", "minimum": 1, "maximum": 100, "default": 50}),
                "cursor mode: how many (not with page/per_page)",
            )
    }

    /// A required `application/json` request body.
    pub(crate) fn json(mut self, schema: Value) -> Self {
        self.body = Some(("application/json", schema, true));
        self
    }

    /// An optional `application/json` request body (an empty body reads as `{}`).
    pub(crate) fn json_optional(mut self, schema: Value) -> Self {
        self.body = Some(("application/json", schema, false));
        self
    }

    /// A required `multipart/form-data` request body.
    pub(crate) fn multipart(mut self, schema: Value) -> Self {
        self.body = Some(("multipart/form-data", schema, true));
        self
    }

    /// A response with a body of `content_type`.
    pub(crate) fn reply(
        mut self,
        code: u16,
        desc: &str,
        content_type: &str,
        schema: Value,
    ) -> Self {
        self.responses.push((
            code,
            json!({"description": desc, "content": {content_type: {"schema": schema}}}),
        ));
        self
    }

    /// 200 `application/json`.
    pub(crate) fn ok(self, schema: Value) -> Self {
        self.reply(200, "Success", "application/json", schema)
    }

    /// A text response (HTML, plain text) of `content_type`.
    pub(crate) fn text(self, code: u16, desc: &str, content_type: &str) -> Self {
        self.reply(code, desc, content_type, json!({"type": "string"}))
    }

    /// A response without a body.
    pub(crate) fn empty(mut self, code: u16, desc: &str) -> Self {
        self.responses.push((code, json!({"description": desc})));
        self
    }

    /// Adds `headers` (name → description) to the last response.
    pub(crate) fn with_headers(mut self, headers: &[(&str, &str)]) -> Self {
        if let Some((_, resp)) = self.responses.last_mut() {
            let mut h = Map::new();
            for (name, desc) in headers {
                h.insert(
                    (*name).to_owned(),
                    json!({"description": desc, "schema": {"type": "string"}}),
                );
            }
            resp["headers"] = Value::Object(h);
        }
        self
    }
}

fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

fn operation_id(method: &Method, path: &str) -> String {
    let mut id = method.as_str().to_ascii_lowercase();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        id.extend(
            seg.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_'),
        );
    }
    if path == "/" {
        id.push_str("_root");
    }
    id
}

/// Every problem between the route table and the schema table, one line each; empty when they
/// agree.
pub(crate) fn problems<'a>(
    routes: impl IntoIterator<Item = &'a Route>,
    table: &[Op],
) -> Vec<String> {
    let routes: Vec<&Route> = routes.into_iter().collect();
    let known = crate::service::http_reasons();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for o in table {
        let key = format!("{} {}", o.method, o.path);
        if !seen.insert(key.clone()) {
            out.push(format!("{key}: two schema entries"));
        }
        let Some(route) = routes
            .iter()
            .find(|r| r.method == o.method && r.path == o.path)
        else {
            out.push(format!(
                "{key}: schema entry for a route that does not exist"
            ));
            continue;
        };
        if !o
            .responses
            .iter()
            .any(|(code, _)| (100..400).contains(code))
        {
            out.push(format!("{key}: no success response"));
        }
        let declared: Vec<&str> = o
            .params
            .iter()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        let wanted: Vec<&str> = path_params(o.path).collect();
        if declared != wanted {
            out.push(format!(
                "{key}: path parameters {declared:?} do not match the path's {wanted:?}"
            ));
        }
        let multipart = o
            .body
            .as_ref()
            .is_some_and(|(ct, _, _)| *ct == "multipart/form-data");
        if multipart != (route.body_kind == BodyKind::Multipart) {
            out.push(format!("{key}: body kind differs from the route's"));
        }
        if openapi_errors::tag_of(o.path).is_none() {
            out.push(format!(
                "{key}: no tag (add a rule to openapi_errors::tag_of)"
            ));
        }
        for reason in openapi_errors::route_reasons(&o.method, o.path) {
            if !known.iter().any(|(_, r)| r == reason) {
                out.push(format!("{key}: reason {reason} is not in the error table"));
            }
        }
    }
    for r in &routes {
        if !table
            .iter()
            .any(|o| o.method == r.method && o.path == r.path)
        {
            out.push(format!(
                "{} {}: route without a schema entry in openapi_schemas::table()",
                r.method, r.path
            ));
        }
    }
    out
}

/// The OpenAPI 3.1 document of `routes`; an error lists every route/schema mismatch.
pub(crate) fn document<'a>(
    routes: impl IntoIterator<Item = &'a Route>,
    version: &str,
) -> Result<Value, String> {
    let routes: Vec<&Route> = routes.into_iter().collect();
    let table = openapi_schemas::table();
    let problems = problems(routes.iter().copied(), &table);
    if !problems.is_empty() {
        return Err(format!("OpenAPI: {}", problems.join("; ")));
    }
    let known = crate::service::http_reasons();
    let mut paths = Map::new();
    for r in &routes {
        let Some(o) = table
            .iter()
            .find(|o| o.method == r.method && o.path == r.path)
        else {
            continue; // unreachable: `problems` checked every route
        };
        let mut operation = Map::new();
        operation.insert("summary".into(), json!(r.summary));
        operation.insert("operationId".into(), json!(operation_id(&r.method, r.path)));
        operation.insert(
            "security".into(),
            match r.access {
                Access::Token => json!([{"bearer": []}]),
                Access::Public => json!([]),
            },
        );
        if !o.params.is_empty() {
            operation.insert("parameters".into(), Value::Array(o.params.clone()));
        }
        if let Some((content_type, schema, required)) = &o.body {
            operation.insert(
                "requestBody".into(),
                json!({"required": required, "content": {*content_type: {"schema": schema}}}),
            );
        }
        let mut responses = Map::new();
        for (code, resp) in &o.responses {
            responses.insert(code.to_string(), resp.clone());
        }
        for (status, reasons) in error_responses(r, o, &known) {
            let list: Vec<String> = reasons.iter().map(|x| format!("`{x}`")).collect();
            responses.insert(
                status.to_string(),
                json!({"description": format!("Error envelope; reason {}", list.join(", ")),
                       "x-reasons": reasons,
                       "content": {"application/json": {"schema": openapi_schemas::r("Error")}}}),
            );
        }
        if let Some(tag) = openapi_errors::tag_of(r.path) {
            operation.insert("tags".into(), json!([tag]));
        }
        responses.insert(
            "default".into(),
            json!({"description": "Error envelope",
                   "content": {"application/json": {"schema": openapi_schemas::r("Error")}}}),
        );
        operation.insert("responses".into(), Value::Object(responses));
        let item = paths
            .entry(r.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        item[r.method.as_str().to_ascii_lowercase()] = Value::Object(operation);
    }
    Ok(json!({
        "openapi": "3.1.0",
        "info": {"title": "Melo", "version": version,
                 "description": "Privacy-first messenger server. Wire contract: this document and docs/protocol.md in the repository. \
                                 Every error is the envelope `Error`."},
        "tags": openapi_errors::TAGS
            .iter()
            .map(|(name, description)| json!({"name": name, "description": description}))
            .collect::<Vec<_>>(),
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": components(&known),
        }
    }))
}

/// The shared schemas, with the error envelope's `code` and `reason` enumerated from the error
/// table.
fn components(known: &[(StatusCode, &'static str)]) -> Value {
    let mut schemas = super::openapi_components::components();
    let mut codes: Vec<u16> = known.iter().map(|(s, _)| s.as_u16()).collect();
    codes.sort_unstable();
    codes.dedup();
    let mut reasons: Vec<&str> = Vec::new();
    for (_, reason) in known {
        if !reasons.contains(reason) {
            reasons.push(reason);
        }
    }
    let error = &mut schemas["Error"]["properties"]["error"]["properties"];
    error["code"]["enum"] = json!(codes);
    error["reason"]["enum"] = json!(reasons);
    schemas
}

/// The error statuses of one operation, each with its reasons: the route's common ones and its
/// service's, with the status the error table gives each reason (its first row: a
/// `validation_failed` is documented as 422).
fn error_responses(
    route: &Route,
    op: &Op,
    known: &[(StatusCode, &'static str)],
) -> BTreeMap<u16, Vec<&'static str>> {
    let has_body = op.body.is_some();
    let has_input = has_body || !op.params.iter().all(|p| p["in"] == "header");
    let mut out: BTreeMap<u16, Vec<&'static str>> = BTreeMap::new();
    let common = openapi_errors::common_reasons(route, has_input, has_body);
    let own = openapi_errors::route_reasons(&route.method, route.path);
    for reason in common.iter().chain(own) {
        if let Some((status, _)) = known.iter().find(|(_, r)| r == reason) {
            let list = out.entry(status.as_u16()).or_default();
            if !list.contains(reason) {
                list.push(reason);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_a_schema() {
        let routes = crate::http::handlers::routes();
        let problems = problems(&routes, &openapi_schemas::table());
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        let doc = document(&routes, "test").expect("document");
        for r in &routes {
            let op = &doc["paths"][r.path][r.method.as_str().to_ascii_lowercase()];
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|k| k.starts_with(['1', '2', '3'])),
                "{} {}",
                r.method,
                r.path
            );
            for (code, resp) in responses {
                for (ct, media) in resp["content"].as_object().into_iter().flatten() {
                    assert_ne!(
                        media["schema"],
                        json!({"type": "object"}),
                        "{} {} {code} {ct}: bare object schema",
                        r.method,
                        r.path
                    );
                }
            }
        }
    }

    #[test]
    fn mismatches_are_reported() {
        let routes = crate::http::handlers::routes();
        let mut table = openapi_schemas::table();
        let removed = table.remove(0);
        table.push(get("/no/such/route").ok(json!({"type": "string"})));
        table.push(get("/x/{id}").ok(json!({"type": "string"})));
        let p = problems(&routes, &table);
        let missing = format!(
            "{} {}: route without a schema entry",
            removed.method, removed.path
        );
        assert!(p.iter().any(|l| l.starts_with(&missing)), "{p:?}");
        assert!(p
            .iter()
            .any(|l| l.starts_with("GET /no/such/route: schema entry for a route")));
        assert!(
            document(&routes[1..], "t").is_err(),
            "a stale entry fails the build"
        );
    }

    #[test]
    fn every_referenced_component_exists() {
        let routes = crate::http::handlers::routes();
        let doc = document(&routes, "test").expect("document");
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part.chars().take_while(|c| *c != '"').collect();
            assert!(schemas.contains_key(&name), "missing component {name}");
        }
    }

    #[test]
    fn tags_errors_and_the_reason_enum_come_from_the_tables() {
        let routes = crate::http::handlers::routes();
        let doc = document(&routes, "test").expect("document");
        let known = crate::service::http_reasons();
        let error = &doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"];
        let mut reasons: Vec<&str> = Vec::new();
        for (_, reason) in &known {
            if !reasons.contains(reason) {
                reasons.push(reason);
            }
        }
        assert_eq!(error["reason"]["enum"], json!(reasons));
        let codes: BTreeSet<u16> = known.iter().map(|(s, _)| s.as_u16()).collect();
        assert_eq!(error["code"]["enum"], json!(codes));
        let tags: Vec<&str> = openapi_errors::TAGS.iter().map(|(t, _)| *t).collect();
        for r in &routes {
            let op = &doc["paths"][r.path][r.method.as_str().to_ascii_lowercase()];
            let tag = op["tags"][0].as_str().expect("a tag");
            assert!(tags.contains(&tag), "{} {}: {tag}", r.method, r.path);
            for (code, resp) in op["responses"].as_object().expect("responses") {
                for reason in resp["x-reasons"].as_array().into_iter().flatten() {
                    assert!(
                        known
                            .iter()
                            .any(|(s, x)| s.as_str() == code && reason == *x),
                        "{} {}: {code} {reason}",
                        r.method,
                        r.path
                    );
                }
            }
        }
        // A route without a tag rule is a problem.
        assert!(openapi_errors::tag_of("/no/such/area").is_none());
    }

    #[test]
    fn operation_ids_are_unique() {
        let routes = crate::http::handlers::routes();
        let ids: BTreeSet<String> = routes
            .iter()
            .map(|r| operation_id(&r.method, r.path))
            .collect();
        assert_eq!(ids.len(), routes.len());
    }
}
