//! WebSocket: upgrade over hyper, admission (docs/protocol.md §5.1), and one task per socket.
//!
//! Admission failures complete the upgrade (101) and then close with the documented code (docs/protocol.md §2.4) and the
//! bare reason, so browsers can read why.

use std::net::IpAddr;
use std::sync::Arc;

use http::{header, HeaderValue, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::http::error::ApiError;
use crate::http::response::Body;
use crate::http::App;
use crate::service::{Authenticated, Error};

mod client;
mod conn;

/// Largest frame/message, bytes (docs/protocol.md §1.5).
pub(crate) const MAX_FRAME: usize = 1024 * 1024;

/// Small per-socket buffers: a 4 KiB read buffer keeps an idle socket near 10 KB; frames are
/// gathered up to 8 KiB before a write (the socket task flushes after each burst).
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(4 * MAX_FRAME)
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME))
}

/// The socket stream type.
pub(crate) type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Outcome of admission.
enum Admission {
    Accepted(Authenticated),
    Refused(u16, &'static str),
}

fn query_token(parts: &http::request::Parts) -> Option<String> {
    let q = parts.uri.query()?;
    q.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "token" && !v.is_empty()).then(|| v.to_owned())
    })
}

async fn admit(app: &App, parts: &http::request::Parts, ip: IpAddr) -> Admission {
    let core = app.services.core();
    if !core.hub.admit_ip(ip, core.config.ws.max_connections_per_ip) {
        return Admission::Refused(1013, "too_many_connections");
    }
    let refused = |code, reason| {
        core.hub.release_ip(ip);
        Admission::Refused(code, reason)
    };
    if let Some(origin) = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    {
        let allowed = &core.config.http.cors_origins;
        if origin != "null"
            && !same_origin(origin, parts)
            && !allowed.iter().any(|a| a == origin || a == "*")
        {
            return refused(1008, "origin_not_allowed");
        }
    }
    let token = crate::http::extract::bearer(&parts.headers)
        .map(str::to_owned)
        .or_else(|| query_token(parts));
    let Some(token) = token else {
        let (code, reason) = Error::Unauthenticated.close();
        return refused(code, reason);
    };
    match app.services.auth.authenticate(&token).await {
        Ok(a) => Admission::Accepted(a),
        Err(e) => {
            e.log("websocket admission");
            let (code, reason) = e.close();
            refused(code, reason)
        }
    }
}

/// An `Origin` naming the host the request was sent to (`http(s)://` + the `Host` header): a
/// page this server served itself, such as the web client at `/app/`. A browser does not let a
/// page of another site send this server's origin, so cross-site sockets are still refused.
fn same_origin(origin: &str, parts: &http::request::Parts) -> bool {
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()));
    matches!((authority, host), (Some(a), Some(h)) if !a.is_empty() && a.eq_ignore_ascii_case(h))
}

fn header_has(parts: &http::request::Parts, name: header::HeaderName, token: &str) -> bool {
    parts
        .headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case(token))
}

/// Answers a WebSocket upgrade request and spawns the socket task.
pub(crate) async fn upgrade(
    app: Arc<App>,
    mut parts: http::request::Parts,
    ip: IpAddr,
) -> Result<Response<Body>, ApiError> {
    let key = parts
        .headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| k.as_bytes().to_vec());
    let ok = parts.method == http::Method::GET
        && header_has(&parts, header::UPGRADE, "websocket")
        && header_has(&parts, header::CONNECTION, "upgrade")
        && parts
            .headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13");
    let (Some(key), true) = (key, ok) else {
        let mut e = ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            "WebSocket upgrade required",
        );
        e.allow = None;
        return Err(e);
    };
    let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
        return Err(ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            "This connection cannot be upgraded (serve with upgrades enabled)",
        ));
    };
    let admission = admit(&app, &parts, ip).await;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
    let tasks = app.ws_tasks.clone();
    let shutdown = app.ws_shutdown.clone();
    tasks.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                if let Admission::Accepted(_) = admission {
                    app.services.core().hub.release_ip(ip);
                }
                return;
            }
        };
        let mut ws = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(ws_config()),
        )
        .await;
        match admission {
            Admission::Refused(code, reason) => {
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    ws.close(Some(close_frame(code, reason))),
                )
                .await;
                // Drain until the peer answers the close (bounded).
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(2), drain(&mut ws)).await;
            }
            Admission::Accepted(auth) => {
                conn::run(app.clone(), ws, auth, shutdown).await;
                app.services.core().hub.release_ip(ip);
            }
        }
    });
    let mut resp = Response::new(Body::default());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    Ok(resp)
}

async fn drain(ws: &mut Socket) {
    use futures_util::StreamExt;
    while let Some(Ok(_)) = ws.next().await {}
}

pub(crate) fn close_frame(code: u16, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    }
}
