//! Server configuration: plain data with documented defaults.
//!
//! The library never reads the environment or files; the `melo` binary maps the environment
//! variables listed in the repository's `docs/configuration.md` onto these fields.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

pub(crate) mod ip_range;
mod registration;
mod route_limit;
mod validate;
pub use ip_range::IpRange;
pub use registration::Registration;
pub use route_limit::RouteLimit;
pub use validate::env_var;

/// A secret string whose `Debug` prints `[redacted]`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret text. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Serializes as `"[redacted]"` (`--check-config` prints the effective settings).
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Everything that changes observable behaviour. `Config::default()` is the documented default set.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Config {
    /// Authentication and token settings.
    pub auth: AuthConfig,
    /// HTTP limits, CORS and proxies.
    pub http: HttpConfig,
    /// Rate limiting and login lockout.
    pub limits: LimitsConfig,
    /// WebSocket settings.
    pub ws: WsConfig,
    /// Message retention and queues.
    pub messages: MessagesConfig,
    /// Presence, calls and ICE.
    pub realtime: RealtimeConfig,
    /// Web Push.
    pub push: PushConfig,
    /// `version` / `server_version` reported by `/` and `/status`. Default: the crate version.
    pub server_version: String,
    /// Serve `GET /metrics` on the API listener (`METRICS_ENABLED`). Default: true.
    pub metrics_enabled: bool,
    /// The metrics have a listener of their own ([`crate::Melo::serve_metrics`], the binary's
    /// `METRICS_ADDR`): the API listener's `/metrics` answers 404 `feature_disabled`. Default:
    /// false.
    pub metrics_separate_listener: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            auth: AuthConfig::default(),
            http: HttpConfig::default(),
            limits: LimitsConfig::default(),
            ws: WsConfig::default(),
            messages: MessagesConfig::default(),
            realtime: RealtimeConfig::default(),
            push: PushConfig::default(),
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
            metrics_enabled: true,
            metrics_separate_listener: false,
        }
    }
}

/// Tokens, sessions and passwords.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
#[non_exhaustive]
pub struct AuthConfig {
    /// JWT `iss` (`JWT_ISSUER`). Default `pixeltoo.ru`.
    pub jwt_issuer: String,
    /// JWT `aud` (`JWT_AUDIENCE`). Default `mvp_clients`.
    pub jwt_audience: String,
    /// Access-token lifetime in minutes (`ACCESS_TOKEN_EXPIRE_MINUTES`). Default 120.
    pub access_token_expire_minutes: u64,
    /// Signing-key rotation period in days (`JWT_KEY_ROTATION_DAYS`). Default 30.
    pub jwt_key_rotation_days: u64,
    /// CSRF token lifetime in seconds (`CSRF_TTL`). Default 7200.
    pub csrf_ttl: u64,
    /// Device-token lifetime in seconds (`DEVICE_TOKEN_TTL`). Default 2 592 000 (30 days).
    pub device_token_ttl: u64,
    /// Link-code lifetime in seconds (`LINK_CODE_TTL`). Default 120.
    pub link_code_ttl: u64,
    /// How often key maintenance runs, in seconds (`KEY_CHECK_SECONDS`): signing-key rotation
    /// is checked and a data key added by `rotate-keys --new-key` is loaded. Default 60.
    pub key_check_secs: u64,
    /// bcrypt cost (`BCRYPT_COST`), 4–31. Default 12.
    pub bcrypt_cost: u32,
    /// Who may register (`REGISTRATION`: `open`, `closed` or `invite`). Default open.
    pub registration: Registration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_issuer: "pixeltoo.ru".into(),
            jwt_audience: "mvp_clients".into(),
            access_token_expire_minutes: 120,
            jwt_key_rotation_days: 30,
            csrf_ttl: 7200,
            device_token_ttl: 2_592_000,
            link_code_ttl: 120,
            key_check_secs: 60,
            bcrypt_cost: 12,
            registration: Registration::Open,
        }
    }
}

impl AuthConfig {
    /// Token lifetime.
    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_expire_minutes.saturating_mul(60))
    }
}

/// HTTP transport settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Port reported by `/status` as `http_port` (`HTTP_PORT`). Default 8088.
    pub http_port: u16,
    /// Port of the second WebSocket listener reported by `/status` (`WS_PORT`; 0 = none). Default 8089.
    pub ws_port: u16,
    /// Largest JSON body in bytes. Default 2 MiB.
    pub max_body_bytes: usize,
    /// Origins allowed by CORS (`CORS_ORIGINS`, comma-separated). Default: none.
    pub cors_origins: Vec<String>,
    /// Reverse proxies, as addresses or CIDR ranges (`TRUSTED_PROXIES`). Default: none.
    ///
    /// When the TCP peer is in one of them, the client is the right-most `X-Forwarded-For`
    /// address that is not (proxies append; entries left of the client's are the client's own
    /// writing).
    pub trusted_proxies: Vec<IpRange>,
    /// Most concurrent TCP connections per listener (`MAX_CONNECTIONS`). Default 19 000.
    pub max_connections: usize,
    /// How long graceful shutdown waits for open connections, in seconds. Default 10.
    pub shutdown_grace_secs: u64,
    /// Send `Strict-Transport-Security` (set when serving TLS). Default false.
    pub hsts: bool,
    /// Serve the web client at `/app/` (`WEB_CLIENT`). Default true.
    pub web_client: bool,
    /// Serve the web client's files from this directory instead of the copy built into the
    /// binary (`WEB_CLIENT_DIR`): a customized client, or client development without rebuilds.
    /// Default: none.
    pub web_client_dir: Option<std::path::PathBuf>,
    /// A path prefix for every route (`PATH_PREFIX`), e.g. `/chat` for a Melo mounted in a
    /// bigger site: the API, the socket (`/chat/ws`), the web client (`/chat/app/`), `/docs`,
    /// `/openapi.json`, the health checks and `/metrics` all move under it, and every other
    /// path answers the JSON 404. Starts with `/`, no trailing `/`, plain path segments
    /// (letters, digits, `-`, `_`, `.`, `~`). Empty (the default): no prefix. The WebSocket
    /// listener (`WS_PORT`) is unaffected: every path there is the socket.
    pub path_prefix: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            http_port: 8088,
            ws_port: 8089,
            max_body_bytes: 2 * 1024 * 1024,
            cors_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            max_connections: 19_000,
            shutdown_grace_secs: 10,
            hsts: false,
            web_client: true,
            web_client_dir: None,
            path_prefix: String::new(),
        }
    }
}

/// HTTP rate limiting and failed-login lockout (docs/protocol.md §3.4).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
#[non_exhaustive]
pub struct LimitsConfig {
    /// Requests per window (`RATE_LIMIT_CALLS`). Default 20.
    pub rate_limit_calls: u64,
    /// Window in seconds (`RATE_LIMIT_PERIOD`). Default 120.
    pub rate_limit_period: u64,
    /// Block after exceeding, in seconds (`BLOCK_PERIOD`). Default 60.
    pub block_period: u64,
    /// Failures of one account from one client IP that lock the account for that IP
    /// (`FAILED_LOGIN_LIMIT`). Default 5.
    pub failed_login_limit: u64,
    /// Failures of one account from every IP that lock it for every IP
    /// (`FAILED_LOGIN_ACCOUNT_LIMIT`). Default 100.
    pub failed_login_account_limit: u64,
    /// Failures from one client IP that lock the IP (`FAILED_LOGIN_IP_LIMIT`). Default 20.
    pub failed_login_ip_limit: u64,
    /// Failure counting window in seconds (`FAILED_LOGIN_WINDOW`). Default 3600.
    pub failed_login_window: u64,
    /// Lock duration in seconds (`FAILED_LOGIN_BLOCK_PERIOD`). Default 300.
    pub failed_login_block_period: u64,
    /// Per-route budgets (`RATE_LIMIT_ROUTES`). A request to such a route counts against that
    /// route's own budget, per user (or per IP for public routes), instead of the default one.
    /// Default none.
    pub routes: Vec<RouteLimit>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            rate_limit_calls: 20,
            rate_limit_period: 120,
            block_period: 60,
            failed_login_limit: 5,
            failed_login_account_limit: 100,
            failed_login_ip_limit: 20,
            failed_login_window: 3600,
            failed_login_block_period: 300,
            routes: Vec::new(),
        }
    }
}

/// WebSocket settings (used by the real-time core).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
#[non_exhaustive]
pub struct WsConfig {
    /// Frames per window per connection (`WS_RATE_LIMIT_MESSAGES`). Default 100.
    pub rate_limit_messages: u64,
    /// Window in seconds (`WS_RATE_LIMIT_PERIOD`). Default 60.
    pub rate_limit_period: u64,
    /// Refused frames in one window that close the socket (`WS_RATE_LIMIT_GRACE`). Default 20.
    pub rate_limit_grace: u64,
    /// Live sockets per client IP (`WS_MAX_CONNECTIONS_PER_IP`). Default 20.
    pub max_connections_per_ip: usize,
    /// Seconds between server pings (`WS_PING_INTERVAL`). Default 30.
    pub ping_interval: u64,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            rate_limit_messages: 100,
            rate_limit_period: 60,
            rate_limit_grace: 20,
            max_connections_per_ip: 20,
            ping_interval: 30,
        }
    }
}

/// Message retention and delivery queues.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
#[non_exhaustive]
pub struct MessagesConfig {
    /// Seconds a message stays in history (`HISTORY_TTL`). Default 1 209 600.
    pub history_ttl: u64,
    /// Seconds a queue entry lives (`QUEUE_TTL`). Default 1 209 600.
    pub queue_ttl: u64,
    /// Queue entries per device (`QUEUE_MAX`). Default 10 000.
    pub queue_max: u64,
    /// Seconds between expiry/overflow sweeps of queues and history (`QUEUE_SWEEP_SECONDS`).
    /// Default 60. A queue may exceed `queue_max` by what arrives between two sweeps.
    pub sweep_interval_secs: u64,
    /// Scheduled messages a user may have pending at once (`SCHEDULE_MAX_PENDING`). Default 100.
    pub schedule_max_pending: u64,
}

impl Default for MessagesConfig {
    fn default() -> Self {
        Self {
            history_ttl: 1_209_600,
            queue_ttl: 1_209_600,
            queue_max: 10_000,
            sweep_interval_secs: 60,
            schedule_max_pending: 100,
        }
    }
}

/// Presence, typing, calls and ICE servers.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RealtimeConfig {
    /// Idle seconds before `away` (`PRESENCE_AWAY_AFTER`). Default 300.
    pub presence_away_after: u64,
    /// Lifetime of a typing indication in seconds (`TYPING_TTL`). Default 10.
    pub typing_ttl: u64,
    /// Ring timeout in seconds (`CALL_RING_TIMEOUT`). Default 45.
    pub call_ring_timeout: u64,
    /// Reconnect grace in seconds (`CALL_RECONNECT_GRACE`). Default 20.
    pub call_reconnect_grace: u64,
    /// STUN URLs (`STUN_URLS`). Default `stun:stun.l.google.com:19302`.
    pub stun_urls: Vec<String>,
    /// TURN URLs (`TURN_URLS`). Default none.
    pub turn_urls: Vec<String>,
    /// coturn `use-auth-secret` shared secret (`TURN_SECRET`). Default none.
    pub turn_secret: Option<Secret>,
    /// TURN credential lifetime in seconds (`TURN_TTL`). Default 86 400.
    pub turn_ttl: u64,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            presence_away_after: 300,
            typing_ttl: 10,
            call_ring_timeout: 45,
            call_reconnect_grace: 20,
            stun_urls: vec!["stun:stun.l.google.com:19302".into()],
            turn_urls: Vec::new(),
            turn_secret: None,
            turn_ttl: 86_400,
        }
    }
}

/// Web Push and avatars.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
#[non_exhaustive]
pub struct PushConfig {
    /// VAPID `sub` claim (`VAPID_SUBJECT`). Default `mailto:admin@localhost`.
    pub vapid_subject: String,
    /// Minimum gap between message pushes to one device, seconds (`PUSH_COALESCE_SECONDS`). Default 30.
    pub coalesce_seconds: u64,
    /// Lifetime of message and contact-request pushes at the push service, seconds
    /// (`PUSH_TTL`). Default 86 400. Call pushes live `CALL_RING_TIMEOUT`.
    pub ttl_secs: u64,
    /// Accept `http://` push endpoints (`PUSH_ALLOW_HTTP`). Default false: only https, so a
    /// client cannot aim the server's push requests at plain-HTTP services; enable for tests.
    pub allow_http: bool,
    /// Accept push endpoints on hosts with loopback, private, link-local… addresses
    /// (`PUSH_ALLOW_PRIVATE`). Default false: a web endpoint's host must resolve to public
    /// addresses only, checked at registration and at each delivery, so a client cannot aim the
    /// server's push requests at internal services; enable for tests or a private push service.
    pub allow_private: bool,
    /// Largest avatar in bytes (`AVATAR_MAX_BYTES`). Default 1 048 576.
    pub avatar_max_bytes: usize,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            vapid_subject: "mailto:admin@localhost".into(),
            coalesce_seconds: 30,
            ttl_secs: 86_400,
            allow_http: false,
            allow_private: false,
            avatar_max_bytes: 1_048_576,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_secrets_redacted() {
        let c = Config::default();
        assert!(c.validate().is_ok());
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "[redacted]");
        let mut c = Config::default();
        c.realtime.turn_secret = Some(Secret::new("hunter2"));
        let json = serde_json::to_string(&c).expect("json");
        assert!(json.contains("\"turn_secret\":\"[redacted]\""), "{json}");
        assert!(!json.contains("hunter2"));
        let mut c = Config::default();
        c.auth.bcrypt_cost = 3;
        assert_eq!(
            c.validate().expect_err("invalid"),
            "BCRYPT_COST (auth.bcrypt_cost) must be 4..=31"
        );
        let mut c = Config::default();
        c.realtime.typing_ttl = 0;
        assert!(c
            .validate()
            .expect_err("invalid")
            .starts_with("TYPING_TTL (realtime.typing_ttl)"));
        let mut c = Config::default();
        c.realtime.turn_urls = vec!["http://turn.example".into()];
        assert!(c.validate().expect_err("invalid").starts_with("TURN_URLS"));
        let mut c = Config::default();
        c.ws.max_connections_per_ip = 0;
        assert!(c
            .validate()
            .expect_err("invalid")
            .starts_with("WS_MAX_CONNECTIONS_PER_IP"));
    }
}
