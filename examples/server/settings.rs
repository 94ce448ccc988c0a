//! Every setting of the example server, read and validated before anything starts: the library
//! [`Config`] plus what only the binary uses (listeners, storage, keys, TLS, VAPID, logging).
//! `--check-config` prints [`Settings::redacted`].

use std::net::{IpAddr, SocketAddr};

use anyhow::{bail, Context};
use melo::config::{Config, Secret};
use serde::Serialize;
use serde_json::{json, Value};

use crate::env::Env;
use crate::logging::LogSettings;

/// The validated settings.
#[derive(Debug)]
pub(crate) struct Settings {
    /// The library settings (PROTOCOL §3.5 variables).
    pub(crate) config: Config,
    /// `HOST`.
    pub(crate) host: IpAddr,
    /// `MELO_DATA_DIR`.
    pub(crate) data_dir: String,
    /// `DB_URL`: unset (SQLite in the data directory), `memory:`, a `sqlite:` URL or a `mysql:`
    /// URL (`mariadb:` is normalized to it).
    pub(crate) db_url: Option<String>,
    /// `REDIS_URL`: shared ephemeral state and node bus (`RedisEphemeral`); unset: in memory.
    /// One `redis://` or `redis+unix://` URL selects one Redis server; several `redis://` URLs
    /// separated by commas select Redis Cluster, with those URLs as seed nodes.
    pub(crate) redis_url: Option<String>,
    /// `ENCRYPTION_KEY_STR`.
    pub(crate) encryption_key: Option<Secret>,
    /// `TLS_CERT_FILE`, `TLS_KEY_FILE`.
    pub(crate) tls: Option<(String, String)>,
    /// `TLS_RELOAD_SECONDS`: how often the PEM files are checked for changes.
    pub(crate) tls_reload_secs: u64,
    /// `METRICS_ADDR`: a listener of its own for `GET /metrics`.
    pub(crate) metrics_addr: Option<SocketAddr>,
    /// `VAPID_PUBLIC_KEY`, `VAPID_PRIVATE_KEY`.
    /// The parsed VAPID pair (its `Debug` shows the public half only).
    pub(crate) vapid: Option<melo::push::VapidKey>,
    /// Logging.
    pub(crate) log: LogSettings,
}

/// Both or neither of a pair of variables.
fn pair(env: &Env, a: &str, b: &str) -> anyhow::Result<Option<(String, String)>> {
    match (env.str(a), env.str(b)) {
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
    let Some((creds, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match creds.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:[redacted]@{host}"),
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
    pub(crate) fn from_env(env: &Env) -> anyhow::Result<Self> {
        let mut config = env.config().map_err(anyhow::Error::msg)?;
        let mut tls_reload_secs: u64 = 60;
        env.parse("TLS_RELOAD_SECONDS", &mut tls_reload_secs)
            .map_err(anyhow::Error::msg)?;
        if !(1..=86_400).contains(&tls_reload_secs) {
            bail!("TLS_RELOAD_SECONDS={tls_reload_secs} must be 1..=86400");
        }
        let metrics_addr = match env.str("METRICS_ADDR") {
            None => None,
            Some(a) => Some(a.parse::<SocketAddr>().with_context(|| {
                format!("METRICS_ADDR={a:?} is not an address like 127.0.0.1:9090")
            })?),
        };
        if metrics_addr.is_some() && !config.metrics_enabled {
            bail!("METRICS_ADDR is set but METRICS_ENABLED=false; unset one of them");
        }
        config.metrics_separate_listener = metrics_addr.is_some();
        let host = env.str("HOST").unwrap_or_else(|| "127.0.0.1".into());
        let host: IpAddr = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .with_context(|| format!("HOST={host:?} is not an IP address"))?;
        // sqlx knows `mysql:` only; MariaDB speaks the same protocol.
        let db_url = env.str("DB_URL").map(|u| match u.strip_prefix("mariadb:") {
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
        let redis_url = env.str("REDIS_URL");
        if let Some(u) = &redis_url {
            check_redis_url(u)?;
        }
        let vapid = pair(env, "VAPID_PUBLIC_KEY", "VAPID_PRIVATE_KEY")?
            .map(|(public, private)| {
                melo::push::VapidKey::from_pair(&public, &private)
                    .map_err(|e| anyhow::anyhow!("VAPID_PUBLIC_KEY/VAPID_PRIVATE_KEY: {e}"))
            })
            .transpose()?;
        Ok(Self {
            config,
            host,
            data_dir: env
                .str("MELO_DATA_DIR")
                .unwrap_or_else(|| "./melo-data".into()),
            db_url,
            redis_url,
            encryption_key: env.str("ENCRYPTION_KEY_STR").map(Secret::new),
            tls: pair(env, "TLS_CERT_FILE", "TLS_KEY_FILE")?,
            tls_reload_secs,
            metrics_addr,
            vapid,
            log: LogSettings::from_env(env)?,
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
        // A comma in a password is not a list of URLs: the password is still hidden.
        assert_eq!(
            redact_url("mysql://root:pa,ss@127.0.0.1:3306/melo"),
            "mysql://root:[redacted]@127.0.0.1:3306/melo"
        );
    }
}
