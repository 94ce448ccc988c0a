//! The node bus over Redis pub/sub: one dedicated RESP3 connection per [`RedisEphemeral`]
//! (`super::RedisEphemeral`), kept alive by a background task that reconnects with backoff and
//! re-issues `SUBSCRIBE` for every live topic.
//!
//! Messages arrive as RESP3 pushes and are handed, without any queue in between, to a bounded
//! broadcast channel per topic; a subscriber that falls more than [`BUS_BUFFER`] behind skips
//! ahead and the skipped messages are counted in [`Bus::dropped`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, Client, PushInfo, PushKind, Value};
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

/// Shared state of the bus: the topics of this node and the current connection.
pub(super) struct Bus {
    client: Client,
    /// `CLIENT SETNAME` of the bus connection (tests find it in `CLIENT LIST`).
    pub(super) name: String,
    timeout: Duration,
    /// Full channel name → local fan-out.
    topics: Mutex<HashMap<String, broadcast::Sender<Bytes>>>,
    /// The live connection, `None` while (re)connecting.
    conn: watch::Sender<Option<MultiplexedConnection>>,
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
    pub(super) fn new(client: Client, name: String, timeout: Duration) -> Self {
        Self {
            client,
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

    fn current(&self) -> Option<MultiplexedConnection> {
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

    /// Opens a connection, names it, subscribes every live topic and publishes it as current.
    /// `lost` is notified when this connection closes.
    async fn connect(self: &Arc<Self>, lost: Arc<Notify>) -> Result<(), String> {
        let weak = Arc::downgrade(self);
        let on_push = move |info: PushInfo| -> Result<(), ()> {
            match info.kind {
                PushKind::Message => {
                    if let Some(bus) = weak.upgrade() {
                        bus.dispatch(info.data);
                    }
                }
                PushKind::Disconnection => lost.notify_one(),
                _ => {}
            }
            Ok(())
        };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_push_sender(on_push);
        let t = self.timeout;
        let mut conn = tokio::time::timeout(
            t,
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
        tokio::time::timeout(
            t,
            ::redis::cmd("CLIENT")
                .arg("SETNAME")
                .arg(&self.name)
                .exec_async(&mut conn),
        )
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
                    let cmd = ::redis::cmd("PING");
                    let ping = cmd.query_async::<Value>(&mut c);
                    if !matches!(tokio::time::timeout(self.timeout, ping).await, Ok(Ok(_))) {
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
        // SUBSCRIBE is idempotent: issuing it for every subscriber means none returns before
        // the server has confirmed the channel.
        let mut c = self.current().ok_or_else(|| unavailable("not connected"))?;
        match tokio::time::timeout(t, c.subscribe(&channel)).await {
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
