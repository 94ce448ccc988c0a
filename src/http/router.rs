//! The route table: one list that both serves requests and generates `/openapi.json`.

use std::future::Future;
use std::pin::Pin;

use http::{Method, Response};
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::extract::Ctx;
use super::response::Body;
use crate::config::Config;

/// A boxed handler future.
pub(crate) type HandlerFuture =
    Pin<Box<dyn Future<Output = Result<Response<Body>, ApiError>> + Send>>;
/// A handler: decode, call one service method, encode.
pub(crate) type Handler = fn(Ctx) -> HandlerFuture;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone.
    Public,
    /// A valid access token.
    Token,
}

/// A route's request-body limit, from the settings.
pub(crate) type BodyLimit = fn(&Config) -> usize;

/// What a route's request body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// One JSON object (PROTOCOL §1.1), the default.
    Json,
    /// `multipart/form-data`.
    Multipart,
}

/// One route.
pub(crate) struct Route {
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    pub(crate) access: Access,
    pub(crate) summary: &'static str,
    pub(crate) handler: Handler,
    /// Body limit instead of `http.max_body_bytes` (the 2 MiB default).
    pub(crate) body_limit: Option<BodyLimit>,
    pub(crate) body_kind: BodyKind,
}

impl Route {
    pub(crate) fn new(
        method: Method,
        path: &'static str,
        access: Access,
        summary: &'static str,
        handler: Handler,
    ) -> Self {
        Self {
            method,
            path,
            access,
            summary,
            handler,
            body_limit: None,
            body_kind: BodyKind::Json,
        }
    }

    /// A `multipart/form-data` route whose body limit is `limit` of the settings.
    pub(crate) fn multipart(mut self, limit: BodyLimit) -> Self {
        self.body_limit = Some(limit);
        self.body_kind = BodyKind::Multipart;
        self
    }

    /// The body limit of this route under `config`.
    pub(crate) fn body_limit(&self, config: &Config) -> usize {
        self.body_limit
            .map_or(config.http.max_body_bytes, |limit| limit(config))
    }
}

/// What a lookup found.
pub(crate) enum Found<'a> {
    Route(&'a Route, Vec<(String, String)>),
    MethodNotAllowed(String),
    NoRoute,
}

/// Path matcher over the route table; every path also matches with one trailing slash.
pub(crate) struct Router {
    matcher: matchit::Router<usize>,
    /// Per distinct path: indices of its routes.
    paths: Vec<(&'static str, Vec<usize>)>,
    routes: Vec<Route>,
}

impl Router {
    pub(crate) fn new(routes: Vec<Route>) -> Result<Self, String> {
        let mut paths: Vec<(&'static str, Vec<usize>)> = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            match paths.iter_mut().find(|(p, _)| *p == r.path) {
                Some((_, v)) => {
                    if v.iter().any(|j| routes[*j].method == r.method) {
                        return Err(format!("duplicate route {} {}", r.method, r.path));
                    }
                    v.push(i);
                }
                None => paths.push((r.path, vec![i])),
            }
        }
        let mut matcher = matchit::Router::new();
        for (pi, (path, _)) in paths.iter().enumerate() {
            matcher
                .insert(*path, pi)
                .map_err(|e| format!("{path}: {e}"))?;
            if *path != "/" && !path.ends_with('/') {
                matcher
                    .insert(format!("{path}/"), pi)
                    .map_err(|e| format!("{path}/: {e}"))?;
            }
        }
        Ok(Self {
            matcher,
            paths,
            routes,
        })
    }

    pub(crate) fn find(&self, method: &Method, path: &str) -> Found<'_> {
        let Ok(m) = self.matcher.at(path) else {
            return Found::NoRoute;
        };
        let (_, indices) = &self.paths[*m.value];
        let params: Vec<(String, String)> = m
            .params
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let wanted = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        match indices
            .iter()
            .map(|i| &self.routes[*i])
            .find(|r| r.method == *wanted)
        {
            Some(r) => Found::Route(r, params),
            None => {
                let mut allow: Vec<&str> = indices
                    .iter()
                    .map(|i| self.routes[*i].method.as_str())
                    .collect();
                allow.push("OPTIONS");
                Found::MethodNotAllowed(allow.join(", "))
            }
        }
    }

    /// OpenAPI 3.1 document of the table.
    pub(crate) fn openapi(&self, version: &str) -> Value {
        let mut paths = Map::new();
        for (path, indices) in &self.paths {
            let mut item = Map::new();
            for r in indices.iter().map(|i| &self.routes[*i]) {
                let mut op = Map::new();
                op.insert("summary".into(), json!(r.summary));
                op.insert("operationId".into(), json!(operation_id(&r.method, r.path)));
                if r.access == Access::Token {
                    op.insert("security".into(), json!([{"bearer": []}]));
                }
                let params: Vec<Value> = path_params(r.path)
                    .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
                    .collect();
                if !params.is_empty() {
                    op.insert("parameters".into(), Value::Array(params));
                }
                if r.body_kind == BodyKind::Multipart {
                    op.insert(
                        "requestBody".into(),
                        json!({"content": {"multipart/form-data": {"schema": {
                            "type": "object", "required": ["file"],
                            "properties": {"file": {"type": "string", "format": "binary"}}}}}}),
                    );
                } else if r.method == Method::POST || r.method == Method::PUT {
                    op.insert(
                        "requestBody".into(),
                        json!({"content": {"application/json": {"schema": {"type": "object"}}}}),
                    );
                }
                op.insert(
                    "responses".into(),
                    json!({
                        "200": {"description": "Success", "content": {"application/json": {"schema": {"type": "object"}}}},
                        "default": {"description": "Error envelope (PROTOCOL §2)",
                                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
                    }),
                );
                item.insert(r.method.as_str().to_ascii_lowercase(), Value::Object(op));
            }
            paths.insert((*path).to_owned(), Value::Object(item));
        }
        json!({
            "openapi": "3.1.0",
            "info": {"title": "Melo", "version": version,
                     "description": "Privacy-first messenger server. Wire contract: PROTOCOL.md."},
            "paths": paths,
            "components": {
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
                "schemas": {"Error": {
                    "type": "object", "required": ["ok", "error"],
                    "properties": {
                        "ok": {"const": false},
                        "error": {"type": "object", "required": ["code", "message", "path", "reason"],
                            "properties": {
                                "code": {"type": "integer"}, "message": {"type": "string"},
                                "path": {"type": "string"}, "reason": {"type": "string"},
                                "fields": {"type": "array", "items": {"type": "object",
                                    "properties": {"field": {"type": "string"}, "problem": {"type": "string"}}}},
                                "retry_after": {"type": "integer"}}}}}}
            }
        })
    }

    /// A self-contained HTML page listing the routes (for `/docs` and `/redoc`).
    pub(crate) fn docs_html(&self) -> String {
        let mut rows = String::new();
        for r in &self.routes {
            rows.push_str(&format!(
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>\n",
                r.method,
                html_escape(r.path),
                if r.access == Access::Token {
                    "token"
                } else {
                    "none"
                },
                html_escape(r.summary)
            ));
        }
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Melo API</title>\
             <style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:4px 10px;text-align:left}}\
             tr:nth-child(even){{background:#f4f4f4}}</style></head><body><h1>Melo API</h1>\
             <p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a></p>\
             <table><tr><th>Method</th><th>Path</th><th>Auth</th><th>Summary</th></tr>\n{rows}</table></body></html>"
        )
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

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
