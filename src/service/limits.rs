//! HTTP request budgets and the failed-login lockout (PROTOCOL §3.4).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{Core, Error, Result};
use crate::ephemeral::RateDecision;
use crate::metrics::Limit;
use crate::model::{Timestamp, UserId};

/// Rate limiting and lockout over the ephemeral backend.
#[derive(Clone, Debug)]
pub struct LimitsService {
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

    fn ip_tag(&self, ip: IpAddr) -> String {
        self.core.pii.blind_tag("ip", ip.to_string().as_bytes())
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

    /// `LoginLocked` when the account or the IP is locked.
    pub(crate) async fn check_login(&self, account: &AccountKey, ip: IpAddr) -> Result<()> {
        let a = self
            .lock_remaining(&format!("acct:{}", self.account_key(account)))
            .await?;
        let i = self
            .lock_remaining(&format!("ip:{}", self.ip_tag(ip)))
            .await?;
        match a.max(i) {
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

    /// Refuses a locked account or IP, then counts this attempt against the account *before*
    /// the slow credential check, so parallel guesses cannot all pass the lock check. Returns
    /// the attempt number for [`Self::login_failed`].
    pub(crate) async fn begin_login(&self, account: &AccountKey, ip: IpAddr) -> Result<u64> {
        self.check_login(account, ip).await?;
        let l = &self.core.config.limits;
        let key = format!("acct:{}", self.account_key(account));
        let n = self.count(&key).await?;
        if n > l.failed_login_limit {
            // Failures plus attempts still in flight exceed the limit. Refuse without locking:
            // only real failures lock (in `login_failed`), so a burst of correct logins of one
            // account (many devices at once) is refused briefly, never locked out.
            self.core.metrics.limited(Limit::Login);
            return Err(Error::LoginLocked { retry_after: 1 });
        }
        Ok(n)
    }

    /// Records a failed attempt (`attempt` from `begin_login`): locks the account when it reaches
    /// the limit, and counts one failure for the IP.
    pub(crate) async fn login_failed(
        &self,
        account: &AccountKey,
        ip: IpAddr,
        attempt: u64,
    ) -> Result<()> {
        let l = &self.core.config.limits;
        // Ids only: an unknown account is not named (its blind tag would link attempts).
        let user = match account {
            AccountKey::User(u) => Some(*u),
            AccountKey::Unknown(_) => None,
        };
        tracing::info!(target: "melo::audit", event = "login_failed", user_id = user.map(tracing::field::display), attempt, "failed login");
        if attempt >= l.failed_login_limit {
            let key = format!("acct:{}", self.account_key(account));
            self.lock(&key).await?;
            tracing::warn!(target: "melo::audit", event = "lockout", scope = "account", user_id = user.map(tracing::field::display), "account locked");
            // The lock now carries the penalty; counting starts afresh after it.
            self.core.ephemeral.delete(&format!("fail:{key}")).await?;
        }
        let ip_key = format!("ip:{}", self.ip_tag(ip));
        if self.count(&ip_key).await? >= l.failed_login_ip_limit {
            self.lock(&ip_key).await?;
            tracing::warn!(target: "melo::audit", event = "lockout", scope = "ip", "client address locked");
            self.core
                .ephemeral
                .delete(&format!("fail:{ip_key}"))
                .await?;
        }
        Ok(())
    }

    /// A successful login clears the account's counters (not the IP's).
    pub(crate) async fn login_succeeded(&self, account: &AccountKey) -> Result<()> {
        let key = format!("acct:{}", self.account_key(account));
        self.core.ephemeral.delete(&format!("fail:{key}")).await?;
        Ok(())
    }
}
