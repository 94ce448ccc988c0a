use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::{BusReceiver, BusSubscription, Ephemeral, EphemeralResult, RateDecision};

const SHARDS: usize = 32;
/// Messages a slow bus subscriber may lag before it skips ahead.
const BUS_BUFFER: usize = 4096;

#[derive(Debug)]
enum Value {
    Bytes(Vec<u8>),
    Counter(u64),
    Limiter {
        window_end: Instant,
        count: u64,
        blocked_until: Option<Instant>,
    },
}

#[derive(Debug)]
struct Entry {
    value: Value,
    expires: Instant,
}

/// One deadline set: (due ms, member), earliest first.
type Deadlines = BTreeSet<(i64, Vec<u8>)>;

/// Single-node ephemeral state: sharded maps with lazy expiry and a periodic sweep, and an
/// in-process bus of bounded broadcast channels. Uses tokio time, so tests can pause it.
#[derive(Debug)]
pub struct MemoryEphemeral {
    shards: Vec<Mutex<HashMap<String, Entry>>>,
    topics: Mutex<HashMap<String, broadcast::Sender<Bytes>>>,
    /// Deadline sets by name.
    deadlines: Mutex<HashMap<String, Deadlines>>,
}

impl Default for MemoryEphemeral {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryEphemeral {
    /// Empty state.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            topics: Mutex::new(HashMap::new()),
            deadlines: Mutex::new(HashMap::new()),
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, HashMap<String, Entry>> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let m = &self.shards[(h.finish() as usize) % SHARDS];
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of live keys (for tests and metrics).
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .values()
                    .filter(|e| e.expires > now)
                    .count()
            })
            .sum()
    }

    /// True when no key is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn live<'a>(map: &'a mut HashMap<String, Entry>, key: &str, now: Instant) -> Option<&'a mut Entry> {
    if map.get(key).is_some_and(|e| e.expires <= now) {
        map.remove(key);
    }
    map.get_mut(key)
}

fn ceil_secs(d: Duration) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1)
}

struct MemoryReceiver(broadcast::Receiver<Bytes>);

#[async_trait]
impl BusReceiver for MemoryReceiver {
    async fn recv(&mut self) -> Option<Bytes> {
        loop {
            match self.0.recv().await {
                Ok(b) => return Some(b),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

#[async_trait]
impl Ephemeral for MemoryEphemeral {
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> EphemeralResult<()> {
        let entry = Entry {
            value: Value::Bytes(value.to_vec()),
            expires: Instant::now() + ttl,
        };
        self.shard(key).insert(key.to_owned(), entry);
        Ok(())
    }

    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> EphemeralResult<bool> {
        let now = Instant::now();
        let mut m = self.shard(key);
        if live(&mut m, key, now).is_some() {
            return Ok(false);
        }
        let entry = Entry {
            value: Value::Bytes(value.to_vec()),
            expires: now + ttl,
        };
        m.insert(key.to_owned(), entry);
        Ok(true)
    }

    async fn delete_if(&self, key: &str, value: &[u8]) -> EphemeralResult<bool> {
        let mut m = self.shard(key);
        let matches = matches!(
            live(&mut m, key, Instant::now()),
            Some(Entry { value: Value::Bytes(b), .. }) if b.as_slice() == value
        );
        if matches {
            m.remove(key);
        }
        Ok(matches)
    }

    async fn get(&self, key: &str) -> EphemeralResult<Option<Vec<u8>>> {
        let mut m = self.shard(key);
        Ok(match live(&mut m, key, Instant::now()) {
            Some(Entry {
                value: Value::Bytes(b),
                ..
            }) => Some(b.clone()),
            _ => None,
        })
    }

    async fn take(&self, key: &str) -> EphemeralResult<Option<Vec<u8>>> {
        let mut m = self.shard(key);
        let now = Instant::now();
        Ok(match m.remove(key) {
            Some(Entry {
                value: Value::Bytes(b),
                expires,
            }) if expires > now => Some(b),
            _ => None,
        })
    }

    async fn delete(&self, key: &str) -> EphemeralResult<()> {
        self.shard(key).remove(key);
        Ok(())
    }

    async fn incr(&self, key: &str, window: Duration) -> EphemeralResult<u64> {
        let mut m = self.shard(key);
        let now = Instant::now();
        if let Some(Entry {
            value: Value::Counter(n),
            ..
        }) = live(&mut m, key, now)
        {
            *n += 1;
            return Ok(*n);
        }
        m.insert(
            key.to_owned(),
            Entry {
                value: Value::Counter(1),
                expires: now + window,
            },
        );
        Ok(1)
    }

    async fn rate_limit(
        &self,
        key: &str,
        limit: u64,
        window: Duration,
        block: Duration,
    ) -> EphemeralResult<RateDecision> {
        let mut m = self.shard(key);
        let now = Instant::now();
        if let Some(Entry {
            value:
                Value::Limiter {
                    window_end,
                    count,
                    blocked_until,
                },
            expires,
        }) = live(&mut m, key, now)
        {
            if let Some(until) = *blocked_until {
                if until > now {
                    return Ok(RateDecision::Limited {
                        retry_after: ceil_secs(until - now),
                    });
                }
            } else if *window_end > now {
                if *count < limit {
                    *count += 1;
                    return Ok(RateDecision::Allowed);
                }
                let until = now + block;
                *blocked_until = Some(until);
                *expires = until;
                return Ok(RateDecision::Limited {
                    retry_after: ceil_secs(block),
                });
            }
        }
        // No state, window over, or block over: a new window starts with this request.
        let entry = Entry {
            value: Value::Limiter {
                window_end: now + window,
                count: 1,
                blocked_until: None,
            },
            expires: now + window,
        };
        m.insert(key.to_owned(), entry);
        if limit == 0 {
            return Ok(RateDecision::Limited {
                retry_after: ceil_secs(window),
            });
        }
        Ok(RateDecision::Allowed)
    }

    async fn schedule(&self, set: &str, member: &[u8], at_ms: i64) -> EphemeralResult<()> {
        let mut sets = self.deadlines.lock().unwrap_or_else(|p| p.into_inner());
        sets.entry(set.to_owned())
            .or_default()
            .insert((at_ms, member.to_vec()));
        Ok(())
    }

    async fn take_due(&self, set: &str, now_ms: i64, max: usize) -> EphemeralResult<Vec<Vec<u8>>> {
        let mut sets = self.deadlines.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = sets.get_mut(set) else {
            return Ok(Vec::new());
        };
        let mut due = Vec::new();
        while due.len() < max {
            match s.first() {
                Some((at, _)) if *at <= now_ms => {
                    if let Some((_, m)) = s.pop_first() {
                        due.push(m);
                    }
                }
                _ => break,
            }
        }
        if s.is_empty() {
            sets.remove(set);
        }
        Ok(due)
    }

    async fn publish(&self, topic: &str, payload: Bytes) -> EphemeralResult<()> {
        let topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = topics.get(topic) {
            // No receivers is fine: nobody on this node listens.
            let _ = tx.send(payload);
        }
        Ok(())
    }

    async fn subscribe(&self, topic: &str) -> EphemeralResult<BusSubscription> {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        let rx = topics
            .entry(topic.to_owned())
            .or_insert_with(|| broadcast::channel(BUS_BUFFER).0)
            .subscribe();
        Ok(BusSubscription::new(Box::new(MemoryReceiver(rx))))
    }

    async fn ping(&self) -> EphemeralResult<()> {
        Ok(())
    }

    fn in_process(&self) -> bool {
        true
    }

    async fn maintain(&self) {
        let now = Instant::now();
        for shard in &self.shards {
            shard
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|_, e| e.expires > now);
        }
        self.topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, tx| tx.receiver_count() > 0);
    }
}

#[cfg(test)]
mod tests {
    crate::ephemeral::conformance::ephemeral_conformance!(memory, async {
        std::sync::Arc::new(crate::MemoryEphemeral::new())
    });

    #[tokio::test(start_paused = true)]
    async fn sweep_drops_expired() {
        use super::*;
        let e = MemoryEphemeral::new();
        e.set("a", b"1", Duration::from_secs(1)).await.expect("set");
        assert_eq!(e.len(), 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        e.maintain().await;
        assert!(e.is_empty());
    }
}
