//! `/readyz` answers: at most one check of the store and the ephemeral backend per second,
//! each bounded in time, however many probes arrive.

use std::time::{Duration, Instant};

use crate::service::Core;

/// How long one answer is reused.
const FRESH_FOR: Duration = Duration::from_secs(1);
/// Bound of each backend's ping; a slower backend counts as not ready.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// The last readiness answer: (when, database ok, ephemeral ok).
#[derive(Debug, Default)]
pub(crate) struct Readiness {
    last: tokio::sync::Mutex<Option<(Instant, bool, bool)>>,
}

impl Readiness {
    /// (database ok, ephemeral ok), from a check at most a second old. Concurrent callers
    /// wait for the one check in flight instead of starting their own.
    pub(crate) async fn check(&self, core: &Core) -> (bool, bool) {
        let mut last = self.last.lock().await;
        if let Some((at, db, eph)) = *last {
            if at.elapsed() < FRESH_FOR {
                return (db, eph);
            }
        }
        let (db, eph) = tokio::join!(
            tokio::time::timeout(PING_TIMEOUT, core.store.ping()),
            tokio::time::timeout(PING_TIMEOUT, core.ephemeral.ping()),
        );
        let (db, eph) = (matches!(db, Ok(Ok(()))), matches!(eph, Ok(Ok(()))));
        *last = Some((Instant::now(), db, eph));
        (db, eph)
    }
}
