//! Server configuration: plain data with documented defaults.
//!
//! The library never reads the environment or files; `examples/server/main.rs` maps the environment
//! variables of PROTOCOL.md §3.5 onto these fields.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

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

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Everything that changes observable behaviour. `Config::default()` is the PROTOCOL default set.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
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
    /// Serve `GET /metrics`. Default: true.
    pub metrics_enabled: bool,
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
        }
    }
}

/// Tokens, sessions and passwords.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
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
    /// bcrypt cost (`BCRYPT_COST`), 4–31. Default 12.
    pub bcrypt_cost: u32,
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
            bcrypt_cost: 12,
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
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// Port reported by `/status` as `http_port` (`HTTP_PORT`). Default 8088.
    pub http_port: u16,
    /// Port of the second WebSocket listener reported by `/status` (`WS_PORT`; 0 = none). Default 8089.
    pub ws_port: u16,
    /// Largest JSON body in bytes. Default 2 MiB.
    pub max_body_bytes: usize,
    /// Origins allowed by CORS (`CORS_ORIGINS`, comma-separated). Default: none.
    pub cors_origins: Vec<String>,
    /// Peers whose first `X-Forwarded-For` address is trusted (`TRUSTED_PROXIES`). Default: none.
    pub trusted_proxies: Vec<IpAddr>,
    /// Most concurrent TCP connections per listener (`MAX_CONNECTIONS`). Default 19 000.
    pub max_connections: usize,
    /// How long graceful shutdown waits for open connections, in seconds. Default 10.
    pub shutdown_grace_secs: u64,
    /// Send `Strict-Transport-Security` (set when serving TLS). Default false.
    pub hsts: bool,
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
        }
    }
}

/// HTTP rate limiting and failed-login lockout (PROTOCOL §3.4).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// Requests per window (`RATE_LIMIT_CALLS`). Default 20.
    pub rate_limit_calls: u64,
    /// Window in seconds (`RATE_LIMIT_PERIOD`). Default 120.
    pub rate_limit_period: u64,
    /// Block after exceeding, in seconds (`BLOCK_PERIOD`). Default 60.
    pub block_period: u64,
    /// Failures that lock an account (`FAILED_LOGIN_LIMIT`). Default 5.
    pub failed_login_limit: u64,
    /// Failures that lock an IP (`FAILED_LOGIN_IP_LIMIT`). Default 20.
    pub failed_login_ip_limit: u64,
    /// Failure counting window in seconds (`FAILED_LOGIN_WINDOW`). Default 3600.
    pub failed_login_window: u64,
    /// Lock duration in seconds (`FAILED_LOGIN_BLOCK_PERIOD`). Default 300.
    pub failed_login_block_period: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            rate_limit_calls: 20,
            rate_limit_period: 120,
            block_period: 60,
            failed_login_limit: 5,
            failed_login_ip_limit: 20,
            failed_login_window: 3600,
            failed_login_block_period: 300,
        }
    }
}

/// WebSocket settings (used by the real-time core).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
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
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
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
}

impl Default for MessagesConfig {
    fn default() -> Self {
        Self {
            history_ttl: 1_209_600,
            queue_ttl: 1_209_600,
            queue_max: 10_000,
            sweep_interval_secs: 60,
        }
    }
}

/// Presence, typing, calls and ICE servers.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
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
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
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
            avatar_max_bytes: 1_048_576,
        }
    }
}

impl Config {
    /// Checks ranges; the builder calls this.
    pub fn validate(&self) -> Result<(), String> {
        let a = &self.auth;
        if !(4..=31).contains(&a.bcrypt_cost) {
            return Err("auth.bcrypt_cost must be 4..=31".into());
        }
        if a.access_token_expire_minutes == 0 || a.access_token_expire_minutes > 525_600 {
            return Err("auth.access_token_expire_minutes must be 1..=525600 (one year)".into());
        }
        // Durations are added to clocks; keep every one far from overflow (10 years).
        const MAX_SECS: u64 = 315_360_000;
        let l = &self.limits;
        let secs = [
            ("auth.csrf_ttl", a.csrf_ttl),
            ("auth.device_token_ttl", a.device_token_ttl),
            ("auth.link_code_ttl", a.link_code_ttl),
            ("limits.rate_limit_period", l.rate_limit_period),
            ("limits.block_period", l.block_period),
            ("limits.failed_login_window", l.failed_login_window),
            (
                "limits.failed_login_block_period",
                l.failed_login_block_period,
            ),
            ("ws.rate_limit_period", self.ws.rate_limit_period),
            ("messages.queue_ttl", self.messages.queue_ttl),
            ("messages.history_ttl", self.messages.history_ttl),
        ];
        if let Some((name, _)) = secs.iter().find(|(_, v)| *v > MAX_SECS) {
            return Err(format!("{name} must be at most {MAX_SECS} seconds"));
        }
        if a.jwt_key_rotation_days > 3650 {
            return Err("auth.jwt_key_rotation_days must be at most 3650".into());
        }
        if a.jwt_key_rotation_days == 0 {
            return Err("auth.jwt_key_rotation_days must be > 0".into());
        }
        if a.jwt_issuer.is_empty() || a.jwt_audience.is_empty() {
            return Err("auth.jwt_issuer and auth.jwt_audience must not be empty".into());
        }
        let l = &self.limits;
        if l.rate_limit_calls == 0 || l.rate_limit_period == 0 {
            return Err("limits.rate_limit_calls and rate_limit_period must be > 0".into());
        }
        if l.failed_login_limit == 0 || l.failed_login_ip_limit == 0 || l.failed_login_window == 0 {
            return Err("limits.failed_login_* must be > 0".into());
        }
        if self.http.max_body_bytes == 0 || self.http.max_connections == 0 {
            return Err("http.max_body_bytes and http.max_connections must be > 0".into());
        }
        Ok(())
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
        let mut bad = Config::default();
        bad.auth.bcrypt_cost = 3;
        assert!(bad.validate().is_err());
    }
}
