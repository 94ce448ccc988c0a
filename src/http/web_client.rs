//! The web client at `/app/`: the files of the repository's `web/` directory, embedded at build
//! time (`build.rs`) or read from `http.web_client_dir`, served with a strict
//! Content-Security-Policy. Static files are public, unmetered and never touch the store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::response::{raw, Body};
use crate::config::HttpConfig;

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// Where the client lives in the URL space.
pub(crate) const MOUNT: &str = "/app";

/// The policy of every `/app/` response: scripts, styles, images, workers and connections from
/// this origin only (`'self'` covers same-origin `ws:`/`wss:`), no inline code, no frames.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' blob: data:; connect-src 'self'; media-src 'self' blob: mediastream:; \
    worker-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// Largest file served from `web_client_dir` (the embedded files are whatever was built in).
const MAX_DIR_FILE: u64 = 16 * 1024 * 1024;

/// One embedded file.
pub(crate) struct Asset {
    bytes: Bytes,
    etag: HeaderValue,
}

/// The configured source of the client's files.
pub(crate) enum WebClient {
    /// `WEB_CLIENT=false`: `/app/` is an ordinary unknown path.
    Off,
    /// The files built into the binary.
    Embedded(HashMap<&'static str, Asset>),
    /// `WEB_CLIENT_DIR`: read on every request (for customized clients and client development).
    Dir(PathBuf),
}

impl WebClient {
    pub(crate) fn from_config(http: &HttpConfig) -> Self {
        if !http.web_client {
            return Self::Off;
        }
        if let Some(dir) = &http.web_client_dir {
            return Self::Dir(dir.clone());
        }
        Self::Embedded(
            WEB_ASSETS
                .iter()
                .map(|(path, bytes)| {
                    let digest = Sha256::digest(bytes);
                    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                    let etag = HeaderValue::from_str(&format!("\"{hex}\""))
                        .unwrap_or(HeaderValue::from_static("\"0\""));
                    (
                        *path,
                        Asset {
                            bytes: Bytes::from_static(bytes),
                            etag,
                        },
                    )
                })
                .collect(),
        )
    }

    /// Whether `path` belongs to the client (so it is public and unmetered).
    pub(crate) fn owns(&self, path: &str) -> bool {
        !matches!(self, Self::Off)
            && path
                .strip_prefix(MOUNT)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// Answers a request for a path that [`owns`](Self::owns) returned true for.
    pub(crate) async fn serve(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Response<Body>, ApiError> {
        if method != Method::GET && method != Method::HEAD {
            return Err(ApiError::method_not_allowed(
                method,
                path,
                "GET, HEAD, OPTIONS".into(),
            ));
        }
        let rest = path.strip_prefix(MOUNT).unwrap_or(path);
        if rest.is_empty() {
            // `/app` → `/app/`, relative so that it stays right under any path prefix.
            let mut resp = raw(
                StatusCode::PERMANENT_REDIRECT,
                "text/plain; charset=utf-8",
                Bytes::new(),
            );
            resp.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("app/"));
            return Ok(resp);
        }
        let rel = match rest.trim_start_matches('/') {
            "" => "index.html",
            r => r,
        };
        if !safe_relative(rel) {
            return Err(ApiError::not_found(method, path));
        }
        let content_type = content_type(rel);
        let mut resp = match self {
            Self::Off => return Err(ApiError::not_found(method, path)),
            Self::Embedded(files) => {
                let Some(asset) = files.get(rel) else {
                    return Err(ApiError::not_found(method, path));
                };
                let fresh = headers
                    .get(header::IF_NONE_MATCH)
                    .is_some_and(|v| v.as_bytes() == asset.etag.as_bytes());
                let mut resp = if fresh {
                    raw(StatusCode::NOT_MODIFIED, content_type, Bytes::new())
                } else {
                    raw(StatusCode::OK, content_type, asset.bytes.clone())
                };
                resp.headers_mut().insert(header::ETAG, asset.etag.clone());
                // Revalidated on every load: a server upgrade is seen at once, and an unchanged
                // file costs a 304.
                resp.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                resp
            }
            Self::Dir(dir) => {
                let Some(bytes) = read_below(dir, rel).await else {
                    return Err(ApiError::not_found(method, path));
                };
                let mut resp = raw(StatusCode::OK, content_type, bytes);
                resp.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                resp
            }
        };
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(
            "cross-origin-opener-policy",
            HeaderValue::from_static("same-origin"),
        );
        h.insert(
            "permissions-policy",
            HeaderValue::from_static(
                "microphone=(self), camera=(self), geolocation=(), payment=(), usb=()",
            ),
        );
        Ok(resp)
    }
}

/// A path of plain segments (`[A-Za-z0-9._-]`, not starting with a dot): no traversal, no
/// hidden files, nothing percent-encoded.
fn safe_relative(rel: &str) -> bool {
    rel.len() <= 256
        && rel.split('/').all(|seg| {
            !seg.is_empty()
                && !seg.starts_with('.')
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

/// A regular file below `dir` (symbolic links may not lead out of it), at most `MAX_DIR_FILE`.
async fn read_below(dir: &Path, rel: &str) -> Option<Bytes> {
    let base = tokio::fs::canonicalize(dir).await.ok()?;
    let file = tokio::fs::canonicalize(base.join(rel)).await.ok()?;
    if !file.starts_with(&base) {
        return None;
    }
    let meta = tokio::fs::metadata(&file).await.ok()?;
    if !meta.is_file() || meta.len() > MAX_DIR_FILE {
        return None;
    }
    match tokio::fs::read(&file).await {
        Ok(b) => Some(Bytes::from(b)),
        Err(e) => {
            tracing::warn!(error = %e, "web client file not read");
            None
        }
    }
}

fn content_type(rel: &str) -> &'static str {
    match rel.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_segments_are_served() {
        for ok in ["index.html", "js/app.js", "icons/a-b_c.svg"] {
            assert!(safe_relative(ok), "{ok}");
        }
        for bad in [
            "../Cargo.toml",
            "js/../../x",
            ".env",
            "js/.hidden",
            "a//b",
            "a/",
            "%2e%2e/x",
            "a b",
            "a\\b",
        ] {
            assert!(!safe_relative(bad), "{bad}");
        }
    }

    #[test]
    fn mount_matches_the_app_tree_only() {
        let client = WebClient::Dir(PathBuf::from("/nonexistent"));
        assert!(client.owns("/app"));
        assert!(client.owns("/app/"));
        assert!(client.owns("/app/js/app.js"));
        assert!(!client.owns("/apple"));
        assert!(!client.owns("/ap"));
        assert!(!WebClient::Off.owns("/app/"));
    }
}
