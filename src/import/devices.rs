//! Device tokens: the original kept them only in Redis, `device:{uid}:{device_id}` → a 43-character
//! token with a 30-day TTL. In Melo a device token belongs to the session of (user, device) and
//! is stored as its SHA-256 only, so each one becomes such a session, with the token's
//! remaining lifetime: the installed app's next automatic login (`/login` with
//! `device_token`) works with the token and device id it already has.

use std::time::Duration;

use redis::aio::MultiplexedConnection;

use super::source::UidColumn;
use super::users::melo_uid;
use super::{ImportError, Run};
use crate::model::{DeviceId, DeviceType, SessionUpsert, Timestamp};
use crate::service::auth::token_hash;

/// Keys asked of one `SCAN` step.
const SCAN_COUNT: usize = 500;
/// Layers of encryption peeled off a value (`migrate_encrypt_data.py` run twice wraps twice).
const MAX_LAYERS: usize = 3;
/// What an imported session shows as its device name until the device logs in again.
const DEVICE_NAME: &str = "imported";

/// The original's Redis, read only.
pub struct OriginalRedis {
    conn: MultiplexedConnection,
}

impl std::fmt::Debug for OriginalRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OriginalRedis")
    }
}

fn redis_err(e: redis::RedisError) -> ImportError {
    // The error's text names the command or the address, never a value.
    ImportError::Redis(e.to_string())
}

impl OriginalRedis {
    /// Connects to the original's `REDIS_URL` (including its database number).
    pub async fn connect(url: &str) -> Result<Self, ImportError> {
        let client = redis::Client::open(url.trim()).map_err(|_| {
            ImportError::Usage(
                "the original's Redis URL does not parse (redis://host:port/db)".into(),
            )
        })?;
        let conn = tokio::time::timeout(
            Duration::from_secs(10),
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| ImportError::Redis("no answer within 10 s".into()))?
        .map_err(redis_err)?;
        Ok(Self { conn })
    }
}

/// A plausible device token: 43 characters of URL-safe base64 (32 random bytes, no padding).
fn plausible(token: &[u8]) -> bool {
    token.len() == 43
        && token
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

/// The token in a stored value: as it is, or under up to [`MAX_LAYERS`] layers of the
/// original key's AES-GCM or Fernet.
fn token_of(run: &Run<'_>, value: &[u8]) -> Option<String> {
    let mut v = value.to_vec();
    for _ in 0..=MAX_LAYERS {
        let trimmed = std::str::from_utf8(&v).ok()?.trim().to_owned();
        if plausible(trimmed.as_bytes()) {
            return Some(trimmed);
        }
        let next = if trimmed.starts_with("gAAAAA") {
            run.key.fernet_decrypt(&trimmed)
        } else {
            run.key.decrypt(&trimmed)
        }?;
        v = next.to_vec();
    }
    None
}

/// The uid in a `device:{uid}:…` key. The original wrote it as Python printed the column's
/// value: an integer column's uid lost its leading zeros there too (padded back); a text
/// column's is as stored (8 digits, never padded).
fn key_uid(raw: &str, column: UidColumn) -> Result<crate::model::UserId, &'static str> {
    melo_uid(raw, column)
}

/// Every `device:*` key, found with `SCAN` (never `KEYS`), read with `GET` and `PTTL`.
pub(crate) async fn import(run: &mut Run<'_>, redis: &OriginalRedis) -> Result<(), ImportError> {
    let mut conn = redis.conn.clone();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("device:*")
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        if !keys.is_empty() {
            let mut pipe = redis::pipe();
            // A key of another type fails its GET alone, not the whole pipeline.
            pipe.ignore_errors();
            for k in &keys {
                pipe.cmd("GET").arg(k).cmd("PTTL").arg(k);
            }
            let flat: Vec<redis::Value> = pipe.query_async(&mut conn).await.map_err(redis_err)?;
            let mut answers = Vec::with_capacity(keys.len());
            let mut it = flat.into_iter();
            while let (Some(value), Some(ttl)) = (it.next(), it.next()) {
                // A key of another type than string, or gone: no value.
                let value = redis::from_redis_value::<Option<Vec<u8>>>(value)
                    .ok()
                    .flatten();
                let ttl = redis::from_redis_value::<i64>(ttl).unwrap_or(-2);
                answers.push((value, ttl));
            }
            for (key, (value, ttl)) in keys.iter().zip(answers) {
                one(run, key, value, ttl).await?;
            }
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    Ok(())
}

async fn one(
    run: &mut Run<'_>,
    key: &[u8],
    value: Option<Vec<u8>>,
    pttl: i64,
) -> Result<(), ImportError> {
    let name = String::from_utf8_lossy(key).into_owned();
    let mut parts = name.splitn(3, ':');
    let (Some("device"), Some(uid), Some(device)) = (parts.next(), parts.next(), parts.next())
    else {
        // `device:…` with another shape is not a device token key.
        return Ok(());
    };
    run.report.counts("device_tokens").read += 1;
    let skip = |run: &mut Run<'_>, reason: &'static str| {
        run.report.skip("device_tokens", "redis", &name, reason)
    };
    let uid = match key_uid(uid, run.uid_column) {
        Ok(u) => u,
        Err(_) => {
            skip(run, "uid_invalid");
            return Ok(());
        }
    };
    if !run.imported_uids.contains(&uid) {
        skip(run, "user_not_imported");
        return Ok(());
    }
    let Some(device) = DeviceId::parse(device) else {
        skip(run, "device_id_invalid");
        return Ok(());
    };
    let Some(value) = value else {
        // Expired between SCAN and GET, or not a string.
        skip(
            run,
            if pttl == -2 {
                "expired"
            } else {
                "value_not_a_string"
            },
        );
        return Ok(());
    };
    let Some(token) = token_of(run, &value) else {
        skip(run, "token_unusable");
        return Ok(());
    };
    let now = Timestamp::now();
    // Never longer than a token Melo issues now (DEVICE_TOKEN_TTL).
    let ttl_ms =
        i64::try_from(run.opts.device_token_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let remaining_ms = match pttl {
        // No expiry (a key that lost its TTL): Melo's full lifetime.
        -1 => ttl_ms,
        ms if ms > 0 => ms.min(ttl_ms),
        _ => {
            skip(run, "expired");
            return Ok(());
        }
    };
    if run.done.token_users.contains(&uid) {
        // An earlier run imported this user's tokens: a session revoked since stays revoked.
        run.report.counts("device_tokens").already += 1;
        return Ok(());
    }
    if run.store.active_session(uid, &device).await?.is_some() {
        // An earlier import's session, or the device logged in to Melo already: its token
        // there is newer.
        run.report.counts("device_tokens").already += 1;
        return Ok(());
    }
    if !run.opts.dry_run {
        let row = format!("{uid}:{device}");
        let seal = |col: &str, v: &str| run.pii.seal_str("sessions", col, &row, v);
        let upsert = SessionUpsert {
            user: uid,
            device_id: device,
            device_type: DeviceType::Web,
            device_name: seal("device_name", DEVICE_NAME)?,
            ip: seal("ip", "")?,
            last_activity: seal("last_activity", &now.millis().to_string())?,
            device_token_hash: token_hash(&token),
            device_token_expires: Timestamp::from_millis(now.millis().saturating_add(remaining_ms)),
            now,
        };
        run.store.upsert_session(&upsert).await?;
    }
    run.report.counts("device_tokens").imported += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{key_uid, plausible, UidColumn};

    #[test]
    fn key_uids_are_padded_only_for_an_integer_column() {
        assert_eq!(
            key_uid("1234567", UidColumn::Integer).map(|u| u.to_string()),
            Ok("01234567".to_owned())
        );
        assert!(key_uid("1234567", UidColumn::Text).is_err());
        assert_eq!(
            key_uid("01234567", UidColumn::Text).map(|u| u.to_string()),
            Ok("01234567".to_owned())
        );
    }

    #[test]
    fn tokens_are_43_url_safe_characters() {
        assert!(plausible(b"pQ8abcdefghijklmnopqrstuvwxyz0123456789-_AB"));
        assert!(!plausible(b"pQ8abcdefghijklmnopqrstuvwxyz0123456789-_A"));
        assert!(!plausible(b"pQ8abcdefghijklmnopqrstuvwxyz0123456789+/AB"));
        assert!(!plausible(b"gAAAAABl"));
    }
}
