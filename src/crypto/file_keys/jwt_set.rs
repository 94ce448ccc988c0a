//! The JWT key directory `jwt/`, shared by every node: reading it, the rotation schedule, and
//! publishing a new key so that of several nodes racing, exactly one key is made.
//!
//! A key file is `jwt/<slot>.pem`. The slot is the Unix second from which the key may sign; a
//! key also waits until its file has been published (its modification time) for
//! [`KeyPolicy::publish_delay`], so every node has loaded it before a token signed with it
//! exists. Files written before this scheme have slot = creation time and an old modification
//! time, so they sign from their slot as before.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use zeroize::Zeroizing;

use super::super::keys::{JwtKey, KeyPolicy};
use super::super::CryptoError;

/// A key loaded from `jwt/<slot>.pem`.
#[derive(Clone, Debug)]
pub(super) struct Loaded {
    pub(super) key: Arc<JwtKey>,
    /// Unix second the file was published (its modification time).
    pub(super) published: i64,
}

impl Loaded {
    /// First second this key signs: its slot, and not before it has been published for `delay`
    /// seconds.
    pub(super) fn signs_from(&self, delay: i64) -> i64 {
        self.key
            .created_at()
            .max(self.published.saturating_add(delay))
    }

    fn slot(&self) -> i64 {
        self.key.created_at()
    }
}

/// The loaded keys, by slot (oldest first). Never empty.
#[derive(Debug)]
pub(super) struct JwtSet {
    first: Loaded,
    rest: Vec<Loaded>,
}

impl JwtSet {
    /// `None` when `keys` is empty.
    pub(super) fn new(mut keys: Vec<Loaded>) -> Option<Self> {
        keys.sort_by_key(Loaded::slot);
        let mut it = keys.into_iter();
        let first = it.next()?;
        Some(Self {
            first,
            rest: it.collect(),
        })
    }

    pub(super) fn iter(&self) -> impl DoubleEndedIterator<Item = &Loaded> {
        std::iter::once(&self.first).chain(self.rest.iter())
    }

    pub(super) fn len(&self) -> usize {
        1 + self.rest.len()
    }

    fn newest(&self) -> &Loaded {
        self.rest.last().unwrap_or(&self.first)
    }

    /// The key that signs at `now`: the newest whose time has come. When none has (a lone key
    /// whose file was just written or copied), the oldest: it is the one every node has had the
    /// longest.
    pub(super) fn signing(&self, now: i64, delay: i64) -> &Loaded {
        self.iter()
            .rev()
            .find(|k| k.signs_from(delay) <= now)
            .unwrap_or(&self.first)
    }

    pub(super) fn keys(&self) -> Vec<Arc<JwtKey>> {
        self.iter().map(|k| k.key.clone()).collect()
    }

    /// The slot of the key to make at `now`, if one is due: `newest + rotation`, made up to
    /// `publish_delay` ahead of it. The name depends only on the shared directory, so nodes
    /// racing for it pick the same one. After an outage longer than a rotation the slot skips to
    /// the last period that has begun, so one key is made, not one per missed period. Nothing is
    /// due while the newest key still waits to sign.
    pub(super) fn due_slot(&self, now: i64, policy: &KeyPolicy) -> Option<i64> {
        let delay = secs(policy.publish_delay);
        let rotation = secs(policy.rotation).max(1);
        let newest = self.newest();
        if newest.signs_from(delay) > now {
            return None;
        }
        let slot = newest.slot().saturating_add(rotation);
        let ahead = now.saturating_add(delay);
        if ahead < slot {
            return None;
        }
        let missed = ahead.saturating_sub(slot) / rotation;
        Some(slot.saturating_add(missed.saturating_mul(rotation)))
    }

    /// Slots of the keys retired at `now`: their successor has signed for longer than
    /// `keep_for` seconds, so every token they signed has expired.
    pub(super) fn retired(&self, now: i64, delay: i64, keep_for: i64) -> Vec<i64> {
        let keys: Vec<&Loaded> = self.iter().collect();
        keys.windows(2)
            .filter(|w| now > w[1].signs_from(delay).saturating_add(keep_for))
            .map(|w| w[0].slot())
            .collect()
    }
}

pub(super) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

pub(super) fn key_file_name(slot: i64) -> String {
    format!("{slot}.pem")
}

/// Temporary files older than this are left-overs of a crash and deleted.
const STALE_TEMP_SECS: i64 = 3600;

/// Reads every `<slot>.pem` of `dir`. A key already in `loaded` with the same PEM is reused. A
/// file that cannot be read or parsed is skipped with a warning (the loaded key of that slot, if
/// any, is kept), so a damaged file never stops the server. Temporary files left by a crash are
/// deleted. Blocking.
pub(super) fn scan(dir: &Path, loaded: Option<&JwtSet>) -> Result<Vec<Loaded>, CryptoError> {
    // Temporary files are judged by the system clock, which wrote their modification time.
    let stale_before = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, secs)
        .saturating_sub(STALE_TEMP_SECS);
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let published = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, secs);
        if name.starts_with('.') && name.ends_with(".tmp") {
            if published < stale_before {
                let _ = std::fs::remove_file(entry.path());
            }
            continue;
        }
        let Some(slot) = name
            .strip_suffix(".pem")
            .and_then(|s| s.parse::<i64>().ok())
        else {
            continue;
        };
        let known = loaded.and_then(|set| set.iter().find(|k| k.slot() == slot));
        let pem = match std::fs::read_to_string(entry.path()) {
            Ok(pem) => Zeroizing::new(pem),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::warn!(slot, error = %e, "JWT key file not readable; skipped");
                found.extend(known.cloned());
                continue;
            }
        };
        if let Some(k) = known.filter(|k| k.key.private_pem() == pem.as_str()) {
            found.push(Loaded {
                key: k.key.clone(),
                published,
            });
            continue;
        }
        match JwtKey::from_pkcs8_pem(&pem, slot) {
            Ok(key) => found.push(Loaded {
                key: Arc::new(key),
                published,
            }),
            Err(e) => {
                tracing::warn!(slot, error = %e, "JWT key file is not a PKCS#8 RSA key; skipped");
                found.extend(known.cloned());
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rotation: u64, delay: u64) -> KeyPolicy {
        KeyPolicy {
            rotation: Duration::from_secs(rotation),
            token_ttl: Duration::from_secs(60),
            publish_delay: Duration::from_secs(delay),
        }
    }

    fn test_key() -> Arc<JwtKey> {
        static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let pem = KEY.get_or_init(|| JwtKey::generate(0).expect("key").private_pem().to_owned());
        Arc::new(JwtKey::from_pkcs8_pem(pem, 0).expect("pem"))
    }

    /// Keys of (slot, published); the key material is irrelevant to the schedule.
    fn set(keys: &[(i64, i64)]) -> JwtSet {
        let base = test_key();
        JwtSet::new(
            keys.iter()
                .map(|&(slot, published)| Loaded {
                    key: Arc::new(JwtKey::from_pkcs8_pem(base.private_pem(), slot).expect("pem")),
                    published,
                })
                .collect(),
        )
        .expect("non-empty")
    }

    #[test]
    fn a_new_key_signs_once_published_for_the_delay() {
        // An old key, and its successor for slot 1000 published at 900 (100 s early).
        let s = set(&[(0, 0), (1000, 900)]);
        assert_eq!(s.signing(999, 60).slot(), 0, "before its slot");
        assert_eq!(s.signing(1000, 60).slot(), 1000, "published 100 s >= 60 s");
        // Published late (at 990): it waits for the delay after its slot.
        let s = set(&[(0, 0), (1000, 990)]);
        assert_eq!(s.signing(1049, 60).slot(), 0);
        assert_eq!(s.signing(1050, 60).slot(), 1000);
        assert_eq!(s.keys().len(), 2, "both verify meanwhile");
    }

    #[test]
    fn a_lone_key_signs_whatever_its_times() {
        assert_eq!(set(&[(5000, 5000)]).signing(5000, 300).slot(), 5000);
        assert_eq!(set(&[(10, 0)]).signing(1_000_000, 300).slot(), 10);
        // Two keys, neither old enough (both just written): the oldest signs.
        assert_eq!(set(&[(100, 100), (101, 101)]).signing(102, 300).slot(), 100);
    }

    #[test]
    fn the_slot_is_due_a_publish_delay_ahead_and_skips_missed_periods() {
        let p = policy(1000, 60);
        let s = set(&[(0, 0)]);
        assert_eq!(s.due_slot(939, &p), None);
        assert_eq!(s.due_slot(940, &p), Some(1000));
        assert_eq!(s.due_slot(1500, &p), Some(1000), "late: still this period");
        assert_eq!(s.due_slot(5500, &p), Some(5000), "after an outage: one key");
        // Nothing while the newest key waits to sign.
        let s = set(&[(0, 0), (1000, 940)]);
        assert_eq!(s.due_slot(990, &p), None);
        assert_eq!(s.due_slot(1939, &p), None);
        assert_eq!(s.due_slot(1940, &p), Some(2000));
    }

    #[test]
    fn a_key_retires_keep_for_after_its_successor_signs() {
        let s = set(&[(0, 0), (1000, 990), (2000, 1940)]);
        // Key 1000 signs from 1050; key 0 retires 600 s later.
        assert!(s.retired(1650, 60, 600).is_empty());
        assert_eq!(s.retired(1651, 60, 600), vec![0]);
        assert_eq!(s.retired(2601, 60, 600), vec![0, 1000]);
    }
}
