//! The library's settings ([`melo::Config`]) as command-line flags, each backed by its
//! environment variable; `melo --help` lists them with their defaults. A flag wins over the
//! variable, the variable over `.env`, `.env` over the default.

use clap::Args;
use melo::config::{Config, IpRange, Registration, RouteLimit, Secret};

/// The defaults shown by `--help` are the library's own.
fn d() -> Config {
    Config::default()
}

/// Comma-separated lists: `A,B` → `[A, B]`; an empty value is an empty list.
fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Authentication, tokens and passwords.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Authentication")]
pub(crate) struct AuthArgs {
    /// JWT `iss` claim.
    #[arg(long, env = "JWT_ISSUER", global = true, default_value_t = d().auth.jwt_issuer)]
    jwt_issuer: String,
    /// JWT `aud` claim.
    #[arg(long, env = "JWT_AUDIENCE", global = true, default_value_t = d().auth.jwt_audience)]
    jwt_audience: String,
    /// Access-token lifetime, minutes.
    #[arg(long, env = "ACCESS_TOKEN_EXPIRE_MINUTES", global = true,
          default_value_t = d().auth.access_token_expire_minutes)]
    access_token_expire_minutes: u64,
    /// JWT signing-key rotation period, days.
    #[arg(long, env = "JWT_KEY_ROTATION_DAYS", global = true,
          default_value_t = d().auth.jwt_key_rotation_days)]
    jwt_key_rotation_days: u64,
    /// CSRF token lifetime, seconds.
    #[arg(long, env = "CSRF_TTL", global = true, default_value_t = d().auth.csrf_ttl)]
    csrf_ttl: u64,
    /// Device-token lifetime, seconds.
    #[arg(long, env = "DEVICE_TOKEN_TTL", global = true, default_value_t = d().auth.device_token_ttl)]
    device_token_ttl: u64,
    /// Device-link code lifetime, seconds.
    #[arg(long, env = "LINK_CODE_TTL", global = true, default_value_t = d().auth.link_code_ttl)]
    link_code_ttl: u64,
    /// How often key maintenance runs (JWT rotation, new data keys), seconds.
    #[arg(long, env = "KEY_CHECK_SECONDS", global = true, default_value_t = d().auth.key_check_secs)]
    key_check_seconds: u64,
    /// bcrypt cost of password hashes, 4-31.
    #[arg(long, env = "BCRYPT_COST", global = true, default_value_t = d().auth.bcrypt_cost)]
    bcrypt_cost: u32,
    /// Who may create an account: `open`, `closed` (403 registration_closed) or `invite` (a
    /// single-use code from `melo admin invite`).
    #[arg(long, env = "REGISTRATION", global = true, default_value_t = d().auth.registration,
          value_name = "open|closed|invite")]
    registration: Registration,
}

/// HTTP listeners and limits.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "HTTP")]
pub(crate) struct HttpArgs {
    /// API port (HTTP and WebSocket on `/ws`); 0 picks a free one.
    #[arg(long, env = "HTTP_PORT", global = true, default_value_t = d().http.http_port)]
    pub(crate) http_port: u16,
    /// Second, WebSocket-only port (any path); 0 disables it.
    #[arg(long, env = "WS_PORT", global = true, default_value_t = d().http.ws_port)]
    pub(crate) ws_port: u16,
    /// Most concurrent TCP connections per listener.
    #[arg(long, env = "MAX_CONNECTIONS", global = true, default_value_t = d().http.max_connections)]
    max_connections: usize,
    /// Largest request body, bytes.
    #[arg(long, env = "MAX_BODY_BYTES", global = true, default_value_t = d().http.max_body_bytes)]
    max_body_bytes: usize,
    /// How long a graceful shutdown waits for open connections, seconds.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", global = true,
          default_value_t = d().http.shutdown_grace_secs)]
    shutdown_grace_seconds: u64,
    /// Comma-separated CORS origins (`*` allows any); also checked on WebSocket upgrades.
    /// [default: none]
    #[arg(long, env = "CORS_ORIGINS", global = true, value_name = "ORIGINS")]
    cors_origins: Option<String>,
    /// Comma-separated reverse proxies (addresses or CIDR ranges) whose X-Forwarded-For is
    /// trusted. [default: none]
    #[arg(long, env = "TRUSTED_PROXIES", global = true, value_name = "RANGES")]
    trusted_proxies: Option<String>,
    /// Serve the web client at /app/.
    #[arg(long, env = "WEB_CLIENT", global = true, default_value_t = d().http.web_client,
          action = clap::ArgAction::Set, value_name = "BOOL")]
    web_client: bool,
    /// Serve the web client's files from this directory instead of the built-in copy.
    /// [default: built in]
    #[arg(long, env = "WEB_CLIENT_DIR", global = true, value_name = "DIR")]
    web_client_dir: Option<std::path::PathBuf>,
    /// Path prefix for every route, the socket, the web client and the docs (e.g. /chat).
    /// [default: none]
    #[arg(long, env = "PATH_PREFIX", global = true, value_name = "PATH")]
    path_prefix: Option<String>,
}

/// HTTP rate limits and failed-login lockout.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Rate limits and lockout")]
pub(crate) struct LimitArgs {
    /// Requests per client IP per window.
    #[arg(long, env = "RATE_LIMIT_CALLS", global = true, default_value_t = d().limits.rate_limit_calls)]
    rate_limit_calls: u64,
    /// Rate-limit window, seconds.
    #[arg(long, env = "RATE_LIMIT_PERIOD", global = true, default_value_t = d().limits.rate_limit_period)]
    rate_limit_period: u64,
    /// Block after exceeding the budget, seconds.
    #[arg(long, env = "BLOCK_PERIOD", global = true, default_value_t = d().limits.block_period)]
    block_period: u64,
    /// Per-route budgets instead of the default one, comma-separated:
    /// `[METHOD ]/path=calls/period[/block]`. [default: none]
    #[arg(long, env = "RATE_LIMIT_ROUTES", global = true, value_name = "ROUTES")]
    rate_limit_routes: Option<String>,
    /// Failures of one account from one IP that lock the account for that IP.
    #[arg(long, env = "FAILED_LOGIN_LIMIT", global = true, default_value_t = d().limits.failed_login_limit)]
    failed_login_limit: u64,
    /// Failures of one account from every IP that lock it for every IP.
    #[arg(long, env = "FAILED_LOGIN_ACCOUNT_LIMIT", global = true,
          default_value_t = d().limits.failed_login_account_limit)]
    failed_login_account_limit: u64,
    /// Failures from one IP that lock the IP.
    #[arg(long, env = "FAILED_LOGIN_IP_LIMIT", global = true,
          default_value_t = d().limits.failed_login_ip_limit)]
    failed_login_ip_limit: u64,
    /// Failure counting window, seconds.
    #[arg(long, env = "FAILED_LOGIN_WINDOW", global = true,
          default_value_t = d().limits.failed_login_window)]
    failed_login_window: u64,
    /// Lock duration, seconds.
    #[arg(long, env = "FAILED_LOGIN_BLOCK_PERIOD", global = true,
          default_value_t = d().limits.failed_login_block_period)]
    failed_login_block_period: u64,
}

/// WebSocket sockets.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "WebSocket")]
pub(crate) struct WsArgs {
    /// Frames per socket per window.
    #[arg(long, env = "WS_RATE_LIMIT_MESSAGES", global = true, default_value_t = d().ws.rate_limit_messages)]
    ws_rate_limit_messages: u64,
    /// Frame rate window, seconds.
    #[arg(long, env = "WS_RATE_LIMIT_PERIOD", global = true, default_value_t = d().ws.rate_limit_period)]
    ws_rate_limit_period: u64,
    /// Refused frames in one window that close the socket.
    #[arg(long, env = "WS_RATE_LIMIT_GRACE", global = true, default_value_t = d().ws.rate_limit_grace)]
    ws_rate_limit_grace: u64,
    /// Live sockets per client IP.
    #[arg(long, env = "WS_MAX_CONNECTIONS_PER_IP", global = true,
          default_value_t = d().ws.max_connections_per_ip)]
    ws_max_connections_per_ip: usize,
    /// Seconds between server pings.
    #[arg(long, env = "WS_PING_INTERVAL", global = true, default_value_t = d().ws.ping_interval)]
    ws_ping_interval: u64,
}

/// Message retention, queues, presence, calls and push.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Messages, presence, calls and push")]
pub(crate) struct RealtimeArgs {
    /// Seconds a message stays in history.
    #[arg(long, env = "HISTORY_TTL", global = true, default_value_t = d().messages.history_ttl)]
    history_ttl: u64,
    /// Seconds an undelivered queue entry lives.
    #[arg(long, env = "QUEUE_TTL", global = true, default_value_t = d().messages.queue_ttl)]
    queue_ttl: u64,
    /// Queue entries kept per device.
    #[arg(long, env = "QUEUE_MAX", global = true, default_value_t = d().messages.queue_max)]
    queue_max: u64,
    /// How often queues and history are trimmed, seconds.
    #[arg(long, env = "QUEUE_SWEEP_SECONDS", global = true,
          default_value_t = d().messages.sweep_interval_secs)]
    queue_sweep_seconds: u64,
    /// Scheduled messages a user may have pending at once.
    #[arg(long, env = "SCHEDULE_MAX_PENDING", global = true,
          default_value_t = d().messages.schedule_max_pending)]
    schedule_max_pending: u64,
    /// Idle seconds before a user shows as away.
    #[arg(long, env = "PRESENCE_AWAY_AFTER", global = true,
          default_value_t = d().realtime.presence_away_after)]
    presence_away_after: u64,
    /// Lifetime of a typing indication, seconds.
    #[arg(long, env = "TYPING_TTL", global = true, default_value_t = d().realtime.typing_ttl)]
    typing_ttl: u64,
    /// Seconds a call rings before it times out.
    #[arg(long, env = "CALL_RING_TIMEOUT", global = true, default_value_t = d().realtime.call_ring_timeout)]
    call_ring_timeout: u64,
    /// Seconds an engaged device may be without a socket before its call ends.
    #[arg(long, env = "CALL_RECONNECT_GRACE", global = true,
          default_value_t = d().realtime.call_reconnect_grace)]
    call_reconnect_grace: u64,
    /// Comma-separated STUN URLs; empty for none. [default: stun:stun.l.google.com:19302]
    #[arg(long, env = "STUN_URLS", global = true, value_name = "URLS")]
    stun_urls: Option<String>,
    /// Comma-separated TURN URLs. [default: none]
    #[arg(long, env = "TURN_URLS", global = true, value_name = "URLS")]
    turn_urls: Option<String>,
    /// coturn `use-auth-secret` shared secret for time-limited TURN credentials.
    #[arg(
        long,
        env = "TURN_SECRET",
        global = true,
        hide_env_values = true,
        value_name = "SECRET"
    )]
    turn_secret: Option<String>,
    /// TURN credential lifetime, seconds.
    #[arg(long, env = "TURN_TTL", global = true, default_value_t = d().realtime.turn_ttl)]
    turn_ttl: u64,
    /// VAPID `sub` claim (a mailto: or https: URL the push services can reach you at).
    #[arg(long, env = "VAPID_SUBJECT", global = true, default_value_t = d().push.vapid_subject)]
    vapid_subject: String,
    /// Minimum gap between message pushes to one device, seconds.
    #[arg(long, env = "PUSH_COALESCE_SECONDS", global = true, default_value_t = d().push.coalesce_seconds)]
    push_coalesce_seconds: u64,
    /// Lifetime of a message push at the push service, seconds.
    #[arg(long, env = "PUSH_TTL", global = true, default_value_t = d().push.ttl_secs)]
    push_ttl: u64,
    /// Accept http:// push endpoints (tests only).
    #[arg(long, env = "PUSH_ALLOW_HTTP", global = true, default_value_t = d().push.allow_http,
          action = clap::ArgAction::Set, value_name = "BOOL")]
    push_allow_http: bool,
    /// Accept push endpoints on private and loopback addresses (tests only).
    #[arg(long, env = "PUSH_ALLOW_PRIVATE", global = true, default_value_t = d().push.allow_private,
          action = clap::ArgAction::Set, value_name = "BOOL")]
    push_allow_private: bool,
    /// Largest avatar upload, bytes.
    #[arg(long, env = "AVATAR_MAX_BYTES", global = true, default_value_t = d().push.avatar_max_bytes)]
    avatar_max_bytes: usize,
}

/// Every library setting.
#[derive(Args, Debug, Clone)]
pub(crate) struct ConfigArgs {
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    pub(crate) http: HttpArgs,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    ws: WsArgs,
    #[command(flatten)]
    realtime: RealtimeArgs,
    /// Serve `GET /metrics` at all (see METRICS_ADDR for where).
    #[arg(long, env = "METRICS_ENABLED", global = true, default_value_t = d().metrics_enabled,
          action = clap::ArgAction::Set, value_name = "BOOL", help_heading = "Metrics")]
    pub(crate) metrics_enabled: bool,
    /// Version reported by `/` and `/status`.
    #[arg(long, env = "SERVER_VERSION", global = true, default_value_t = d().server_version,
          help_heading = "Metrics")]
    server_version: String,
}

impl ConfigArgs {
    /// The validated library config. Errors name the variable.
    pub(crate) fn config(&self) -> Result<Config, String> {
        let mut c = Config::default();
        let (a, x) = (&mut c.auth, &self.auth);
        a.jwt_issuer = x.jwt_issuer.clone();
        a.jwt_audience = x.jwt_audience.clone();
        a.access_token_expire_minutes = x.access_token_expire_minutes;
        a.jwt_key_rotation_days = x.jwt_key_rotation_days;
        a.csrf_ttl = x.csrf_ttl;
        a.device_token_ttl = x.device_token_ttl;
        a.link_code_ttl = x.link_code_ttl;
        a.key_check_secs = x.key_check_seconds;
        a.bcrypt_cost = x.bcrypt_cost;
        a.registration = x.registration;

        let (h, x) = (&mut c.http, &self.http);
        h.http_port = x.http_port;
        h.ws_port = x.ws_port;
        h.max_connections = x.max_connections;
        h.max_body_bytes = x.max_body_bytes;
        h.shutdown_grace_secs = x.shutdown_grace_seconds;
        h.web_client = x.web_client;
        h.web_client_dir = x
            .web_client_dir
            .clone()
            .filter(|d| !d.as_os_str().is_empty());
        if let Some(v) = &x.path_prefix {
            h.path_prefix = v.clone();
        }
        if let Some(v) = &x.cors_origins {
            h.cors_origins = list(v);
        }
        if let Some(v) = &x.trusted_proxies {
            h.trusted_proxies = list(v)
                .iter()
                .map(|p| p.parse::<IpRange>())
                .collect::<Result<_, _>>()
                .map_err(|e| format!("TRUSTED_PROXIES: {e}"))?;
        }

        let (l, x) = (&mut c.limits, &self.limits);
        l.rate_limit_calls = x.rate_limit_calls;
        l.rate_limit_period = x.rate_limit_period;
        l.block_period = x.block_period;
        if let Some(v) = &x.rate_limit_routes {
            l.routes = list(v)
                .iter()
                .map(|r| r.parse::<RouteLimit>())
                .collect::<Result<_, _>>()
                .map_err(|e| format!("RATE_LIMIT_ROUTES: {e}"))?;
        }
        l.failed_login_limit = x.failed_login_limit;
        l.failed_login_account_limit = x.failed_login_account_limit;
        l.failed_login_ip_limit = x.failed_login_ip_limit;
        l.failed_login_window = x.failed_login_window;
        l.failed_login_block_period = x.failed_login_block_period;

        let (w, x) = (&mut c.ws, &self.ws);
        w.rate_limit_messages = x.ws_rate_limit_messages;
        w.rate_limit_period = x.ws_rate_limit_period;
        w.rate_limit_grace = x.ws_rate_limit_grace;
        w.max_connections_per_ip = x.ws_max_connections_per_ip;
        w.ping_interval = x.ws_ping_interval;

        let x = &self.realtime;
        let m = &mut c.messages;
        m.history_ttl = x.history_ttl;
        m.queue_ttl = x.queue_ttl;
        m.queue_max = x.queue_max;
        m.sweep_interval_secs = x.queue_sweep_seconds;
        m.schedule_max_pending = x.schedule_max_pending;
        let r = &mut c.realtime;
        r.presence_away_after = x.presence_away_after;
        r.typing_ttl = x.typing_ttl;
        r.call_ring_timeout = x.call_ring_timeout;
        r.call_reconnect_grace = x.call_reconnect_grace;
        if let Some(v) = &x.stun_urls {
            r.stun_urls = list(v);
        }
        if let Some(v) = &x.turn_urls {
            r.turn_urls = list(v);
        }
        r.turn_secret = x
            .turn_secret
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(Secret::new);
        r.turn_ttl = x.turn_ttl;
        let p = &mut c.push;
        p.vapid_subject = x.vapid_subject.clone();
        p.coalesce_seconds = x.push_coalesce_seconds;
        p.ttl_secs = x.push_ttl;
        p.allow_http = x.push_allow_http;
        p.allow_private = x.push_allow_private;
        p.avatar_max_bytes = x.avatar_max_bytes;

        c.metrics_enabled = self.metrics_enabled;
        c.server_version = self.server_version.clone();
        c.validate()?;
        Ok(c)
    }
}
