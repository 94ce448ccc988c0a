//! The node bus over Redis pub/sub: one dedicated RESP3 connection per [`RedisEphemeral`]
//! (`super::RedisEphemeral`), kept alive by a background task that reconnects with backoff and
//! re-issues `SUBSCRIBE` for every live topic.
//!
//! On a Redis Cluster the connection is a cluster connection (one RESP3 connection per node)
//! and topics use sharded pub/sub: `SSUBSCRIBE` goes to the shard owning the channel's slot,
//! one command per channel (channels of different slots cannot share one). The cluster
//! connection repairs a lost node connection by itself; the bus does not rely on it, and treats
//! any lost node connection, a failed health probe, or a server-side `SUNSUBSCRIBE` of a live
//! channel (its slot moved to another shard) as a lost connection: it builds a new cluster
//! connection from the seeds and resubscribes every live topic, as on one server.
//!
//! Messages arrive as RESP3 pushes and are handed, without any queue in between, to a bounded
//! broadcast channel per topic; a subscriber that falls more than [`BUS_BUFFER`] behind skips
//! ahead and the skipped messages are counted in [`Bus::dropped`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use ::redis::{
    AsyncConnectionConfig, Client, ConnectionInfo, ProtocolVersion, PushInfo, PushKind,
    RedisResult, Value,
};
use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{broadcast, watch, Notify};

use crate::ephemeral::{BusReceiver, BusSubscription, EphemeralError, EphemeralResult};

/// Messages a slow subscriber may lag before it skips ahead.
pub(super) const BUS_BUFFER: usize = 1024;
/// First and longest pause between reconnection attempts.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often an idle bus connection is probed with `PING` (a silent peer is not always a
/// closed socket).
const HEALTH_EVERY: Duration = Duration::from_secs(5);

/// Where the bus connects.
pub(super) enum BusTarget {
    /// One server (a client whose connections speak RESP3).
    Single(Client),
    /// A cluster, through these seeds.
    Cluster(Vec<ConnectionInfo>),
}

/// A live bus connection.
#[derive(Clone)]
enum BusConn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl BusConn {
    /// Subscribes `channels` and returns once the server confirmed every one.
    async fn subscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        match self {
            Self::Single(c) => c.subscribe(channels).await,
            Self::Cluster(c) => {
                futures_util::future::try_join_all(channels.iter().map(|ch| {
                    let mut c = c.clone();
                    async move { c.ssubscribe(ch).await }
                }))
                .await?;
                Ok(())
            }
        }
    }

    async fn unsubscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        match self {
            Self::Single(c) => c.unsubscribe(channels).await,
            Self::Cluster(c) => {
                futures_util::future::try_join_all(channels.iter().map(|ch| {
                    let mut c = c.clone();
                    async move { c.sunsubscribe(ch).await }
                }))
                .await?;
                Ok(())
            }
        }
    }

    /// Runs `cmd` on the connection, or on every node's connection of a cluster.
    async fn everywhere(&mut self, cmd: ::redis::Cmd) -> RedisResult<()> {
        match self {
            Self::Single(c) => cmd.exec_async(c).await,
            Self::Cluster(c) => {
                let all = RoutingInfo::MultiNode((
                    MultipleNodeRoutingInfo::AllNodes,
                    Some(ResponsePolicy::AllSucceeded),
                ));
                c.route_command(cmd, all).await.map(drop)
            }
        }
    }
}

/// Shared state of the bus: the topics of this node and the current connection.
pub(super) struct Bus {
    target: BusTarget,
    /// `CLIENT SETNAME` of the bus connection (tests find it in `CLIENT LIST`).
    pub(super) name: String,
    timeout: Duration,
    /// Full channel name → local fan-out.
    topics: Mutex<HashMap<String, broadcast::Sender<Bytes>>>,
    /// The live connection, `None` while (re)connecting.
    conn: watch::Sender<Option<BusConn>>,
    /// Serializes (un)subscriptions with the resubscription after a reconnect, so an
    /// `UNSUBSCRIBE` of an abandoned topic never overtakes a new subscriber's `SUBSCRIBE`.
    sub_lock: tokio::sync::Mutex<()>,
    /// Woken when a subscription handle is dropped.
    gc: Notify,
    /// Messages skipped by lagging subscribers, and pushes that could not be parsed.
    dropped: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unavailable(what: impl std::fmt::Display) -> EphemeralError {
    EphemeralError::Unavailable(format!("redis bus: {what}"))
}

impl Bus {
    pub(super) fn new(target: BusTarget, name: String, timeout: Duration) -> Self {
        Self {
            target,
            name,
            timeout,
            topics: Mutex::new(HashMap::new()),
            conn: watch::Sender::new(None),
            sub_lock: tokio::sync::Mutex::new(()),
            gc: Notify::new(),
            dropped: AtomicU64::new(0),
        }
    }

    pub(super) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn current(&self) -> Option<BusConn> {
        self.conn.borrow().clone()
    }

    /// Closes every subscription (their `recv` returns `None`) and the connection.
    pub(super) fn close(&self) {
        lock(&self.topics).clear();
        self.conn.send_replace(None);
    }

    /// Hands one pushed message to the local subscribers of its channel.
    fn dispatch(&self, data: Vec<Value>) {
        let mut it = data.into_iter();
        let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
            (it.next(), it.next())
        else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Ok(channel) = std::str::from_utf8(&channel) else {
            return;
        };
        if let Some(tx) = lock(&self.topics).get(channel) {
            // No receivers left is fine: the topic is collected soon.
            let _ = tx.send(Bytes::from(payload));
        }
    }

    /// True when `channel` has local subscribers (or is being subscribed).
    fn is_live(&self, channel: &[u8]) -> bool {
        std::str::from_utf8(channel).is_ok_and(|c| lock(&self.topics).contains_key(c))
    }

    /// Opens a connection, names it, subscribes every live topic and publishes it as current.
    /// `lost` is notified when this connection closes.
    async fn connect(self: &Arc<Self>, lost: Arc<Notify>) -> Result<(), String> {
        let weak = Arc::downgrade(self);
        let on_push = move |info: PushInfo| -> Result<(), ()> {
            match info.kind {
                PushKind::Message | PushKind::SMessage => {
                    if let Some(bus) = weak.upgrade() {
                        bus.dispatch(info.data);
                    }
                }
                PushKind::Disconnection => lost.notify_one(),
                // The server drops a sharded subscription whose slot moved to another shard;
                // `gc` forgets a topic before it unsubscribes it, so a live topic here was not
                // unsubscribed by this node.
                PushKind::SUnsubscribe => {
                    let dropped = matches!(info.data.first(), Some(Value::BulkString(c))
                        if weak.upgrade().is_some_and(|bus| bus.is_live(c)));
                    if dropped {
                        lost.notify_one();
                    }
                }
                _ => {}
            }
            Ok(())
        };
        let t = self.timeout;
        let mut conn = match &self.target {
            BusTarget::Single(client) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(t))
                    .set_response_timeout(Some(t))
                    .set_push_sender(on_push);
                let c = tokio::time::timeout(
                    t,
                    client.get_multiplexed_async_connection_with_config(&config),
                )
                .await
                .map_err(|_| "connect timed out".to_owned())?
                .map_err(|e| format!("connect: {e}"))?;
                BusConn::Single(c)
            }
            BusTarget::Cluster(seeds) => {
                let client = super::cluster_builder(seeds.clone(), t)
                    .use_protocol(ProtocolVersion::RESP3)
                    .push_sender(on_push)
                    .build()
                    .map_err(|e| format!("cluster: {e}"))?;
                let c = tokio::time::timeout(t, client.get_async_connection())
                    .await
                    .map_err(|_| "connect timed out".to_owned())?
                    .map_err(|e| format!("connect: {e}"))?;
                BusConn::Cluster(c)
            }
        };
        let mut setname = ::redis::cmd("CLIENT");
        setname.arg("SETNAME").arg(&self.name);
        tokio::time::timeout(t, conn.everywhere(setname))
            .await
            .map_err(|_| "CLIENT SETNAME timed out".to_owned())?
            .map_err(|e| format!("CLIENT SETNAME: {e}"))?;
        let _guard = self.sub_lock.lock().await;
        let channels: Vec<String> = lock(&self.topics).keys().cloned().collect();
        if !channels.is_empty() {
            tokio::time::timeout(t, conn.subscribe(&channels))
                .await
                .map_err(|_| "resubscribe timed out".to_owned())?
                .map_err(|e| format!("resubscribe: {e}"))?;
        }
        self.conn.send_replace(Some(conn));
        Ok(())
    }

    /// Serves one connection until it is lost: collects abandoned topics and probes the peer.
    async fn watch(&self, lost: &Notify) {
        let mut tick = tokio::time::interval(HEALTH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = lost.notified() => return,
                _ = self.gc.notified() => self.gc().await,
                _ = tick.tick() => {
                    let Some(mut c) = self.current() else { return };
                    // On a cluster: every node.
                    let ping = c.everywhere(::redis::cmd("PING"));
                    if !matches!(tokio::time::timeout(self.timeout, ping).await, Ok(Ok(()))) {
                        return;
                    }
                }
            }
        }
    }

    /// Unsubscribes the topics nobody on this node listens to any more.
    pub(super) async fn gc(&self) {
        let _guard = self.sub_lock.lock().await;
        let dead: Vec<String> = {
            let mut topics = lock(&self.topics);
            let dead: Vec<String> = topics
                .iter()
                .filter(|(_, tx)| tx.receiver_count() == 0)
                .map(|(k, _)| k.clone())
                .collect();
            for k in &dead {
                topics.remove(k);
            }
            dead
        };
        if dead.is_empty() {
            return;
        }
        if let Some(mut c) = self.current() {
            // On failure the server keeps sending; `dispatch` drops those messages, and the
            // next reconnect does not resubscribe them.
            let _ = tokio::time::timeout(self.timeout, c.unsubscribe(&dead)).await;
        }
    }

    /// Subscribes `channel` (full name); waits up to the timeout for a connection.
    pub(super) async fn subscribe(
        self: &Arc<Self>,
        channel: String,
    ) -> EphemeralResult<BusSubscription> {
        let t = self.timeout;
        let mut ready = self.conn.subscribe();
        tokio::time::timeout(t, ready.wait_for(Option::is_some))
            .await
            .map_err(|_| unavailable("not connected"))?
            .map_err(|_| unavailable("closed"))?;
        let _guard = tokio::time::timeout(t, self.sub_lock.lock())
            .await
            .map_err(|_| unavailable("subscribe timed out"))?;
        let rx = lock(&self.topics)
            .entry(channel.clone())
            .or_insert_with(|| broadcast::channel(BUS_BUFFER).0)
            .subscribe();
        let receiver = RedisReceiver {
            rx,
            bus: Arc::downgrade(self),
        };
        // (S)SUBSCRIBE is idempotent: issuing it for every subscriber means none returns before
        // the server has confirmed the channel.
        let mut c = self.current().ok_or_else(|| unavailable("not connected"))?;
        match tokio::time::timeout(t, c.subscribe(std::slice::from_ref(&channel))).await {
            Ok(Ok(())) => Ok(BusSubscription::new(Box::new(receiver))),
            Ok(Err(e)) => Err(unavailable(format!("subscribe: {e}"))),
            Err(_) => Err(unavailable("subscribe timed out")),
        }
    }
}

/// Keeps the bus connected until aborted (when the `RedisEphemeral` is dropped).
pub(super) async fn run(bus: Arc<Bus>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let lost = Arc::new(Notify::new());
        match bus.connect(lost.clone()).await {
            Ok(()) => {
                if backoff > MIN_BACKOFF {
                    tracing::info!("redis bus reconnected");
                }
                backoff = MIN_BACKOFF;
                bus.watch(&lost).await;
                bus.conn.send_replace(None);
                tracing::warn!("redis bus connection lost; reconnecting");
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "redis bus unavailable");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// The receiving half of one subscription.
struct RedisReceiver {
    rx: broadcast::Receiver<Bytes>,
    bus: Weak<Bus>,
}

#[async_trait]
impl BusReceiver for RedisReceiver {
    async fn recv(&mut self) -> Option<Bytes> {
        loop {
            match self.rx.recv().await {
                Ok(b) => return Some(b),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    if let Some(bus) = self.bus.upgrade() {
                        bus.dropped.fetch_add(n, Ordering::Relaxed);
                    }
                    tracing::debug!(skipped = n, "redis bus subscriber lagged");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

impl Drop for RedisReceiver {
    fn drop(&mut self) {
        if let Some(bus) = self.bus.upgrade() {
            bus.gc.notify_one();
        }
    }
}
