//! [`RedisEphemeral`]: ephemeral state and the node bus on Redis (feature `redis`).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, ProtocolVersion, RedisResult, Script, Value};
use async_trait::async_trait;
use bytes::Bytes;
use tokio::task::AbortHandle;

use super::{BusSubscription, Ephemeral, EphemeralError, EphemeralResult, RateDecision};

mod bus;
mod scripts;

use bus::Bus;

/// Key and channel prefix unless [`RedisEphemeral::with_prefix`] says otherwise.
pub const DEFAULT_PREFIX: &str = "melo:";
/// Default bound of every Redis call, connection attempts included.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound of the first connection in [`RedisEphemeral::connect`].
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Ephemeral state and the node bus on a Redis server (6 or newer), shared by every node of a
/// deployment.
///
/// - Commands go through a [`ConnectionManager`], which reconnects by itself after a failure.
///   Every call is bounded by a timeout (2 s by default) and fails with
///   [`EphemeralError::Unavailable`], never hangs or panics.
/// - Atomic operations take one round trip each: `SET NX PX` for `set_if_absent`, Lua scripts
///   for `delete_if`, `take`, `incr` (expiry set on creation), `rate_limit` (fixed window and
///   block on server time) and `take_due` (a sorted set of deadlines: `ZRANGEBYSCORE` then
///   `ZREM`). Every script touches exactly one key. TTLs are milliseconds.
/// - The bus uses a dedicated RESP3 connection named with `CLIENT SETNAME`; a background task
///   reconnects it with backoff and resubscribes every live topic, so subscriptions survive a
///   Redis restart (messages published meanwhile are lost: the bus is best-effort, the store is
///   the truth). While Redis is down `recv` waits; it returns `None` once this value or the
///   subscription is dropped.
/// - Keys and channels carry a prefix ([`DEFAULT_PREFIX`] unless set with
///   [`with_prefix`](Self::with_prefix)), so deployments can share a server.
pub struct RedisEphemeral {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    bus: Arc<Bus>,
    bus_task: AbortHandle,
    scripts: Scripts,
}

struct Scripts {
    delete_if: Script,
    take: Script,
    incr: Script,
    rate_limit: Script,
    take_due: Script,
}

impl fmt::Debug for RedisEphemeral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("RedisEphemeral")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisEphemeral {
    fn drop(&mut self) {
        self.bus_task.abort();
        self.bus.close();
    }
}

fn unavailable(op: &str, e: impl fmt::Display) -> EphemeralError {
    EphemeralError::Unavailable(format!("redis {op}: {e}"))
}

/// Milliseconds for `PX`/`PEXPIRE`: rounded up, at least 1 (Redis refuses 0).
fn millis(d: Duration) -> u64 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX).max(1)
}

fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}

impl RedisEphemeral {
    /// Connects to `url` (`redis://[user:password@]host[:port][/db]`, or `redis+unix://`), and
    /// fails with [`EphemeralError::Unavailable`] when the server cannot be reached within a
    /// few seconds. Must run inside a tokio runtime (it spawns the bus task).
    pub async fn connect(url: &str) -> EphemeralResult<Self> {
        let (client, config) = Self::client(url)?;
        let conn = tokio::time::timeout(
            CONNECT_TIMEOUT,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| unavailable("connect", "timed out"))?
        .map_err(|e| unavailable("connect", e))?;
        Self::assemble(client, conn)
    }

    /// Like [`connect`](Self::connect) but without connecting now: the first calls connect,
    /// and fail with [`EphemeralError::Unavailable`] while the server cannot be reached. Only
    /// a malformed URL fails here.
    pub fn connect_lazy(url: &str) -> EphemeralResult<Self> {
        let (client, config) = Self::client(url)?;
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| unavailable("connect", e))?;
        Self::assemble(client, conn)
    }

    fn client(url: &str) -> EphemeralResult<(Client, ConnectionManagerConfig)> {
        let client = Client::open(url).map_err(|e| unavailable("url", e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(DEFAULT_TIMEOUT))
            .set_response_timeout(Some(DEFAULT_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        Ok((client, config))
    }

    fn assemble(client: Client, conn: ConnectionManager) -> EphemeralResult<Self> {
        // The bus needs RESP3 pushes; commands keep whatever protocol the URL asked for.
        let info = client.get_connection_info().clone();
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let bus_client =
            Client::open(info.set_redis_settings(settings)).map_err(|e| unavailable("url", e))?;
        let name = format!("melo-bus-{}", uuid::Uuid::now_v7().simple());
        let bus = Arc::new(Bus::new(bus_client, name, DEFAULT_TIMEOUT));
        let bus_task = tokio::spawn(bus::run(bus.clone())).abort_handle();
        Ok(Self {
            conn,
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            bus,
            bus_task,
            scripts: Scripts {
                delete_if: Script::new(scripts::DELETE_IF),
                take: Script::new(scripts::TAKE),
                incr: Script::new(scripts::INCR),
                rate_limit: Script::new(scripts::RATE_LIMIT),
                take_due: Script::new(scripts::TAKE_DUE),
            },
        })
    }

    /// Sets the prefix of every key and channel (default [`DEFAULT_PREFIX`]).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the bound of each call on the command connection (default 2 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The key and channel prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Bus messages lost on this node so far: skipped by subscribers that fell more than their
    /// buffer behind, or unreadable.
    pub fn bus_dropped(&self) -> u64 {
        self.bus.dropped()
    }

    /// The `CLIENT SETNAME` of this node's bus connection.
    pub fn bus_client_name(&self) -> &str {
        &self.bus.name
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Runs one call on a handle of the managed connection, bounded by the timeout.
    async fn call<T, F, Fut>(&self, op: &str, f: F) -> EphemeralResult<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        match tokio::time::timeout(self.timeout, f(self.conn.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(unavailable(op, e)),
            Err(_) => Err(unavailable(op, "timed out")),
        }
    }
}

#[async_trait]
impl Ephemeral for RedisEphemeral {
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> EphemeralResult<()> {
        let k = self.key(key);
        self.call("set", |mut c| async move {
            ::redis::cmd("SET")
                .arg(k)
                .arg(value)
                .arg("PX")
                .arg(millis(ttl))
                .exec_async(&mut c)
                .await
        })
        .await
    }

    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> EphemeralResult<bool> {
        let k = self.key(key);
        let reply: Value = self
            .call("set_if_absent", |mut c| async move {
                ::redis::cmd("SET")
                    .arg(k)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(ttl))
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(!matches!(reply, Value::Nil))
    }

    async fn delete_if(&self, key: &str, value: &[u8]) -> EphemeralResult<bool> {
        let k = self.key(key);
        let n: i64 = self
            .call("delete_if", |mut c| async move {
                self.scripts
                    .delete_if
                    .key(k)
                    .arg(value)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(n > 0)
    }

    async fn get(&self, key: &str) -> EphemeralResult<Option<Vec<u8>>> {
        let k = self.key(key);
        self.call("get", |mut c| async move {
            ::redis::cmd("GET").arg(k).query_async(&mut c).await
        })
        .await
    }

    async fn get_many(&self, keys: &[String]) -> EphemeralResult<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // A pipeline of GETs rather than MGET: one round trip, and no cross-slot refusal once
        // keys spread over a cluster.
        let mut pipe = ::redis::pipe();
        for k in keys {
            pipe.cmd("GET").arg(self.key(k));
        }
        self.call(
            "get_many",
            |mut c| async move { pipe.query_async(&mut c).await },
        )
        .await
    }

    async fn take(&self, key: &str) -> EphemeralResult<Option<Vec<u8>>> {
        let k = self.key(key);
        self.call("take", |mut c| async move {
            self.scripts.take.key(k).invoke_async(&mut c).await
        })
        .await
    }

    async fn delete(&self, key: &str) -> EphemeralResult<()> {
        let k = self.key(key);
        self.call("delete", |mut c| async move {
            ::redis::cmd("DEL").arg(k).exec_async(&mut c).await
        })
        .await
    }

    async fn incr(&self, key: &str, window: Duration) -> EphemeralResult<u64> {
        let k = self.key(key);
        self.call("incr", |mut c| async move {
            self.scripts
                .incr
                .key(k)
                .arg(millis(window))
                .invoke_async(&mut c)
                .await
        })
        .await
    }

    async fn rate_limit(
        &self,
        key: &str,
        limit: u64,
        window: Duration,
        block: Duration,
    ) -> EphemeralResult<RateDecision> {
        let k = self.key(key);
        let (allowed, retry_ms): (i64, i64) = self
            .call("rate_limit", |mut c| async move {
                self.scripts
                    .rate_limit
                    .key(k)
                    .arg(limit)
                    .arg(millis(window))
                    .arg(millis(block))
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(if allowed == 1 {
            RateDecision::Allowed
        } else {
            RateDecision::Limited {
                retry_after: ceil_secs(u64::try_from(retry_ms).unwrap_or(0)),
            }
        })
    }

    async fn schedule(&self, set: &str, member: &[u8], at_ms: i64) -> EphemeralResult<()> {
        let k = self.key(set);
        self.call("schedule", |mut c| async move {
            ::redis::cmd("ZADD")
                .arg(k)
                .arg(at_ms)
                .arg(member)
                .exec_async(&mut c)
                .await
        })
        .await
    }

    async fn take_due(&self, set: &str, now_ms: i64, max: usize) -> EphemeralResult<Vec<Vec<u8>>> {
        let k = self.key(set);
        self.call("take_due", |mut c| async move {
            self.scripts
                .take_due
                .key(k)
                .arg(now_ms)
                .arg(max.max(1))
                .invoke_async(&mut c)
                .await
        })
        .await
    }

    async fn publish(&self, topic: &str, payload: Bytes) -> EphemeralResult<()> {
        let channel = self.key(topic);
        self.call("publish", |mut c| async move {
            ::redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload.as_ref())
                .exec_async(&mut c)
                .await
        })
        .await
    }

    async fn subscribe(&self, topic: &str) -> EphemeralResult<BusSubscription> {
        self.bus.subscribe(self.key(topic)).await
    }

    async fn ping(&self) -> EphemeralResult<()> {
        self.call("ping", |mut c| async move {
            ::redis::cmd("PING").exec_async(&mut c).await
        })
        .await
    }

    async fn maintain(&self) {
        // Expiry is Redis's; only abandoned bus topics need collecting.
        self.bus.gc().await;
    }
}

#[cfg(test)]
mod tests;
