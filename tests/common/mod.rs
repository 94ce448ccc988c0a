//! Shared test harness: a real server on 127.0.0.1:0 and a typed HTTP client.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

pub mod admin;
pub mod authz_fixture;
pub mod authz_frames;
pub mod authz_routes;
pub mod avatars;
pub mod backup;
pub mod binary;
pub mod browser;
pub mod calls;
pub mod chats;
pub mod cluster;
pub mod push_service;
pub mod read_markers;
pub mod realtime;
pub mod scenarios;
pub mod schedule;
pub mod session_scenarios;
pub mod ws;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use melo::{Config, Melo, MemoryStore, StaticKeys, Store};
use serde_json::Value;
use tokio::net::TcpListener;

/// One JWT/data key set per test binary: RSA generation is slow.
pub fn keys() -> Arc<StaticKeys> {
    static KEYS: OnceLock<Arc<StaticKeys>> = OnceLock::new();
    KEYS.get_or_init(|| Arc::new(StaticKeys::generate().expect("keys")))
        .clone()
}

/// A user's E2E public key (SPKI PEM, RSA-2048), generated once per test binary.
pub fn user_pem() -> String {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| new_pem(2048)).clone()
}

pub fn new_pem(bits: usize) -> String {
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    rsa::RsaPrivateKey::new(&mut rand::thread_rng(), bits)
        .expect("rsa")
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("pem")
}

/// Test defaults: cheap bcrypt, limits out of the way (tests of limits set their own).
pub fn test_config() -> Config {
    let mut c = Config::default();
    c.auth.bcrypt_cost = 4;
    c.limits.rate_limit_calls = 100_000;
    c.limits.failed_login_limit = 1000;
    c.limits.failed_login_account_limit = 100_000;
    c.limits.failed_login_ip_limit = 100_000;
    c
}

pub struct TestServer {
    pub addr: SocketAddr,
    /// The second WebSocket listener (`WS_PORT`: any path).
    pub ws_addr: SocketAddr,
    pub client: Client,
    pub store: Arc<dyn Store>,
    shutdown: Option<tokio::sync::watch::Sender<bool>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(test_config(), Arc::new(MemoryStore::new())).await
    }

    pub async fn start_with(config: Config, store: Arc<dyn Store>) -> Self {
        let melo = Melo::builder(store.clone(), keys())
            .config(config)
            .build()
            .expect("build");
        Self::serve(melo, store).await
    }

    /// One node of a cluster: the shared `store` and `ephemeral`, clustering on.
    pub async fn start_node(
        config: Config,
        store: Arc<dyn Store>,
        ephemeral: Arc<dyn melo::Ephemeral>,
    ) -> Self {
        let melo = Melo::builder(store.clone(), keys())
            .config(config)
            .ephemeral(ephemeral)
            .cluster(true)
            .build()
            .expect("build");
        Self::serve(melo, store).await
    }

    /// Serves an already built `melo` (own key provider, say) on two fresh ports.
    pub async fn serve(melo: Melo, store: Arc<dyn Store>) -> Self {
        Self::serve_shared(Arc::new(melo), store).await
    }

    /// [`TestServer::serve`] for a `melo` the test keeps a handle on (to call its methods).
    pub async fn serve_shared(melo: Arc<Melo>, store: Arc<dyn Store>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let ws_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind ws");
        let ws_addr = ws_listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut rx1 = rx.clone();
            let mut rx2 = rx;
            let http = melo.serve(listener, async move {
                let _ = rx1.changed().await;
            });
            let ws = melo.serve_ws(ws_listener, async move {
                let _ = rx2.changed().await;
            });
            let (a, b) = tokio::join!(http, ws);
            a.expect("serve");
            b.expect("serve ws");
            melo.shutdown().await;
        });
        Self {
            addr,
            ws_addr,
            client: Client::new(format!("http://{addr}")),
            store,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task");
        }
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub raw: Bytes,
    pub body: Value,
}

impl Resp {
    pub fn reason(&self) -> &str {
        self.body["error"]["reason"].as_str().unwrap_or("")
    }

    /// Asserts the error envelope and its reason.
    pub fn assert_error(&self, status: u16, reason: &str) {
        assert_eq!(self.status.as_u16(), status, "status; body: {}", self.body);
        assert_eq!(
            self.body["ok"], false,
            "envelope ok=false; body: {}",
            self.body
        );
        assert_eq!(
            self.body["error"]["code"], status,
            "envelope code; body: {}",
            self.body
        );
        assert_eq!(self.reason(), reason, "reason; body: {}", self.body);
        assert!(self.body["error"]["message"].is_string());
        assert!(self.body["error"]["path"].is_string());
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Clone)]
pub struct Client {
    pub base: String,
    http: HyperClient<HttpConnector, Full<Bytes>>,
}

impl Client {
    pub fn new(base: String) -> Self {
        // The server closes idle keep-alive connections after 10 s (its header-read timeout);
        // retiring them sooner here keeps a request from racing that close under load.
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(4))
            .build_http();
        Self { base, http }
    }

    pub async fn send(&self, req: Request<Full<Bytes>>) -> Resp {
        let resp = self.http.request(req).await.expect("request");
        let (parts, body) = resp.into_parts();
        let raw = body.collect().await.expect("body").to_bytes();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Resp {
            status: parts.status,
            headers: parts.headers,
            raw,
            body,
        }
    }

    pub fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> http::request::Builder {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let mut b = self.request(method, path, token);
        let body = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Full::new(Bytes::from(serde_json::to_vec(v).expect("json")))
            }
            None => Full::new(Bytes::new()),
        };
        self.send(b.body(body).expect("request")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.call(Method::PUT, path, token, Some(body)).await
    }
}

/// A random phone that no other test uses.
pub fn random_phone() -> String {
    use rand::Rng;
    format!("+7999{:07}", rand::thread_rng().gen_range(0..10_000_000u32))
}

pub fn random_device() -> String {
    use rand::Rng;
    format!("{:016x}", rand::thread_rng().gen::<u64>())
}

/// A registered and logged-in user.
#[derive(Clone, Debug)]
pub struct User {
    pub uid: String,
    pub phone: String,
    pub password: String,
    pub device: String,
    pub token: String,
    pub csrf: String,
    pub session_id: i64,
    pub device_token: String,
}

pub async fn register(c: &Client, name: &str) -> (String, String, String) {
    let phone = random_phone();
    let password = format!("Passw0rd-{name}");
    let r = c
        .post(
            "/register",
            None,
            &serde_json::json!({"phone": phone, "name": name, "nickname": name.to_lowercase(),
                                "password": password, "device_id": random_device(), "public_e2e_key": user_pem()}),
        )
        .await;
    assert_eq!(r.status, 200, "register: {}", r.body);
    (
        r.body["unique_id"].as_str().expect("uid").to_owned(),
        phone,
        password,
    )
}

pub async fn login(c: &Client, identifier: &str, password: &str, device: &str) -> Resp {
    c.post(
        "/login",
        None,
        &serde_json::json!({"identifier": identifier, "password": password, "device_id": device}),
    )
    .await
}

/// Logs a registered user in on `device`.
pub async fn login_user(c: &Client, uid: &str, phone: &str, password: &str, device: &str) -> User {
    let r = login(c, phone, password, device).await;
    assert_eq!(r.status, 200, "login: {}", r.body);
    User {
        uid: uid.to_owned(),
        phone: phone.to_owned(),
        password: password.to_owned(),
        device: device.to_owned(),
        token: r.body["access_token"].as_str().expect("token").to_owned(),
        csrf: r.body["csrf_token"].as_str().expect("csrf").to_owned(),
        session_id: r.body["session_id"].as_i64().expect("sid"),
        device_token: r.body["device_token"]
            .as_str()
            .expect("device token")
            .to_owned(),
    }
}

pub async fn new_user(c: &Client, name: &str) -> User {
    let (uid, phone, password) = register(c, name).await;
    login_user(c, &uid, &phone, &password, &random_device()).await
}
