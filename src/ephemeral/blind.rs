//! [`Blinded`]: a shared ephemeral backend that sees no identifier and no value in plaintext.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{BusSubscription, Ephemeral, EphemeralResult, RateDecision};
use crate::crypto::Pii;

/// Longest key kind kept readable (`call`, `typing`, `rl`, …).
const MAX_KIND: usize = 16;

/// Wraps a backend that lives outside the process (Redis), so that what it stores and what
/// crosses the wire to it names nobody:
///
/// - a key name becomes `<kind>:<tag>`: the kind is the key's first segment when it is a short
///   lowercase word (`typing` of `typing:{from}:{to}`), kept so operators can tell key families
///   apart; the tag is a keyed blind tag (HMAC-SHA256 under the data keys' blind key) of the
///   whole key. Uids, chat ids, session ids, message ids and addresses never reach a key name;
/// - a value is sealed with AES-256-GCM bound to its key's tag, so it cannot be moved to
///   another key; a value that does not open (written under a removed data key) reads as
///   absent. Counters (`incr`, `rate_limit`) hold numbers only.
///
/// The blind key is the current data-key version's: activating a new data key makes earlier
/// ephemeral state unreachable (counters and locks start afresh, live calls and typing
/// indicators are forgotten); it expires on its own.
///
/// Bus topics are fixed names and pass through; bus payloads are sealed by the cluster layer.
#[derive(Debug)]
pub(crate) struct Blinded {
    inner: Arc<dyn Ephemeral>,
    pii: Pii,
}

impl Blinded {
    pub(crate) fn new(inner: Arc<dyn Ephemeral>, pii: Pii) -> Self {
        Self { inner, pii }
    }

    /// The backend's name for `key`.
    pub(crate) fn name(&self, key: &str) -> String {
        let first = key.split(':').next().unwrap_or("");
        let kind = if !first.is_empty()
            && first.len() <= MAX_KIND
            && first.bytes().all(|b| b.is_ascii_lowercase())
        {
            first
        } else {
            "k"
        };
        format!(
            "{kind}:{}",
            self.pii.blind_tag("ephemeral-key", key.as_bytes())
        )
    }

    fn seal(&self, name: &str, value: &[u8]) -> EphemeralResult<Vec<u8>> {
        self.pii
            .seal("ephemeral", "value", name, value)
            .map_err(|e| super::EphemeralError::Unavailable(format!("sealing a value: {e}")))
    }

    fn open(&self, name: &str, sealed: Option<Vec<u8>>) -> Option<Vec<u8>> {
        sealed.and_then(|s| self.pii.open("ephemeral", "value", name, &s).ok())
    }
}

#[async_trait]
impl Ephemeral for Blinded {
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> EphemeralResult<()> {
        let name = self.name(key);
        let sealed = self.seal(&name, value)?;
        self.inner.set(&name, &sealed, ttl).await
    }

    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> EphemeralResult<bool> {
        let name = self.name(key);
        let sealed = self.seal(&name, value)?;
        self.inner.set_if_absent(&name, &sealed, ttl).await
    }

    async fn delete_if(&self, key: &str, value: &[u8]) -> EphemeralResult<bool> {
        // Sealing is randomized, so compare the opened value, then delete only while the stored
        // ciphertext is still the one compared (atomic in the backend).
        let name = self.name(key);
        let Some(stored) = self.inner.get(&name).await? else {
            return Ok(false);
        };
        match self.pii.open("ephemeral", "value", &name, &stored) {
            Ok(v) if v == value => self.inner.delete_if(&name, &stored).await,
            _ => Ok(false),
        }
    }

    async fn get(&self, key: &str) -> EphemeralResult<Option<Vec<u8>>> {
        let name = self.name(key);
        let v = self.inner.get(&name).await?;
        Ok(self.open(&name, v))
    }

    async fn get_many(&self, keys: &[String]) -> EphemeralResult<Vec<Option<Vec<u8>>>> {
        let names: Vec<String> = keys.iter().map(|k| self.name(k)).collect();
        let values = self.inner.get_many(&names).await?;
        Ok(names
            .iter()
            .zip(values)
            .map(|(name, v)| self.open(name, v))
            .collect())
    }

    async fn take(&self, key: &str) -> EphemeralResult<Option<Vec<u8>>> {
        let name = self.name(key);
        let v = self.inner.take(&name).await?;
        Ok(self.open(&name, v))
    }

    async fn delete(&self, key: &str) -> EphemeralResult<()> {
        self.inner.delete(&self.name(key)).await
    }

    async fn incr(&self, key: &str, window: Duration) -> EphemeralResult<u64> {
        self.inner.incr(&self.name(key), window).await
    }

    async fn rate_limit(
        &self,
        key: &str,
        limit: u64,
        window: Duration,
        block: Duration,
    ) -> EphemeralResult<RateDecision> {
        self.inner
            .rate_limit(&self.name(key), limit, window, block)
            .await
    }

    async fn schedule(&self, set: &str, member: &[u8], at_ms: i64) -> EphemeralResult<()> {
        let name = self.name(set);
        let sealed = self.seal(&name, member)?;
        self.inner.schedule(&name, &sealed, at_ms).await
    }

    async fn take_due(&self, set: &str, now_ms: i64, max: usize) -> EphemeralResult<Vec<Vec<u8>>> {
        let name = self.name(set);
        let due = self.inner.take_due(&name, now_ms, max).await?;
        // A member that does not open (another key set) is dropped: nobody could act on it.
        Ok(due
            .into_iter()
            .filter_map(|m| self.open(&name, Some(m)))
            .collect())
    }

    async fn publish(&self, topic: &str, payload: Bytes) -> EphemeralResult<()> {
        self.inner.publish(topic, payload).await
    }

    async fn subscribe(&self, topic: &str) -> EphemeralResult<BusSubscription> {
        self.inner.subscribe(topic).await
    }

    async fn ping(&self) -> EphemeralResult<()> {
        self.inner.ping().await
    }

    async fn maintain(&self) {
        self.inner.maintain().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{DataKeys, JwtKey, StaticKeys};
    use crate::MemoryEphemeral;
    use std::sync::OnceLock;

    fn pii() -> Pii {
        static KEYS: OnceLock<Arc<StaticKeys>> = OnceLock::new();
        let keys = KEYS.get_or_init(|| {
            Arc::new(StaticKeys::new(
                JwtKey::generate(0).expect("key"),
                DataKeys::generate(),
            ))
        });
        Pii::new(keys.clone())
    }

    async fn blinded() -> Arc<dyn Ephemeral> {
        Arc::new(Blinded::new(Arc::new(MemoryEphemeral::new()), pii()))
    }

    crate::ephemeral::conformance::ephemeral_conformance!(blinded_memory, super::blinded());

    #[tokio::test]
    async fn the_backend_sees_tags_and_ciphertext_only() {
        let raw = Arc::new(MemoryEphemeral::new());
        let b = Blinded::new(raw.clone(), pii());
        let key = "typing:12345678:87654321";
        b.set(key, b"12345678 typing", Duration::from_secs(60))
            .await
            .expect("set");
        let name = b.name(key);
        assert!(name.starts_with("typing:"), "{name}");
        assert!(!name.contains("12345678"), "{name}");
        assert_eq!(name.len(), "typing:".len() + 32);
        let stored = raw.get(&name).await.expect("get").expect("stored");
        assert!(!stored.windows(8).any(|w| w == b"12345678"));
        assert_eq!(
            b.get(key).await.expect("get").as_deref(),
            Some(&b"12345678 typing"[..])
        );
        // A value moved to another key does not open there.
        let other = b.name("typing:1:2");
        raw.set(&other, &stored, Duration::from_secs(60))
            .await
            .expect("set");
        assert_eq!(b.get("typing:1:2").await.expect("get"), None);
        // Kinds that are not short lowercase words are not kept.
        assert!(b.name("12345678:x").starts_with("k:"));
        assert!(b.name("Call:x").starts_with("k:"));
    }
}
