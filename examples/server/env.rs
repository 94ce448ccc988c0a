//! Environment → `melo::Config`, with the variable names of the README's Configuration section.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use melo::config::{Config, Secret};

/// Reads `KEY=VALUE` lines of a `.env` file into the process environment without overriding
/// variables that are already set. Blank lines and `#` comments are skipped; values may be
/// wrapped in single or double quotes.
pub(crate) fn load_dotenv(path: &Path) -> std::io::Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        if std::env::var_os(k.trim()).is_none() {
            std::env::set_var(k.trim(), v);
        }
    }
    Ok(())
}

/// A view of the environment with typed getters that name the variable on error.
pub(crate) struct Env(HashMap<String, String>);

impl Env {
    pub(crate) fn from_process() -> Self {
        Self(std::env::vars().collect())
    }

    pub(crate) fn str(&self, key: &str) -> Option<String> {
        self.0
            .get(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn parse<T: FromStr>(&self, key: &str, into: &mut T) -> Result<(), String> {
        if let Some(v) = self.str(key) {
            *into = v
                .parse()
                .map_err(|_| format!("{key}={v:?} is not a valid value"))?;
        }
        Ok(())
    }

    fn list(&self, key: &str, into: &mut Vec<String>) {
        if let Some(v) = self.0.get(key) {
            *into = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
    }

    /// Builds the library config. `HOST`, ports, `DB_URL`, `REDIS_URL` and paths are read by
    /// `main`.
    pub(crate) fn config(&self) -> Result<Config, String> {
        let mut c = Config::default();
        let a = &mut c.auth;
        if let Some(v) = self.str("JWT_ISSUER") {
            a.jwt_issuer = v;
        }
        if let Some(v) = self.str("JWT_AUDIENCE") {
            a.jwt_audience = v;
        }
        self.parse(
            "ACCESS_TOKEN_EXPIRE_MINUTES",
            &mut a.access_token_expire_minutes,
        )?;
        self.parse("JWT_KEY_ROTATION_DAYS", &mut a.jwt_key_rotation_days)?;
        self.parse("CSRF_TTL", &mut a.csrf_ttl)?;
        self.parse("DEVICE_TOKEN_TTL", &mut a.device_token_ttl)?;
        self.parse("LINK_CODE_TTL", &mut a.link_code_ttl)?;
        self.parse("KEY_CHECK_SECONDS", &mut a.key_check_secs)?;
        self.parse("BCRYPT_COST", &mut a.bcrypt_cost)?;
        if let Some(v) = self.str("REGISTRATION") {
            a.registration = v.parse().map_err(|e| format!("REGISTRATION: {e}"))?;
        }
        let mut routes = Vec::new();
        self.list("RATE_LIMIT_ROUTES", &mut routes);
        if !routes.is_empty() {
            c.limits.routes = routes
                .iter()
                .map(|r| r.parse().map_err(|e| format!("RATE_LIMIT_ROUTES: {e}")))
                .collect::<Result<_, String>>()?;
        }
        let h = &mut c.http;
        self.parse("HTTP_PORT", &mut h.http_port)?;
        self.parse("WS_PORT", &mut h.ws_port)?;
        self.parse("MAX_CONNECTIONS", &mut h.max_connections)?;
        self.parse("MAX_BODY_BYTES", &mut h.max_body_bytes)?;
        self.parse("SHUTDOWN_GRACE_SECONDS", &mut h.shutdown_grace_secs)?;
        self.list("CORS_ORIGINS", &mut h.cors_origins);
        let mut proxies = Vec::new();
        self.list("TRUSTED_PROXIES", &mut proxies);
        h.trusted_proxies = proxies
            .iter()
            .map(|p| {
                p.parse::<melo::config::IpRange>()
                    .map_err(|e| format!("TRUSTED_PROXIES: {e}"))
            })
            .collect::<Result<_, _>>()?;
        let l = &mut c.limits;
        self.parse("RATE_LIMIT_CALLS", &mut l.rate_limit_calls)?;
        self.parse("RATE_LIMIT_PERIOD", &mut l.rate_limit_period)?;
        self.parse("BLOCK_PERIOD", &mut l.block_period)?;
        self.parse("FAILED_LOGIN_LIMIT", &mut l.failed_login_limit)?;
        self.parse(
            "FAILED_LOGIN_ACCOUNT_LIMIT",
            &mut l.failed_login_account_limit,
        )?;
        self.parse("FAILED_LOGIN_IP_LIMIT", &mut l.failed_login_ip_limit)?;
        self.parse("FAILED_LOGIN_WINDOW", &mut l.failed_login_window)?;
        self.parse(
            "FAILED_LOGIN_BLOCK_PERIOD",
            &mut l.failed_login_block_period,
        )?;
        let w = &mut c.ws;
        self.parse("WS_RATE_LIMIT_MESSAGES", &mut w.rate_limit_messages)?;
        self.parse("WS_RATE_LIMIT_PERIOD", &mut w.rate_limit_period)?;
        self.parse("WS_RATE_LIMIT_GRACE", &mut w.rate_limit_grace)?;
        self.parse("WS_MAX_CONNECTIONS_PER_IP", &mut w.max_connections_per_ip)?;
        self.parse("WS_PING_INTERVAL", &mut w.ping_interval)?;
        let m = &mut c.messages;
        self.parse("HISTORY_TTL", &mut m.history_ttl)?;
        self.parse("QUEUE_TTL", &mut m.queue_ttl)?;
        self.parse("QUEUE_MAX", &mut m.queue_max)?;
        self.parse("QUEUE_SWEEP_SECONDS", &mut m.sweep_interval_secs)?;
        let r = &mut c.realtime;
        self.parse("PRESENCE_AWAY_AFTER", &mut r.presence_away_after)?;
        self.parse("TYPING_TTL", &mut r.typing_ttl)?;
        self.parse("CALL_RING_TIMEOUT", &mut r.call_ring_timeout)?;
        self.parse("CALL_RECONNECT_GRACE", &mut r.call_reconnect_grace)?;
        self.list("STUN_URLS", &mut r.stun_urls);
        self.list("TURN_URLS", &mut r.turn_urls);
        r.turn_secret = self.str("TURN_SECRET").map(Secret::new);
        self.parse("TURN_TTL", &mut r.turn_ttl)?;
        let p = &mut c.push;
        if let Some(v) = self.str("VAPID_SUBJECT") {
            p.vapid_subject = v;
        }
        self.parse("PUSH_COALESCE_SECONDS", &mut p.coalesce_seconds)?;
        self.parse("PUSH_TTL", &mut p.ttl_secs)?;
        self.parse("PUSH_ALLOW_HTTP", &mut p.allow_http)?;
        self.parse("PUSH_ALLOW_PRIVATE", &mut p.allow_private)?;
        self.parse("AVATAR_MAX_BYTES", &mut p.avatar_max_bytes)?;
        self.parse("METRICS_ENABLED", &mut c.metrics_enabled)?;
        if let Some(v) = self.str("SERVER_VERSION") {
            c.server_version = v;
        }
        c.validate()?;
        Ok(c)
    }
}
