//! Service, health and key routes (docs/protocol.md §4.1).

use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use serde_json::json;

use crate::http::error::ApiError;
use crate::http::extract::Ctx;
use crate::http::response::{ok, raw};
use crate::http::router::{Access, HandlerFuture, Route};

pub(super) fn routes() -> Vec<Route> {
    use Access::Public;
    vec![
        Route::new(Method::GET, "/", Public, "Server banner", |c| {
            Box::pin(root(c))
        }),
        Route::new(
            Method::GET,
            "/status",
            Public,
            "Server and backend status",
            |c| Box::pin(status(c)),
        ),
        Route::new(Method::GET, "/healthz", Public, "Liveness", |c| {
            Box::pin(healthz(c))
        }),
        Route::new(
            Method::GET,
            "/readyz",
            Public,
            "Readiness (backends reachable)",
            |c| Box::pin(readyz(c)),
        ),
        Route::new(
            Method::GET,
            "/public_key",
            Public,
            "Current JWT signing key (SPKI PEM)",
            |c| Box::pin(public_key(c)),
        ),
        Route::new(
            Method::GET,
            "/encryption_public_key",
            Public,
            "Alias of /public_key",
            |c| Box::pin(public_key(c)),
        ),
        Route::new(
            Method::GET,
            "/.well-known/jwks.json",
            Public,
            "JWT verification keys (JWKS)",
            |c| Box::pin(jwks(c)),
        ),
        Route::new(
            Method::GET,
            "/openapi.json",
            Public,
            "This API as OpenAPI 3.1",
            |c| Box::pin(openapi(c)),
        ),
        Route::new(
            Method::GET,
            "/asyncapi.json",
            Public,
            "AsyncAPI 3.0 document of the WebSocket frames",
            |c| Box::pin(asyncapi(c)),
        ),
        Route::new(
            Method::GET,
            "/metrics",
            Public,
            "Prometheus metrics of this node",
            |c| Box::pin(metrics(c)),
        ),
        Route::new(
            Method::GET,
            "/docs",
            Public,
            "This API rendered as HTML",
            docs,
        ),
        Route::new(
            Method::GET,
            "/redoc",
            Public,
            "This API rendered as HTML",
            docs,
        ),
    ]
}

/// Backend checks with a bound: a hung backend reads as down.
async fn check_backends(core: &crate::service::Core) -> (bool, bool) {
    let t = std::time::Duration::from_secs(2);
    let (db, eph) = tokio::join!(
        tokio::time::timeout(t, core.store.ping()),
        tokio::time::timeout(t, core.ephemeral.ping())
    );
    (matches!(db, Ok(Ok(()))), matches!(eph, Ok(Ok(()))))
}

/// # GET /
async fn root(c: Ctx) -> Result<http::Response<crate::http::Body>, ApiError> {
    let version = &c.app.services.core().config.server_version;
    Ok(ok(&json!({"detail": format!("Melo server {version}")})))
}

/// # GET /status
///
/// `websocket.connections` (users with at least one socket on this node, docs/protocol.md §4.1) only
/// for a caller with a valid token: an anonymous caller learns nothing about the users, not
/// even how many are online. Operators read the counts from `/metrics`.
async fn status(c: Ctx) -> Result<http::Response<crate::http::Body>, ApiError> {
    let (db, eph) = check_backends(c.app.services.core()).await;
    let core = c.app.services.core();
    let cfg = &core.config;
    let mut websocket = json!({"port": cfg.http.ws_port});
    if c.auth.is_some() {
        websocket["connections"] = json!(core.hub.online_users());
    }
    Ok(ok(&json!({
        "status": if db && eph { "ok" } else { "degraded" },
        "version": cfg.server_version,
        "services": {"redis": eph, "database": db, "websocket": true},
        "websocket": websocket,
        "http_port": cfg.http.http_port,
        "ws_port": cfg.http.ws_port,
    })))
}

/// # GET /healthz
async fn healthz(_c: Ctx) -> Result<http::Response<crate::http::Body>, ApiError> {
    Ok(ok(&json!({"status": "ok"})))
}

/// # GET /readyz
async fn readyz(c: Ctx) -> Result<http::Response<crate::http::Body>, ApiError> {
    let core = c.app.services.core();
    match c.app.readiness.check(core).await {
        (true, true) => Ok(ok(
            &json!({"status": "ready", "checks": {"database": true, "redis": true}}),
        )),
        (db_ok, _) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            if db_ok {
                "redis is unreachable"
            } else {
                "database is unreachable"
            },
        )),
    }
}

/// # GET /public_key
async fn public_key(c: Ctx) -> Result<http::Response<crate::http::Body>, ApiError> {
    let key = c.app.services.core().keys.signing_key();
    Ok(ok(&json!({"public_key": key.public_pem()})))
}

/// # GET /.well-known/jwks.json
async fn jwks(c: Ctx) -> Result<http::Response<crate::http::Body>, ApiError> {
    let keys: Vec<_> = c
        .app
        .services
        .core()
        .keys
        .verifying_keys()
        .iter()
        .map(|k| json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": k.kid(), "n": k.modulus(), "e": k.exponent()}))
        .collect();
    let mut resp = ok(&json!({"keys": keys}));
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(resp)
}

/// # GET /openapi.json
async fn openapi(c: Ctx) -> Result<http::Response<crate::http::Body>, ApiError> {
    Ok(raw(
        StatusCode::OK,
        "application/json; charset=utf-8",
        c.app.openapi.clone(),
    ))
}

/// # GET /asyncapi.json
async fn asyncapi(c: Ctx) -> Result<http::Response<crate::http::Body>, ApiError> {
    Ok(raw(
        StatusCode::OK,
        "application/json; charset=utf-8",
        c.app.asyncapi.clone(),
    ))
}

/// # GET /metrics
///
/// The Prometheus text exposition, or 404 `feature_disabled` with `METRICS_ENABLED=false`.
async fn metrics(c: Ctx) -> Result<http::Response<crate::http::Body>, ApiError> {
    let core = c.app.services.core();
    if !core.config.metrics_enabled || core.config.metrics_separate_listener {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "feature_disabled",
            "metrics are not served on this listener",
        ));
    }
    let text = core.metrics.render().map_err(|e| {
        tracing::warn!(error = %e, "metrics not rendered");
        ApiError::internal()
    })?;
    Ok(raw(
        StatusCode::OK,
        crate::metrics::CONTENT_TYPE,
        Bytes::from(text),
    ))
}

/// # GET /docs, /redoc
fn docs(c: Ctx) -> HandlerFuture {
    let html: Bytes = c.app.docs_html.clone();
    Box::pin(async move { Ok(raw(StatusCode::OK, "text/html; charset=utf-8", html)) })
}
