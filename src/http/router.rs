//! The route table: one list that both serves requests and (with `openapi.rs`) generates
//! `/openapi.json`.

use std::future::Future;
use std::pin::Pin;

use http::{Method, Response};

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
    /// One JSON object (docs/protocol.md §1.1), the default.
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

    /// A JSON route whose body limit is `limit` of the settings (smaller than the default).
    pub(crate) fn limit(mut self, limit: BodyLimit) -> Self {
        self.body_limit = Some(limit);
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

    /// Every route, grouped by path in table order.
    pub(crate) fn routes(&self) -> impl Iterator<Item = &Route> {
        self.paths
            .iter()
            .flat_map(|(_, indices)| indices.iter().map(|i| &self.routes[*i]))
    }
}
