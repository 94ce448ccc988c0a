//! A test Web Push service: a real HTTP server on 127.0.0.1:0 that plays both the push service
//! (checks the VAPID `Authorization` header, RFC 8292) and the browser (holds the subscription's
//! private key and auth secret, decrypts the `aes128gcm` body, RFC 8291/8188).
//!
//! The decryption here is written independently of `melo::push` (HKDF spelled out with HMAC), so
//! a bug shared by both sides cannot make a test pass.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use rand::RngCore;
use serde_json::Value;
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// One push request as the service saw it.
#[derive(Clone, Debug)]
pub struct Received {
    /// Request path (the endpoint's path).
    pub path: String,
    /// `TTL` header.
    pub ttl: Option<u32>,
    /// `Urgency` header.
    pub urgency: Option<String>,
    /// `Content-Encoding` header.
    pub content_encoding: Option<String>,
    /// The decrypted body as JSON, `Null` if it did not decrypt or parse (see `error`).
    pub payload: Value,
    /// The VAPID header verified: ES256 signature against `k`, `aud` = this origin, `exp` in
    /// the future and at most 24 h away, `sub` present.
    pub vapid_ok: bool,
    /// Why VAPID or decryption failed, if it did.
    pub error: Option<String>,
}

#[derive(Default)]
struct Rules {
    status: HashMap<String, u16>,
    delay: HashMap<String, Duration>,
}

struct State {
    origin: String,
    secret: SecretKey,
    auth: [u8; 16],
    received: Mutex<Vec<Received>>,
    rules: Mutex<Rules>,
    notify: Notify,
}

/// The running service; stops when dropped.
pub struct PushService {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl PushService {
    /// Starts a service with a fresh subscription key pair.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut auth = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut auth);
        let state = Arc::new(State {
            origin: format!("http://{addr}"),
            secret: SecretKey::random(&mut rand::rngs::OsRng),
            auth,
            received: Mutex::new(Vec::new()),
            rules: Mutex::new(Rules::default()),
            notify: Notify::new(),
        });
        let accept_state = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = accept_state.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, state, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        self.state.origin.clone()
    }

    /// The endpoint URL for `path` (e.g. `/push/1`).
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.state.origin)
    }

    /// The subscription's public key: base64url of the 65-byte uncompressed point.
    pub fn p256dh(&self) -> String {
        URL_SAFE_NO_PAD.encode(
            self.state
                .secret
                .public_key()
                .to_encoded_point(false)
                .as_bytes(),
        )
    }

    /// The subscription's auth secret, base64url.
    pub fn auth(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.state.auth)
    }

    /// The subscription as `melo::push::PushSubscription` serializes it (tagged by platform).
    pub fn subscription_json(&self, path: &str) -> Value {
        serde_json::json!({
            "platform": "web",
            "endpoint": self.endpoint(path),
            "p256dh": self.p256dh(),
            "auth": self.auth(),
        })
    }

    /// The `subscription` object of `POST /register_push` (PROTOCOL §4.9), as a browser's
    /// `PushSubscription.toJSON()` gives it.
    pub fn browser_subscription(&self, path: &str) -> Value {
        serde_json::json!({
            "endpoint": self.endpoint(path),
            "keys": {"p256dh": self.p256dh(), "auth": self.auth()},
        })
    }

    /// Answer requests to `path` with `status` (e.g. 410: the subscription expired). They are
    /// still recorded.
    pub fn respond_with(&self, path: &str, status: u16) {
        self.state
            .rules
            .lock()
            .unwrap()
            .status
            .insert(path.to_string(), status);
    }

    /// Wait `delay` before answering requests to `path` (to test client timeouts).
    pub fn delay(&self, path: &str, delay: Duration) {
        self.state
            .rules
            .lock()
            .unwrap()
            .delay
            .insert(path.to_string(), delay);
    }

    /// Everything received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` notifications arrived; panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.state.notify.notified();
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "push service: {} of {n} notifications after {timeout:?}",
                    self.received().len()
                );
            }
        }
    }
}

impl Drop for PushService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let path = parts.uri.path().to_string();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();

    let vapid = if parts.method == http::Method::POST {
        verify_vapid(&state.origin, header("authorization").as_deref())
    } else {
        Err(format!("method {}", parts.method))
    };
    let decrypted = decrypt(&state.secret, &state.auth, &body).and_then(|plain| {
        serde_json::from_slice::<Value>(&plain).map_err(|e| format!("payload is not JSON: {e}"))
    });
    let error = match (&vapid, &decrypted) {
        (Err(e), _) => Some(format!("vapid: {e}")),
        (_, Err(e)) => Some(format!("decrypt: {e}")),
        _ => None,
    };
    let received = Received {
        path: path.clone(),
        ttl: header("ttl").and_then(|t| t.parse().ok()),
        urgency: header("urgency"),
        content_encoding: header("content-encoding"),
        payload: decrypted.unwrap_or(Value::Null),
        vapid_ok: vapid.is_ok(),
        error,
    };
    let (status, delay) = {
        let rules = state.rules.lock().unwrap();
        (
            rules.status.get(&path).copied(),
            rules.delay.get(&path).copied(),
        )
    };
    // A real service refuses bad VAPID with 401/403 and undecryptable bodies are the browser's
    // problem; here both are refused so a broken sender cannot pass unnoticed.
    let status = status.unwrap_or(if !received.vapid_ok {
        401
    } else if received.error.is_some() {
        400
    } else {
        201
    });
    state.received.lock().unwrap().push(received);
    state.notify.notify_waiters();
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    Ok(response)
}

fn b64url(s: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|e| format!("base64url: {e}"))
}

/// RFC 8292 §3: `vapid t=<jwt>, k=<key>`.
fn verify_vapid(origin: &str, header: Option<&str>) -> Result<(), String> {
    let header = header.ok_or("no Authorization header")?;
    let params = header
        .strip_prefix("vapid ")
        .ok_or("Authorization scheme is not vapid")?;
    let mut t = None;
    let mut k = None;
    for param in params.split(',') {
        match param.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.trim()),
            Some(("k", v)) => k = Some(v.trim()),
            _ => return Err(format!("unexpected parameter {param:?}")),
        }
    }
    let (t, k) = (t.ok_or("no t=")?, k.ok_or("no k=")?);
    let key = VerifyingKey::from_sec1_bytes(&b64url(k)?).map_err(|_| "k is not a P-256 point")?;
    let mut parts = t.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("JWT is not three parts".into());
    };
    let head: Value = serde_json::from_slice(&b64url(h)?).map_err(|e| e.to_string())?;
    if head["alg"] != "ES256" || head["typ"] != "JWT" {
        return Err(format!("JWT header {head}"));
    }
    let sig = Signature::from_slice(&b64url(s)?).map_err(|_| "signature is not 64 bytes")?;
    key.verify(format!("{h}.{c}").as_bytes(), &sig)
        .map_err(|_| "bad signature")?;
    let claims: Value = serde_json::from_slice(&b64url(c)?).map_err(|e| e.to_string())?;
    if claims["aud"] != origin {
        return Err(format!("aud {} is not {origin}", claims["aud"]));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exp = claims["exp"].as_u64().ok_or("no exp")?;
    if exp <= now || exp > now + 24 * 3600 {
        return Err(format!("exp {exp} not within 24 h of {now}"));
    }
    match claims["sub"].as_str() {
        Some(sub) if !sub.is_empty() => Ok(()),
        _ => Err("no sub".into()),
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// HKDF-SHA256 (RFC 5869) for outputs of at most 32 bytes: one HMAC block.
fn hkdf(salt: &[u8], ikm: &[u8], info: &[&[u8]], len: usize) -> Vec<u8> {
    assert!(len <= 32);
    let prk = hmac(salt, &[ikm]);
    let mut parts: Vec<&[u8]> = info.to_vec();
    parts.push(&[1]);
    hmac(&prk, &parts)[..len].to_vec()
}

/// The browser's side of RFC 8291 §3.4 / RFC 8188 §2.
fn decrypt(ua_secret: &SecretKey, auth: &[u8], body: &[u8]) -> Result<Vec<u8>, String> {
    if body.len() < 21 {
        return Err("body shorter than the header".into());
    }
    let salt = &body[..16];
    let rs = u32::from_be_bytes([body[16], body[17], body[18], body[19]]) as usize;
    let idlen = body[20] as usize;
    if idlen != 65 || body.len() < 21 + idlen {
        return Err(format!("keyid length {idlen}"));
    }
    let as_public_bytes = &body[21..21 + idlen];
    let record = &body[21 + idlen..];
    if rs < 18 || record.len() > rs {
        return Err(format!("record of {} bytes with rs {rs}", record.len()));
    }
    let as_public = PublicKey::from_sec1_bytes(as_public_bytes).map_err(|_| "keyid not a point")?;
    let shared = p256::ecdh::diffie_hellman(ua_secret.to_nonzero_scalar(), as_public.as_affine());
    let ua_public = ua_secret.public_key().to_encoded_point(false);
    let ikm = hkdf(
        auth,
        shared.raw_secret_bytes().as_slice(),
        &[b"WebPush: info\0", ua_public.as_bytes(), as_public_bytes],
        32,
    );
    let cek = hkdf(salt, &ikm, &[b"Content-Encoding: aes128gcm\0"], 16);
    let nonce = hkdf(salt, &ikm, &[b"Content-Encoding: nonce\0"], 12);
    let mut plain = Aes128Gcm::new_from_slice(&cek)
        .unwrap()
        .decrypt(Nonce::from_slice(&nonce), record)
        .map_err(|_| "AES-GCM authentication failed")?;
    while plain.last() == Some(&0) {
        plain.pop();
    }
    match plain.pop() {
        Some(2) => Ok(plain),
        other => Err(format!("record delimiter {other:?}, want 2 (last record)")),
    }
}
