//! [`RedisEphemeral`]: ephemeral state and the node bus on Redis (feature `redis`).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::{ClusterClient, ClusterClientBuilder};
use ::redis::cluster_async::ClusterConnection;
use ::redis::{
    Client, Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, ProtocolVersion, RedisFuture,
    RedisResult, Script, Value,
};
use async_trait::async_trait;
use bytes::Bytes;
use tokio::task::AbortHandle;

use super::{BusSubscription, Ephemeral, EphemeralError, EphemeralResult, RateDecision};

mod bus;
mod scripts;

use bus::{Bus, BusTarget};

/// Key and channel prefix unless [`RedisEphemeral::with_prefix`] says otherwise.
pub const DEFAULT_PREFIX: &str = "melo:";
/// Default bound of every Redis call, connection attempts included.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound of the first connection in [`RedisEphemeral::connect`].
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Ephemeral state and the node bus on a Redis server (6 or newer) or a Redis Cluster (7 or
/// newer), shared by every node of a deployment.
///
/// - Commands go through a [`ConnectionManager`] (one server) or a cluster connection (Redis
///   Cluster: it follows `MOVED`/`ASK` redirections, refreshes the slot map and reconnects to
///   nodes by itself). Every call is bounded by a timeout (2 s by default) and fails with
///   [`EphemeralError::Unavailable`], never hangs or panics.
/// - Atomic operations take one round trip each: `SET NX PX` for `set_if_absent`, Lua scripts
///   for `delete_if`, `take`, `incr` (expiry set on creation), `rate_limit` (fixed window and
///   block on server time) and `take_due` (a sorted set of deadlines: `ZRANGEBYSCORE` then
///   `ZREM`). Every script touches exactly one key. TTLs are milliseconds.
/// - Every operation touches exactly one key, so on a cluster each goes to the one shard owning
///   that key's slot, and the scripts never meet a cross-slot refusal. Keys carry no hash tag:
///   they spread over every shard. `get_many`, the only operation on several keys, reads them
///   with one `GET` each (a pipeline on one server, concurrent commands on a cluster), never
///   `MGET`. For the same reason the prefix must not contain `{`…`}`: it would become a hash tag
///   and put every key of the deployment in one slot.
/// - The bus uses a dedicated RESP3 connection named with `CLIENT SETNAME` (on a cluster: one
///   per node, all under that name) and plain `PUBLISH`/`SUBSCRIBE` on one server, sharded
///   `SPUBLISH`/`SSUBSCRIBE` on a cluster (a message travels only to the shard owning its
///   channel's slot, not to every node of the cluster). A background task reconnects it with
///   backoff and resubscribes every live topic, so subscriptions survive a Redis restart or a
///   cluster failover (messages published meanwhile are lost: the bus is best-effort, the store
///   is the truth). While Redis is down `recv` waits; it returns `None` once this value or the
///   subscription is dropped.
/// - Keys and channels carry a prefix ([`DEFAULT_PREFIX`] unless set with
///   [`with_prefix`](Self::with_prefix)), so deployments can share a server or a cluster.
///
/// A URL listing several `redis://` seed URLs separated by commas selects cluster mode in
/// [`connect`](Self::connect) and [`connect_lazy`](Self::connect_lazy);
/// [`connect_cluster`](Self::connect_cluster) takes the seeds as a list (one seed is enough: the
/// client discovers the other nodes from it).
pub struct RedisEphemeral {
    conn: Conn,
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

/// The command connection: to one server, or to every node of a cluster.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

impl fmt::Debug for RedisEphemeral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("RedisEphemeral")
            .field("cluster", &matches!(self.conn, Conn::Cluster(_)))
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

/// A cluster client on `seeds` whose every attempt is bounded by `timeout` (the caller bounds
/// the whole call too).
fn cluster_builder(seeds: Vec<ConnectionInfo>, timeout: Duration) -> ClusterClientBuilder {
    ClusterClientBuilder::new(seeds)
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .overall_response_timeout(Some(timeout))
        .retries(3)
        .min_retry_wait(50)
        .max_retry_wait(500)
}

/// Milliseconds for `PX`/`PEXPIRE`: rounded up, at least 1 (Redis refuses 0).
fn millis(d: Duration) -> u64 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX).max(1)
}

fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}

/// The seeds of a cluster URL (several `redis://` URLs separated by commas); `None` for the URL
/// of one server.
fn cluster_seeds(url: &str) -> Option<Vec<&str>> {
    url.contains(',')
        .then(|| url.split(',').map(str::trim).collect())
}

/// Parses the seeds of a cluster. Errors name a seed by its position, never its text (a URL may
/// carry a password).
fn parse_seeds<S: AsRef<str>>(seeds: &[S]) -> EphemeralResult<Vec<ConnectionInfo>> {
    if seeds.is_empty() {
        return Err(unavailable("cluster", "no seed URL"));
    }
    seeds
        .iter()
        .enumerate()
        .map(|(i, seed)| {
            let seed = seed.as_ref().trim();
            let n = i + 1;
            if !seed.starts_with("redis://") {
                return Err(unavailable(
                    "cluster",
                    format_args!("seed {n} is not a redis:// URL"),
                ));
            }
            seed.into_connection_info()
                .map_err(|_| unavailable("cluster", format_args!("seed {n} is not a valid URL")))
        })
        .collect()
}

impl RedisEphemeral {
    /// Connects to `url` (`redis://[user:password@]host[:port][/db]`, or `redis+unix://`), and
    /// fails with [`EphemeralError::Unavailable`] when the server cannot be reached within a
    /// few seconds. Must run inside a tokio runtime (it spawns the bus task).
    ///
    /// Several `redis://` URLs separated by commas select Redis Cluster with those seeds (see
    /// [`connect_cluster`](Self::connect_cluster)).
    pub async fn connect(url: &str) -> EphemeralResult<Self> {
        if let Some(seeds) = cluster_seeds(url) {
            return Self::connect_cluster(&seeds).await;
        }
        let (client, config) = Self::client(url)?;
        let conn = tokio::time::timeout(
            CONNECT_TIMEOUT,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| unavailable("connect", "timed out"))?
        .map_err(|e| unavailable("connect", e))?;
        Self::assemble_single(client, conn)
    }

    /// Like [`connect`](Self::connect) but without connecting now: the first calls connect,
    /// and fail with [`EphemeralError::Unavailable`] while the server cannot be reached. Only
    /// a malformed URL fails here. Several URLs separated by commas select Redis Cluster (see
    /// [`connect_cluster_lazy`](Self::connect_cluster_lazy)).
    pub fn connect_lazy(url: &str) -> EphemeralResult<Self> {
        if let Some(seeds) = cluster_seeds(url) {
            return Self::connect_cluster_lazy(&seeds);
        }
        let (client, config) = Self::client(url)?;
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| unavailable("connect", e))?;
        Self::assemble_single(client, conn)
    }

    /// Connects to a Redis Cluster (7 or newer) through `seeds`, `redis://` URLs of some of its
    /// nodes (one reachable seed is enough: the other nodes are discovered from it; all seeds
    /// must agree on user, password and database). Fails with [`EphemeralError::Unavailable`]
    /// when no seed answers, or the cluster's slot map cannot be read, within a few seconds.
    /// Must run inside a tokio runtime (it spawns the bus task).
    ///
    /// Commands go to the shard owning their key (following `MOVED`/`ASK`); the bus uses sharded
    /// pub/sub. Errors never quote a seed (it may carry a password).
    pub async fn connect_cluster<S: AsRef<str>>(seeds: &[S]) -> EphemeralResult<Self> {
        let seeds = parse_seeds(seeds)?;
        let client = Self::cluster_client(&seeds)?;
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_connection())
            .await
            .map_err(|_| unavailable("connect", "timed out"))?
            .map_err(|e| unavailable("connect", e))?;
        Ok(Self::assemble(
            Conn::Cluster(conn),
            BusTarget::Cluster(seeds),
        ))
    }

    /// Like [`connect_cluster`](Self::connect_cluster) but without connecting now: the first
    /// calls connect, and fail with [`EphemeralError::Unavailable`] while no seed can be
    /// reached. Only malformed seeds fail here.
    pub fn connect_cluster_lazy<S: AsRef<str>>(seeds: &[S]) -> EphemeralResult<Self> {
        let seeds = parse_seeds(seeds)?;
        let client = Self::cluster_client(&seeds)?;
        let config = ::redis::cluster::ClusterConfig::new()
            .set_connection_timeout(DEFAULT_TIMEOUT)
            .set_response_timeout(DEFAULT_TIMEOUT);
        let conn = client.get_pending_async_connection_with_config(config);
        Ok(Self::assemble(
            Conn::Cluster(conn),
            BusTarget::Cluster(seeds),
        ))
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

    /// The command client of a cluster; the bus builds its own (RESP3, with a push handler).
    fn cluster_client(seeds: &[ConnectionInfo]) -> EphemeralResult<ClusterClient> {
        cluster_builder(seeds.to_vec(), DEFAULT_TIMEOUT)
            .build()
            .map_err(|e| unavailable("cluster", e))
    }

    fn assemble_single(client: Client, conn: ConnectionManager) -> EphemeralResult<Self> {
        // The bus needs RESP3 pushes; commands keep whatever protocol the URL asked for.
        let info = client.get_connection_info().clone();
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let bus_client =
            Client::open(info.set_redis_settings(settings)).map_err(|e| unavailable("url", e))?;
        Ok(Self::assemble(
            Conn::Single(conn),
            BusTarget::Single(bus_client),
        ))
    }

    fn assemble(conn: Conn, target: BusTarget) -> Self {
        let name = format!("melo-bus-{}", uuid::Uuid::now_v7().simple());
        let bus = Arc::new(Bus::new(target, name, DEFAULT_TIMEOUT));
        let bus_task = tokio::spawn(bus::run(bus.clone())).abort_handle();
        Self {
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
        }
    }

    /// True when connected to a Redis Cluster (sharded pub/sub, commands routed by slot).
    pub fn is_cluster(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
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
        F: FnOnce(Conn) -> Fut,
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
        if self.is_cluster() {
            // Keys of one call live on different shards: one GET each, all at once (a cluster
            // pipeline would fail on a cross-slot batch, MGET would be refused).
            return self
                .call("get_many", |c| async move {
                    futures_util::future::try_join_all(keys.iter().map(|k| {
                        let mut c = c.clone();
                        let k = self.key(k);
                        async move { ::redis::cmd("GET").arg(k).query_async(&mut c).await }
                    }))
                    .await
                })
                .await;
        }
        // A pipeline of GETs rather than MGET: one round trip.
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
        // Sharded on a cluster: only the shard owning the channel's slot carries the message.
        let command = if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        self.call("publish", |mut c| async move {
            ::redis::cmd(command)
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
