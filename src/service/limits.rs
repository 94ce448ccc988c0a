//! HTTP request budgets and the failed-login lockout (docs/protocol.md §3.4).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{Core, Error, Result};
use crate::ephemeral::RateDecision;
use crate::metrics::Limit;
use crate::model::{Timestamp, UserId};

/// The address that limits count a client under: an IPv4 address itself, an IPv6 address by
/// its /64 prefix (one subscriber's network hands out a whole /64, so per-address limits would
/// let one client take 2^64 budgets).
pub(crate) fn limit_addr(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        v4 @ IpAddr::V4(_) => v4,
        v6 => crate::config::ip_range::mask(v6, 64),
    }
}

/// Rate limiting and lockout over the ephemeral backend.
#[derive(Clone, Debug)]
pub(crate) struct LimitsService {
    core: Arc<Core>,
}

/// A route's own request budget (`limits.routes`), resolved against the route table.
#[derive(Clone, Debug)]
pub(crate) struct RouteBudget {
    /// `None`: every method of the path.
    pub(crate) method: Option<http::Method>,
    /// The route template.
    pub(crate) path: &'static str,
    /// Ephemeral key part naming the budget (`POST /register`): templates only, never ids.
    pub(crate) name: String,
    pub(crate) calls: u64,
    pub(crate) period: Duration,
    pub(crate) block: Duration,
}

/// Whose failed logins are counted: a known account by uid, or an unknown identifier under a
/// blind tag of its normalized form.
#[derive(Clone, Debug)]
pub(crate) enum AccountKey {
    User(UserId),
    Unknown(String),
}

impl LimitsService {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// The blind tag of a client address as limits see it ([`limit_addr`]).
    fn ip_tag(&self, ip: IpAddr) -> String {
        self.core
            .pii
            .blind_tag("ip", limit_addr(ip).to_string().as_bytes())
    }

    /// Counts one HTTP request for `user` (authenticated) or `ip`; `RateLimited` when over.
    ///
    /// Fails open: while the ephemeral backend is unreachable (a Redis restart) requests are
    /// served uncounted, so an outage of the limiter is not an outage of the API. The error is
    /// counted in `melo_ephemeral_errors_total{op="rate_limit"}`. Login lockout, by contrast,
    /// fails closed (`check_login`).
    ///
    /// A request to a route with its own budget (`route`) counts only against that budget.
    pub(crate) async fn http_request(
        &self,
        user: Option<UserId>,
        ip: IpAddr,
        route: Option<&RouteBudget>,
    ) -> Result<()> {
        let l = &self.core.config.limits;
        let who = match user {
            Some(u) => format!("u:{u}"),
            None => format!("ip:{}", self.ip_tag(ip)),
        };
        let (key, calls, period, block) = match route {
            Some(r) => (format!("rl:r:{}:{who}", r.name), r.calls, r.period, r.block),
            None => (
                format!("rl:{who}"),
                l.rate_limit_calls,
                Duration::from_secs(l.rate_limit_period),
                Duration::from_secs(l.block_period),
            ),
        };
        let decision = self
            .core
            .ephemeral
            .rate_limit(&key, calls, period, block)
            .await;
        let decision = match decision {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "rate limiter unavailable; request not counted");
                return Ok(());
            }
        };
        match decision {
            RateDecision::Allowed => Ok(()),
            RateDecision::Limited { retry_after } => {
                self.core.metrics.limited(Limit::Http);
                Err(Error::RateLimited { retry_after })
            }
        }
    }

    fn account_key(&self, k: &AccountKey) -> String {
        match k {
            AccountKey::User(u) => format!("u:{u}"),
            AccountKey::Unknown(normalized) => {
                format!(
                    "x:{}",
                    self.core.pii.blind_tag("login-id", normalized.as_bytes())
                )
            }
        }
    }

    /// The three lockout scopes of an attempt (docs/protocol.md §3.4).
    fn scopes(&self, account: &AccountKey, ip: IpAddr) -> Scopes {
        let account = self.account_key(account);
        let ip = self.ip_tag(ip);
        Scopes {
            pair: format!("pair:{account}:{ip}"),
            account: format!("acct:{account}"),
            ip: format!("ip:{ip}"),
        }
    }

    async fn lock_remaining(&self, key: &str) -> Result<Option<u64>> {
        let Some(v) = self.core.ephemeral.get(&format!("lock:{key}")).await? else {
            return Ok(None);
        };
        let until = std::str::from_utf8(&v)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0);
        let left_ms = until - Timestamp::now().millis();
        Ok((left_ms > 0).then(|| (left_ms as u64).div_ceil(1000).max(1)))
    }

    /// `LoginLocked` when the (account, IP) pair, the account or the IP is locked.
    async fn check_login(&self, scopes: &Scopes) -> Result<()> {
        let mut longest = None;
        for key in [&scopes.pair, &scopes.account, &scopes.ip] {
            longest = longest.max(self.lock_remaining(key).await?);
        }
        match longest {
            Some(retry_after) => {
                self.core.metrics.limited(Limit::Login);
                Err(Error::LoginLocked { retry_after })
            }
            None => Ok(()),
        }
    }

    async fn lock(&self, key: &str) -> Result<()> {
        let block = self.core.config.limits.failed_login_block_period;
        let until = Timestamp::now().millis() + (block as i64) * 1000;
        let ttl = Duration::from_secs(block);
        self.core
            .ephemeral
            .set(&format!("lock:{key}"), until.to_string().as_bytes(), ttl)
            .await?;
        Ok(())
    }

    async fn count(&self, key: &str) -> Result<u64> {
        let window = Duration::from_secs(self.core.config.limits.failed_login_window);
        Ok(self
            .core
            .ephemeral
            .incr(&format!("fail:{key}"), window)
            .await?)
    }

    /// Counts one failure under `key` and locks it at `limit` (the lock then carries the
    /// penalty; counting starts afresh after it).
    async fn fail(&self, key: &str, limit: u64) -> Result<bool> {
        if self.count(key).await? < limit {
            return Ok(false);
        }
        self.lock(key).await?;
        self.core.ephemeral.delete(&format!("fail:{key}")).await?;
        Ok(true)
    }

    /// Before a password or link-code check: refuses a locked pair, account or IP, then counts
    /// this attempt against the (account, IP) pair *before* the slow credential check, so
    /// parallel guesses cannot all pass the lock check. The attempt goes to
    /// [`Self::login_failed`] or [`Self::login_succeeded`].
    pub(crate) async fn begin_login(&self, account: &AccountKey, ip: IpAddr) -> Result<Attempt> {
        let scopes = self.scopes(account, ip);
        self.check_login(&scopes).await?;
        let n = self.count(&scopes.pair).await?;
        if n > self.core.config.limits.failed_login_limit {
            // Failures plus attempts still in flight exceed the limit. Refuse without locking:
            // only real failures lock (in `login_failed`), so a burst of correct logins of one
            // account from one address (many devices at once) is refused briefly, never locked.
            self.core.metrics.limited(Limit::Login);
            return Err(Error::LoginLocked { retry_after: 1 });
        }
        let user = match account {
            AccountKey::User(u) => Some(*u),
            AccountKey::Unknown(_) => None,
        };
        Ok(Attempt {
            scopes,
            number: n,
            user,
        })
    }

    /// Records a failed password or link-code attempt: one failure for the pair (already
    /// counted by `begin_login`), one for the account and one for the IP; each scope locks at
    /// its own limit.
    pub(crate) async fn login_failed(&self, attempt: Attempt) -> Result<()> {
        let l = &self.core.config.limits;
        let Attempt {
            scopes,
            number,
            user,
        } = attempt;
        // Ids only: an unknown account is not named (its blind tag would link attempts).
        let uid = user.map(tracing::field::display);
        tracing::info!(target: "melo::audit", event = "login_failed", user_id = uid, attempt = number, "failed login");
        if number >= l.failed_login_limit {
            self.lock(&scopes.pair).await?;
            self.core
                .ephemeral
                .delete(&format!("fail:{}", scopes.pair))
                .await?;
            tracing::warn!(target: "melo::audit", event = "lockout", scope = "account_ip", user_id = uid, "account locked for one client address");
        }
        if self
            .fail(&scopes.account, l.failed_login_account_limit)
            .await?
        {
            tracing::warn!(target: "melo::audit", event = "lockout", scope = "account", user_id = uid, "account locked");
        }
        if self.fail(&scopes.ip, l.failed_login_ip_limit).await? {
            tracing::warn!(target: "melo::audit", event = "lockout", scope = "ip", "client address locked");
        }
        Ok(())
    }

    /// A wrong device token: one failure for the client IP only (a 256-bit token cannot be
    /// guessed, and counting it against the account would let anyone lock its devices out).
    pub(crate) async fn device_token_failed(&self, ip: IpAddr) -> Result<()> {
        let key = format!("ip:{}", self.ip_tag(ip));
        if self
            .fail(&key, self.core.config.limits.failed_login_ip_limit)
            .await?
        {
            tracing::warn!(target: "melo::audit", event = "lockout", scope = "ip", "client address locked");
        }
        Ok(())
    }

    /// Forgets the request budget and the account lockout of `user`, whose account was
    /// erased. The per-route budgets (`limits.routes`, named by the HTTP layer) and the
    /// lockout of each (account, client address) pair cannot be listed from here: they expire
    /// within their periods.
    pub(crate) async fn forget_user(&self, user: UserId) {
        let account = self.account_key(&AccountKey::User(user));
        for key in [
            format!("rl:u:{user}"),
            format!("lock:acct:{account}"),
            format!("fail:acct:{account}"),
        ] {
            if let Err(e) = self.core.ephemeral.delete(&key).await {
                tracing::debug!(error = %e, "limits of an erased account kept");
            }
        }
    }

    /// A successful login clears the pair's counter (not the account's or the IP's).
    pub(crate) async fn login_succeeded(&self, attempt: Attempt) -> Result<()> {
        self.core
            .ephemeral
            .delete(&format!("fail:{}", attempt.scopes.pair))
            .await?;
        Ok(())
    }
}

/// Ephemeral key parts of the lockout scopes of one attempt.
#[derive(Debug)]
struct Scopes {
    pair: String,
    account: String,
    ip: String,
}

/// A password or link-code attempt counted by [`LimitsService::begin_login`].
#[derive(Debug)]
#[must_use = "an attempt ends in login_failed or login_succeeded"]
pub(crate) struct Attempt {
    scopes: Scopes,
    /// The attempt's number for its (account, IP) pair within the window.
    number: u64,
    user: Option<UserId>,
}
