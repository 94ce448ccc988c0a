//! Every setting of the `melo` binary, read and validated before anything starts: the library
//! [`Config`] (`args.rs`) plus what only the binary uses (listeners, storage, keys, TLS, VAPID,
//! logging). `melo check-config` prints [`Settings::redacted`].

use std::net::{IpAddr, SocketAddr};

use anyhow::{bail, Context};
use clap::Args;
use melo::config::{Config, Secret};
use serde::Serialize;
use serde_json::{json, Value};

use crate::args::ConfigArgs;
use crate::logging::{LogArgs, LogSettings};

/// Where the server listens and keeps its data, and its keys.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Server, storage and keys")]
pub(crate) struct ServerArgs {
    /// Address the listeners bind (an IP address; `0.0.0.0` or `::` for every interface).
    #[arg(long, env = "HOST", global = true, default_value = "127.0.0.1")]
    host: String,
    /// Data directory: the SQLite database (unless DB_URL) and the keys (`keys/`), created 0700.
    #[arg(
        long,
        env = "MELO_DATA_DIR",
        global = true,
        default_value = "./melo-data",
        value_name = "DIR"
    )]
    data_dir: String,
    /// Database: unset for SQLite in the data directory, `sqlite:PATH`, `mysql://…` or
    /// `mariadb://…`, or `memory:` (nothing persisted; tests only).
    #[arg(
        long,
        env = "DB_URL",
        global = true,
        hide_env_values = true,
        value_name = "URL"
    )]
    db_url: Option<String>,
    /// Shared ephemeral state and node bus: one `redis://` (or `redis+unix://`) URL, or several
    /// `redis://` seeds separated by commas for Redis Cluster. Unset: in memory, one node.
    #[arg(
        long,
        env = "REDIS_URL",
        global = true,
        hide_env_values = true,
        value_name = "URL"
    )]
    redis_url: Option<String>,
    /// Derive the data key from this secret instead of the key file (compatibility with the
    /// original server; no data-key rotation).
    #[arg(
        long,
        env = "ENCRYPTION_KEY_STR",
        global = true,
        hide_env_values = true,
        value_name = "SECRET"
    )]
    encryption_key_str: Option<String>,
    /// PEM certificate chain; with TLS_KEY_FILE turns TLS on.
    #[arg(long, env = "TLS_CERT_FILE", global = true, value_name = "PATH")]
    tls_cert_file: Option<String>,
    /// PEM private key of TLS_CERT_FILE.
    #[arg(long, env = "TLS_KEY_FILE", global = true, value_name = "PATH")]
    tls_key_file: Option<String>,
    /// How often the TLS files are checked for a renewed certificate, seconds (1-86400).
    #[arg(long, env = "TLS_RELOAD_SECONDS", global = true, default_value_t = 60)]
    tls_reload_seconds: u64,
    /// Where `GET /metrics` is served: an address of its own (port 0 picks one), or `same` for
    /// the API port.
    #[arg(
        long,
        env = "METRICS_ADDR",
        global = true,
        default_value = "127.0.0.1:9090",
        value_name = "ADDR|same",
        help_heading = "Metrics"
    )]
    metrics_addr: String,
    /// VAPID public key (base64url, uncompressed P-256); unset: generated into the data directory.
    #[arg(
        long,
        env = "VAPID_PUBLIC_KEY",
        global = true,
        value_name = "KEY",
        help_heading = "Messages, presence, calls and push"
    )]
    vapid_public_key: Option<String>,
    /// VAPID private key (base64url) of VAPID_PUBLIC_KEY.
    #[arg(
        long,
        env = "VAPID_PRIVATE_KEY",
        global = true,
        hide_env_values = true,
        value_name = "KEY",
        help_heading = "Messages, presence, calls and push"
    )]
    vapid_private_key: Option<String>,
}

/// Every setting, as parsed.
#[derive(Args, Debug, Clone)]
pub(crate) struct SettingsArgs {
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    #[command(flatten)]
    pub(crate) log: LogArgs,
}

/// The validated settings.
#[derive(Debug)]
pub(crate) struct Settings {
    /// The library settings.
    pub(crate) config: Config,
    /// `HOST`.
    pub(crate) host: IpAddr,
    /// `MELO_DATA_DIR`.
    pub(crate) data_dir: String,
    /// `DB_URL`: unset (SQLite in the data directory), `memory:`, a `sqlite:` URL or a `mysql:`
    /// URL (`mariadb:` is normalized to it).
    pub(crate) db_url: Option<String>,
    /// `REDIS_URL`: shared ephemeral state and node bus (`RedisEphemeral`); unset: in memory.
    pub(crate) redis_url: Option<String>,
    /// `ENCRYPTION_KEY_STR`.
    pub(crate) encryption_key: Option<Secret>,
    /// `TLS_CERT_FILE`, `TLS_KEY_FILE`.
    pub(crate) tls: Option<(String, String)>,
    /// `TLS_RELOAD_SECONDS`: how often the PEM files are checked for changes.
    pub(crate) tls_reload_secs: u64,
    /// `METRICS_ADDR`: a listener of its own for `GET /metrics` (`None`: the API port).
    pub(crate) metrics_addr: Option<SocketAddr>,
    /// `VAPID_PUBLIC_KEY`, `VAPID_PRIVATE_KEY`.
    /// The parsed VAPID pair (its `Debug` shows the public half only).
    pub(crate) vapid: Option<melo::push::VapidKey>,
    /// Logging.
    pub(crate) log: LogSettings,
}

/// A value that is set and not blank.
fn set(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Both or neither of a pair of variables.
fn pair(
    (a, x): (&str, &Option<String>),
    (b, y): (&str, &Option<String>),
) -> anyhow::Result<Option<(String, String)>> {
    match (set(x), set(y)) {
        (Some(x), Some(y)) => Ok(Some((x, y))),
        (None, None) => Ok(None),
        _ => bail!("set both {a} and {b}, or neither"),
    }
}

/// A URL with any password replaced (`mysql://u:[redacted]@h/db`).
fn redact_url(url: &str) -> String {
    // A cluster's REDIS_URL lists several URLs, each with its own password. A comma inside one
    // URL (a password may hold one) does not make a list.
    if url.contains(',') && url.split(',').all(|u| u.contains("://")) {
        return url.split(',').map(redact_url).collect::<Vec<_>>().join(",");
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // As URL parsers read it: the authority ends at the first `/`, `?` or `#`, and the user
    // information at the last `@` in it (a password may hold a raw `@`).
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some((creds, host)) = rest[..end].rsplit_once('@') else {
        return url.to_owned();
    };
    match creds.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:[redacted]@{host}{}", &rest[end..]),
        None => url.to_owned(),
    }
}

/// `REDIS_URL`: one server's URL, or the seeds of a cluster separated by commas. Errors name a
/// seed by its position, never its text (it may carry a password).
fn check_redis_url(url: &str) -> anyhow::Result<()> {
    if !url.contains(',') {
        if !(url.starts_with("redis://") || url.starts_with("redis+unix://")) {
            bail!("REDIS_URL must start with redis:// or redis+unix:// (or be unset)");
        }
        return Ok(());
    }
    for (i, seed) in url.split(',').map(str::trim).enumerate() {
        let n = i + 1;
        if seed.is_empty() {
            bail!("REDIS_URL: seed {n} of the cluster is empty (seeds are redis:// URLs separated by commas)");
        }
        if !seed.starts_with("redis://") {
            bail!("REDIS_URL: seed {n} of the cluster must start with redis:// (a cluster cannot be reached over a Unix socket)");
        }
        if seed["redis://".len()..]
            .split(['/', '?'])
            .next()
            .is_none_or(|authority| authority.rsplit('@').next().is_none_or(str::is_empty))
        {
            bail!("REDIS_URL: seed {n} of the cluster names no host");
        }
    }
    Ok(())
}

impl Settings {
    pub(crate) fn from_args(args: &SettingsArgs) -> anyhow::Result<Self> {
        let mut config = args.config.config().map_err(anyhow::Error::msg)?;
        let x = &args.server;
        let tls_reload_secs = x.tls_reload_seconds;
        if !(1..=86_400).contains(&tls_reload_secs) {
            bail!("TLS_RELOAD_SECONDS={tls_reload_secs} must be 1..=86400");
        }
        let metrics_addr = match x.metrics_addr.trim() {
            "same" => None,
            a => Some(a.parse::<SocketAddr>().with_context(|| {
                format!("METRICS_ADDR={a:?} is not an address like 127.0.0.1:9090 (or `same`)")
            })?),
        };
        config.metrics_separate_listener = metrics_addr.is_some() && config.metrics_enabled;
        let metrics_addr = metrics_addr.filter(|_| config.metrics_enabled);
        let host = x.host.trim();
        let host: IpAddr = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .with_context(|| format!("HOST={host:?} is not an IP address"))?;
        // sqlx knows `mysql:` only; MariaDB speaks the same protocol.
        let db_url = set(&x.db_url).map(|u| match u.strip_prefix("mariadb:") {
            Some(rest) => format!("mysql:{rest}"),
            None => u,
        });
        match db_url.as_deref() {
            None | Some("memory:") => {}
            Some(u) if u.starts_with("sqlite:") || u.starts_with("mysql:") => {}
            Some(_) => bail!(
                "DB_URL must start with sqlite:, mysql: or mariadb:, or be memory: (or be unset)"
            ),
        }
        let redis_url = set(&x.redis_url);
        if let Some(u) = &redis_url {
            check_redis_url(u)?;
        }
        let vapid = pair(
            ("VAPID_PUBLIC_KEY", &x.vapid_public_key),
            ("VAPID_PRIVATE_KEY", &x.vapid_private_key),
        )?
        .map(|(public, private)| {
            melo::push::VapidKey::from_pair(&public, &private)
                .map_err(|e| anyhow::anyhow!("VAPID_PUBLIC_KEY/VAPID_PRIVATE_KEY: {e}"))
        })
        .transpose()?;
        Ok(Self {
            config,
            host,
            data_dir: x.data_dir.trim().to_owned(),
            db_url,
            redis_url,
            encryption_key: set(&x.encryption_key_str).map(Secret::new),
            tls: pair(
                ("TLS_CERT_FILE", &x.tls_cert_file),
                ("TLS_KEY_FILE", &x.tls_key_file),
            )?,
            tls_reload_secs,
            metrics_addr,
            vapid,
            log: LogSettings::from_args(&args.log)?,
        })
    }

    /// Everything, with secrets (keys, passwords in URLs, TURN secret) redacted.
    pub(crate) fn redacted(&self) -> Value {
        #[derive(Serialize)]
        struct Server<'a> {
            host: String,
            data_dir: &'a str,
            db_url: Option<String>,
            redis_url: Option<String>,
            encryption_key_str: Option<&'a str>,
            tls_cert_file: Option<&'a str>,
            tls_key_file: Option<&'a str>,
            metrics_addr: Option<String>,
            vapid_public_key: Option<String>,
            vapid_private_key: Option<&'a str>,
        }
        let server = Server {
            host: self.host.to_string(),
            data_dir: &self.data_dir,
            db_url: self.db_url.as_deref().map(redact_url),
            redis_url: self.redis_url.as_deref().map(redact_url),
            encryption_key_str: self.encryption_key.as_ref().map(|_| "[redacted]"),
            tls_cert_file: self.tls.as_ref().map(|(c, _)| c.as_str()),
            tls_key_file: self.tls.as_ref().map(|(_, k)| k.as_str()),
            metrics_addr: self.metrics_addr.map(|a| a.to_string()),
            vapid_public_key: self.vapid.as_ref().map(|k| k.public_base64url()),
            vapid_private_key: self.vapid.as_ref().map(|_| "[redacted]"),
        };
        json!({"server": server, "logging": self.log, "config": self.config})
    }
}

#[cfg(test)]
mod tests {
    use super::{check_redis_url, redact_url};

    #[test]
    fn redis_urls_select_one_server_or_a_cluster() {
        for ok in [
            "redis://127.0.0.1:6379",
            "redis+unix:///run/redis.sock",
            "redis://a:7000,redis://b:7000,redis://c:7000",
            "redis://:pw@a:7000, redis://:pw@b:7000",
        ] {
            check_redis_url(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, says) in [
            ("http://a", "must start with redis://"),
            (
                "redis://:hunter2@a,,redis://:hunter2@b",
                "seed 2 of the cluster is empty",
            ),
            (
                "redis://:hunter2@a,redis+unix:///hunter2",
                "seed 2 of the cluster must start",
            ),
            (
                "redis://:hunter2@a,rediss://:hunter2@b",
                "seed 2 of the cluster must start",
            ),
            (
                "redis://:hunter2@,redis://:hunter2@b",
                "seed 1 of the cluster names no host",
            ),
            (
                "redis://:hunter2@a,redis://",
                "seed 2 of the cluster names no host",
            ),
        ] {
            let err = check_redis_url(bad).expect_err(bad).to_string();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn urls_lose_their_passwords() {
        assert_eq!(
            redact_url("mysql://root:hunter2@127.0.0.1:3306/melo"),
            "mysql://root:[redacted]@127.0.0.1:3306/melo"
        );
        assert_eq!(
            redact_url("redis://:hunter2@127.0.0.1:6379/0"),
            "redis://:[redacted]@127.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("redis://:hunter2@a:7000,redis://u:hunter2@b:7000,redis://c:7000"),
            "redis://:[redacted]@a:7000,redis://u:[redacted]@b:7000,redis://c:7000"
        );
        assert_eq!(
            redact_url("sqlite:///var/lib/melo.db"),
            "sqlite:///var/lib/melo.db"
        );
        // A raw `@` in a password: the user information ends at the last one.
        assert_eq!(
            redact_url("mysql://u:p@ss@127.0.0.1:3306/melo?ssl-mode=required"),
            "mysql://u:[redacted]@127.0.0.1:3306/melo?ssl-mode=required"
        );
        // A comma in a password is not a list of URLs: the password is still hidden.
        assert_eq!(
            redact_url("mysql://root:pa,ss@127.0.0.1:3306/melo"),
            "mysql://root:[redacted]@127.0.0.1:3306/melo"
        );
    }
}
