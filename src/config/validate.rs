//! Each setting's environment variable, and the range checks of `Config::validate` whose
//! errors name it.

use std::fmt;

use super::Config;

/// Settings with their environment variable (docs/configuration.md), so errors name what to change.
const VARS: [(&str, &str); 55] = [
    ("auth.jwt_issuer", "JWT_ISSUER"),
    ("auth.jwt_audience", "JWT_AUDIENCE"),
    (
        "auth.access_token_expire_minutes",
        "ACCESS_TOKEN_EXPIRE_MINUTES",
    ),
    ("auth.jwt_key_rotation_days", "JWT_KEY_ROTATION_DAYS"),
    ("auth.csrf_ttl", "CSRF_TTL"),
    ("auth.device_token_ttl", "DEVICE_TOKEN_TTL"),
    ("auth.link_code_ttl", "LINK_CODE_TTL"),
    ("auth.key_check_secs", "KEY_CHECK_SECONDS"),
    ("auth.bcrypt_cost", "BCRYPT_COST"),
    ("auth.registration", "REGISTRATION"),
    ("http.http_port", "HTTP_PORT"),
    ("http.ws_port", "WS_PORT"),
    ("http.max_body_bytes", "MAX_BODY_BYTES"),
    ("http.cors_origins", "CORS_ORIGINS"),
    ("http.trusted_proxies", "TRUSTED_PROXIES"),
    ("http.max_connections", "MAX_CONNECTIONS"),
    ("http.shutdown_grace_secs", "SHUTDOWN_GRACE_SECONDS"),
    ("http.web_client", "WEB_CLIENT"),
    ("http.web_client_dir", "WEB_CLIENT_DIR"),
    ("http.path_prefix", "PATH_PREFIX"),
    ("limits.rate_limit_calls", "RATE_LIMIT_CALLS"),
    ("limits.rate_limit_period", "RATE_LIMIT_PERIOD"),
    ("limits.block_period", "BLOCK_PERIOD"),
    ("limits.failed_login_limit", "FAILED_LOGIN_LIMIT"),
    (
        "limits.failed_login_account_limit",
        "FAILED_LOGIN_ACCOUNT_LIMIT",
    ),
    ("limits.failed_login_ip_limit", "FAILED_LOGIN_IP_LIMIT"),
    ("limits.failed_login_window", "FAILED_LOGIN_WINDOW"),
    ("limits.routes", "RATE_LIMIT_ROUTES"),
    (
        "limits.failed_login_block_period",
        "FAILED_LOGIN_BLOCK_PERIOD",
    ),
    ("ws.rate_limit_messages", "WS_RATE_LIMIT_MESSAGES"),
    ("ws.rate_limit_period", "WS_RATE_LIMIT_PERIOD"),
    ("ws.rate_limit_grace", "WS_RATE_LIMIT_GRACE"),
    ("ws.max_connections_per_ip", "WS_MAX_CONNECTIONS_PER_IP"),
    ("ws.ping_interval", "WS_PING_INTERVAL"),
    ("messages.history_ttl", "HISTORY_TTL"),
    ("messages.queue_ttl", "QUEUE_TTL"),
    ("messages.queue_max", "QUEUE_MAX"),
    ("messages.sweep_interval_secs", "QUEUE_SWEEP_SECONDS"),
    ("messages.schedule_max_pending", "SCHEDULE_MAX_PENDING"),
    ("realtime.presence_away_after", "PRESENCE_AWAY_AFTER"),
    ("realtime.typing_ttl", "TYPING_TTL"),
    ("realtime.call_ring_timeout", "CALL_RING_TIMEOUT"),
    ("realtime.call_reconnect_grace", "CALL_RECONNECT_GRACE"),
    ("realtime.stun_urls", "STUN_URLS"),
    ("realtime.turn_urls", "TURN_URLS"),
    ("realtime.turn_ttl", "TURN_TTL"),
    ("push.vapid_subject", "VAPID_SUBJECT"),
    ("push.coalesce_seconds", "PUSH_COALESCE_SECONDS"),
    ("push.ttl_secs", "PUSH_TTL"),
    ("push.allow_http", "PUSH_ALLOW_HTTP"),
    ("push.allow_private", "PUSH_ALLOW_PRIVATE"),
    ("push.avatar_max_bytes", "AVATAR_MAX_BYTES"),
    ("metrics_enabled", "METRICS_ENABLED"),
    ("metrics_separate_listener", "METRICS_ADDR"),
    ("server_version", "SERVER_VERSION"),
];

/// The environment variable of a setting (`"auth.bcrypt_cost"` → `BCRYPT_COST`).
pub fn env_var(field: &str) -> Option<&'static str> {
    VARS.iter().find(|(f, _)| *f == field).map(|(_, v)| *v)
}

/// "`VAR` (`field`) `problem`": the message of a bad setting.
fn bad(field: &'static str, problem: impl fmt::Display) -> String {
    match env_var(field) {
        Some(var) => format!("{var} ({field}) {problem}"),
        None => format!("{field} {problem}"),
    }
}

/// `http.path_prefix`: empty, or `/segment(/segment)*` of unreserved characters (so that it
/// is the same before and after percent-decoding and cannot hide `..` or a query).
fn check_path_prefix(prefix: &str) -> Result<(), &'static str> {
    if prefix.is_empty() {
        return Ok(());
    }
    let Some(rest) = prefix.strip_prefix('/') else {
        return Err("must start with '/' (or be empty)");
    };
    if rest.is_empty() || rest.ends_with('/') {
        return Err("must not end with '/' (use an empty value for no prefix)");
    }
    for segment in rest.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err("must be plain path segments (no empty, '.' or '..' segment)");
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
        {
            return Err("segments may hold only letters, digits, '-', '_', '.' and '~'");
        }
    }
    Ok(())
}

impl Config {
    /// Checks ranges; the builder calls this. The error names the environment variable and
    /// the field of the first bad setting, e.g. `BCRYPT_COST (auth.bcrypt_cost) must be 4..=31`.
    pub fn validate(&self) -> Result<(), String> {
        // Durations are added to clocks; keep every one far from overflow (10 years).
        const MAX_SECS: u64 = 315_360_000;
        let a = &self.auth;
        let l = &self.limits;
        let w = &self.ws;
        let m = &self.messages;
        let r = &self.realtime;
        let p = &self.push;
        if !(4..=31).contains(&a.bcrypt_cost) {
            return Err(bad("auth.bcrypt_cost", "must be 4..=31"));
        }
        if !(1..=525_600).contains(&a.access_token_expire_minutes) {
            return Err(bad(
                "auth.access_token_expire_minutes",
                "must be 1..=525600 (one year)",
            ));
        }
        if !(1..=3650).contains(&a.jwt_key_rotation_days) {
            return Err(bad("auth.jwt_key_rotation_days", "must be 1..=3650"));
        }
        for (field, v) in [
            ("auth.jwt_issuer", &a.jwt_issuer),
            ("auth.jwt_audience", &a.jwt_audience),
        ] {
            if v.is_empty() {
                return Err(bad(field, "must not be empty"));
            }
        }
        // Seconds that must be at least 1 (a zero window or TTL would disable the feature
        // silently) and at most ten years.
        let positive_secs = [
            ("auth.csrf_ttl", a.csrf_ttl),
            ("auth.device_token_ttl", a.device_token_ttl),
            ("auth.link_code_ttl", a.link_code_ttl),
            ("auth.key_check_secs", a.key_check_secs),
            ("limits.rate_limit_period", l.rate_limit_period),
            ("limits.block_period", l.block_period),
            ("limits.failed_login_window", l.failed_login_window),
            (
                "limits.failed_login_block_period",
                l.failed_login_block_period,
            ),
            ("ws.rate_limit_period", w.rate_limit_period),
            ("ws.ping_interval", w.ping_interval),
            ("messages.queue_ttl", m.queue_ttl),
            ("messages.history_ttl", m.history_ttl),
            ("realtime.presence_away_after", r.presence_away_after),
            ("realtime.typing_ttl", r.typing_ttl),
            ("realtime.call_ring_timeout", r.call_ring_timeout),
            ("realtime.turn_ttl", r.turn_ttl),
            ("push.ttl_secs", p.ttl_secs),
        ];
        for route in &l.routes {
            let block = route.block.unwrap_or(l.block_period);
            if route.calls == 0
                || !(1..=MAX_SECS).contains(&route.period)
                || !(1..=MAX_SECS).contains(&block)
            {
                return Err(bad(
                    "limits.routes",
                    format_args!("{route}: calls must be positive, periods 1..={MAX_SECS} s"),
                ));
            }
        }
        for (field, v) in positive_secs {
            if !(1..=MAX_SECS).contains(&v) {
                return Err(bad(field, format_args!("must be 1..={MAX_SECS} seconds")));
            }
        }
        // Seconds where 0 is meaningful (no grace, no coalescing, a sweep every second).
        let any_secs = [
            ("realtime.call_reconnect_grace", r.call_reconnect_grace),
            ("push.coalesce_seconds", p.coalesce_seconds),
            ("messages.sweep_interval_secs", m.sweep_interval_secs),
        ];
        if let Some((field, _)) = any_secs.iter().find(|(_, v)| *v > MAX_SECS) {
            return Err(bad(
                field,
                format_args!("must be at most {MAX_SECS} seconds"),
            ));
        }
        let positive = [
            ("limits.rate_limit_calls", l.rate_limit_calls),
            ("limits.failed_login_limit", l.failed_login_limit),
            (
                "limits.failed_login_account_limit",
                l.failed_login_account_limit,
            ),
            ("limits.failed_login_ip_limit", l.failed_login_ip_limit),
            ("ws.rate_limit_messages", w.rate_limit_messages),
            ("ws.rate_limit_grace", w.rate_limit_grace),
            ("messages.queue_max", m.queue_max),
            ("messages.schedule_max_pending", m.schedule_max_pending),
            ("http.max_body_bytes", self.http.max_body_bytes as u64),
            ("http.max_connections", self.http.max_connections as u64),
            ("ws.max_connections_per_ip", w.max_connections_per_ip as u64),
            ("push.avatar_max_bytes", p.avatar_max_bytes as u64),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(bad(field, "must be > 0"));
        }
        if self.http.shutdown_grace_secs > 3600 {
            return Err(bad("http.shutdown_grace_secs", "must be at most 3600"));
        }
        if let Err(problem) = check_path_prefix(&self.http.path_prefix) {
            return Err(bad("http.path_prefix", problem));
        }
        for (field, urls, schemes) in [
            ("realtime.stun_urls", &r.stun_urls, &["stun:", "stuns:"][..]),
            ("realtime.turn_urls", &r.turn_urls, &["turn:", "turns:"][..]),
        ] {
            if let Some(u) = urls
                .iter()
                .find(|u| !schemes.iter().any(|s| u.starts_with(s)))
            {
                return Err(bad(
                    field,
                    format_args!("{u:?} must start with {}", schemes.join(" or ")),
                ));
            }
        }
        Ok(())
    }
}
