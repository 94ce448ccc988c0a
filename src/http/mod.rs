//! HTTP on raw hyper 1: dispatch, security headers, CORS, rate limiting, auth.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use tracing::Instrument;

use crate::service::{ClientInfo, Error, RouteBudget, Services};

mod client_ip;
pub(crate) mod error;
pub(crate) mod extract;
mod handlers;
pub(crate) mod multipart;
pub(crate) mod openapi;
mod openapi_account;
mod openapi_asyncapi;
mod openapi_asyncapi_server;
mod openapi_components;
mod openapi_errors;
mod openapi_html;
mod openapi_schedule;
mod openapi_schemas;
mod readiness;
pub(crate) mod response;
pub(crate) mod router;
mod web_client;

use error::ApiError;
use extract::{Ctx, ReqBody};
#[cfg(feature = "fuzzing")]
pub(crate) use handlers::{fuzz_body, fuzz_multipart};
pub(crate) use response::Body;
use router::{Access, Found, Router};

/// Shared state of the HTTP layer.
pub(crate) struct App {
    pub(crate) services: Services,
    pub(crate) router: Router,
    pub(crate) openapi: Bytes,
    /// `/asyncapi.json`: the socket's frames, built once like `openapi`.
    pub(crate) asyncapi: Bytes,
    pub(crate) docs_html: Bytes,
    /// Routes with a budget of their own (`limits.routes`).
    route_budgets: Vec<RouteBudget>,
    next_request_id: AtomicU64,
    /// Socket tasks, awaited (bounded) at shutdown.
    pub(crate) ws_tasks: tokio_util::task::TaskTracker,
    /// Cancelled at shutdown: sockets close with 1001 `going_away`.
    pub(crate) ws_shutdown: tokio_util::sync::CancellationToken,
    /// The cached `/readyz` answer.
    pub(crate) readiness: readiness::Readiness,
    /// The web client at `/app/` (or none).
    web: web_client::WebClient,
    /// `http.path_prefix`: every route lives under it (empty: none).
    prefix: Box<str>,
}

/// Resolves `limits.routes` against the route table; a budget for a route that does not exist
/// is a configuration error (a typo would otherwise leave the route on the default budget).
fn route_budgets(router: &Router, config: &crate::Config) -> Result<Vec<RouteBudget>, String> {
    let limits = &config.limits;
    let mut out = Vec::new();
    for r in &limits.routes {
        let method = match &r.method {
            Some(m) => Some(
                Method::from_bytes(m.as_bytes())
                    .map_err(|_| format!("RATE_LIMIT_ROUTES (limits.routes): {r}: bad method"))?,
            ),
            None => None,
        };
        let Some(route) = router
            .routes()
            .find(|x| x.path == r.path && method.as_ref().is_none_or(|m| *m == x.method))
        else {
            return Err(format!(
                "RATE_LIMIT_ROUTES (limits.routes): {r}: no such route"
            ));
        };
        out.push(RouteBudget {
            method,
            path: route.path,
            name: match &r.method {
                Some(m) => format!("{m} {}", route.path),
                None => route.path.to_owned(),
            },
            calls: r.calls,
            period: std::time::Duration::from_secs(r.period),
            block: std::time::Duration::from_secs(r.block.unwrap_or(limits.block_period)),
        });
    }
    Ok(out)
}

/// Paths that neither count against nor are refused by the HTTP budget.
const UNMETERED: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/ws"];

impl App {
    pub(crate) fn new(services: Services) -> Result<Self, String> {
        let router = Router::new(handlers::routes())?;
        let version = services.core().config.server_version.clone();
        let mut doc = openapi::document(router.routes(), &version)?;
        let prefix = services
            .core()
            .config
            .http
            .path_prefix
            .clone()
            .into_boxed_str();
        if !prefix.is_empty() {
            // Every path of the document is relative to the prefix.
            if let Some(doc) = doc.as_object_mut() {
                doc.insert("servers".into(), serde_json::json!([{ "url": &*prefix }]));
            }
        }
        let openapi = serde_json::to_vec(&doc).map_err(|e| e.to_string())?;
        let docs_html = openapi::docs_html(&doc);
        let asyncapi = openapi_asyncapi::document(&version)?;
        let asyncapi = serde_json::to_vec(&asyncapi).map_err(|e| e.to_string())?;
        let route_budgets = route_budgets(&router, &services.core().config)?;
        let web = web_client::WebClient::from_config(&services.core().config.http);
        Ok(Self {
            services,
            router,
            route_budgets,
            openapi: Bytes::from(openapi),
            asyncapi: Bytes::from(asyncapi),
            docs_html: Bytes::from(docs_html),
            next_request_id: AtomicU64::new(1),
            ws_tasks: tokio_util::task::TaskTracker::new(),
            ws_shutdown: tokio_util::sync::CancellationToken::new(),
            readiness: readiness::Readiness::default(),
            web,
            prefix,
        })
    }

    /// Serves one request. Never fails: every error becomes the JSON envelope.
    pub(crate) async fn handle(
        self: Arc<Self>,
        req: Request<ReqBody>,
        peer: Option<SocketAddr>,
        ws_only: bool,
    ) -> Response<Body> {
        let id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!("http", request_id = id, method = %req.method(), route = tracing::field::Empty);
        let started = Instant::now();
        let origin = req.headers().get(header::ORIGIN).cloned();
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        // The route template labels the metrics (never the raw path: it may hold ids); dispatch
        // sets it from its one route lookup.
        let mut route = if ws_only { "/ws" } else { "unmatched" };
        let mut resp = match self
            .clone()
            .dispatch(req, peer, ws_only, &mut route)
            .instrument(span.clone())
            .await
        {
            Ok(r) => r,
            Err(e) => e.into_response(&path),
        };
        self.finish_headers(&mut resp, origin.as_ref(), id);
        let metrics = &self.services.core().metrics;
        metrics.http(
            &method,
            route,
            resp.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
        span.in_scope(|| {
            tracing::debug!(
                status = resp.status().as_u16(),
                elapsed_us = started.elapsed().as_micros() as u64,
                "done"
            );
        });
        resp
    }

    fn client_ip(&self, headers: &http::HeaderMap, peer: Option<SocketAddr>) -> IpAddr {
        client_ip::client_ip(
            headers,
            peer,
            &self.services.core().config.http.trusted_proxies,
        )
    }

    /// The route path of a request path: `path` with `http.path_prefix` removed (`/chat/ws` →
    /// `/ws`, `/chat` → `/`), or `None` for a path outside the prefix.
    fn route_path<'p>(&self, path: &'p str) -> Option<&'p str> {
        if self.prefix.is_empty() {
            return Some(path);
        }
        match path.strip_prefix(&*self.prefix)? {
            "" => Some("/"),
            rest if rest.starts_with('/') => Some(rest),
            _ => None,
        }
    }

    async fn dispatch(
        self: Arc<Self>,
        req: Request<ReqBody>,
        peer: Option<SocketAddr>,
        ws_only: bool,
        route_label: &mut &'static str,
    ) -> Result<Response<Body>, ApiError> {
        let (parts, body) = req.into_parts();
        // An answer given before the handler reads a body leaves that body on the wire.
        let unread = {
            let had_body = !http_body::Body::is_end_stream(&body);
            move |e: ApiError| if had_body { e.closing() } else { e }
        };
        if ws_only {
            // The WebSocket listener: every path is the socket endpoint, never rate-limited.
            let ip = self.client_ip(&parts.headers, peer);
            return crate::ws::upgrade(self, parts, ip).await;
        }
        if parts.method == Method::OPTIONS {
            *route_label = "preflight";
            return Ok(self.preflight(&parts.headers));
        }
        // The full path (for error messages) and the route path under `http.path_prefix`
        // (none: outside the prefix, an unknown path).
        let path = parts.uri.path().to_owned();
        let inner = self.route_path(&path);
        if inner.is_none() {
            // Outside the prefix: not Melo's. Answered before authentication and the budget, so
            // a host site's stray requests (favicons, crawlers) never spend a client's budget.
            return Err(unread(ApiError::not_found(&parts.method, &path)));
        }
        if let Some(inner) = inner.filter(|p| self.web.owns(p)) {
            // Static files from memory: public and unmetered (one page load is a dozen files,
            // more than the whole default budget of an IP).
            *route_label = web_client::MOUNT;
            return self
                .web
                .serve(&parts.method, inner, &parts.headers)
                .await
                .map_err(unread);
        }
        let client = ClientInfo {
            ip: self.client_ip(&parts.headers, peer),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
        };
        let services = &self.services;
        let auth = match extract::bearer(&parts.headers) {
            Some(token) => Some(services.auth.authenticate(token).await),
            None => None,
        };
        let found = match inner {
            Some(inner) => self.router.find(&parts.method, inner),
            None => Found::NoRoute,
        };
        *route_label = match &found {
            Found::Route(r, _) => r.path,
            Found::MethodNotAllowed(_) => "method_not_allowed",
            Found::NoRoute => "unmatched",
        };
        // Public routes are always budgeted per IP: a token must not multiply the anonymous
        // budget of /register (the only phone-existence oracle) or /login.
        let public = matches!(&found, Found::Route(r, _) if r.access == Access::Public);
        let user = auth
            .as_ref()
            .and_then(|a| a.as_ref().ok())
            .map(|a| a.user)
            .filter(|_| !public);
        let is_upgrade = parts.method == Method::GET
            && parts
                .headers
                .get(header::UPGRADE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        let trimmed = match inner {
            Some(p) if p.len() > 1 => p.trim_end_matches('/'),
            Some(p) => p,
            None => "",
        };
        let unmetered = UNMETERED.contains(&trimmed) && (trimmed != "/ws" || is_upgrade);
        if !unmetered {
            let budget = match &found {
                Found::Route(r, _) => self
                    .route_budgets
                    .iter()
                    .find(|b| b.path == r.path && b.method.as_ref().is_none_or(|m| *m == r.method)),
                _ => None,
            };
            services
                .limits
                .http_request(user, client.ip, budget)
                .await
                .map_err(|e| unread(e.into()))?;
        }
        let (route, params) = match found {
            Found::Route(r, p) => (r, p),
            Found::MethodNotAllowed(allow) => {
                return Err(unread(ApiError::method_not_allowed(
                    &parts.method,
                    &path,
                    allow,
                )))
            }
            Found::NoRoute => return Err(unread(ApiError::not_found(&parts.method, &path))),
        };
        tracing::Span::current().record("route", route.path);
        let auth = match (route.access, auth) {
            (Access::Token, None) => {
                // A present but malformed Authorization header is also "unauthenticated".
                return Err(unread(Error::Unauthenticated.into()));
            }
            (Access::Token, Some(Err(e))) => return Err(unread(e.into())),
            (_, Some(Ok(a))) => Some(a),
            (Access::Public, _) => None,
        };
        let body_limit = route.body_limit(&services.core().config);
        let ctx = Ctx {
            body_limit,
            app: self.clone(),
            parts,
            body: Some(body),
            params,
            client,
            auth,
        };
        (route.handler)(ctx).await
    }

    fn cors_origin(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        let origin = origin?;
        let allowed = &self.services.core().config.http.cors_origins;
        let o = origin.to_str().ok()?;
        allowed
            .iter()
            .any(|a| a == o || a == "*")
            .then(|| origin.clone())
    }

    fn preflight(&self, headers: &http::HeaderMap) -> Response<Body> {
        let mut resp = Response::new(Body::default());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        if self.cors_origin(headers.get(header::ORIGIN)).is_some() {
            let h = resp.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("Authorization, Content-Type, X-CSRF-Token"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
        resp
    }

    fn finish_headers(&self, resp: &mut Response<Body>, origin: Option<&HeaderValue>, id: u64) {
        let allow_origin = self.cors_origin(origin);
        let hsts = self.services.core().config.http.hsts;
        let h = resp.headers_mut();
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        );
        if hsts {
            h.insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000"),
            );
        }
        if let Some(o) = allow_origin {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        h.insert("x-request-id", HeaderValue::from(id));
    }
}
