//! Moving a deployment of the original Python server to Melo (`melo import-original`).
//!
//! Reads the original's MySQL database and Redis, with its field-encryption key, and writes
//! Melo's store under Melo's keys:
//!
//! - users with their uids, bcrypt password hashes (verified as they are), phones (decrypted,
//!   normalized, sealed and blind-indexed as `/register` does), names, nicknames, usernames,
//!   bios, avatars, E2E public keys and secret-key backups;
//! - contacts (pending and accepted; duplicate and two-way edges merged, accepted wins);
//! - chats and channels with their original ids, owners, members and roles (duplicates merged,
//!   highest role kept), public codes and slow mode;
//! - read markers (the last message each user read in each chat), with the original's message
//!   id and time 0, so that any read in Melo moves them;
//! - device tokens, as sessions of (user, device) holding the token's hash and remaining
//!   lifetime, so installed apps log in automatically.
//!
//! Not imported: message history, offline queues, sessions and access tokens, push
//! subscriptions, scheduled messages, short-lived state ([`report::NOT_IMPORTED`] says why).
//!
//! Runs are idempotent: users and chats are created through [`ImportStore`](crate::store::ImportStore),
//! which records what an import created; a second run skips those. Contacts, memberships, read
//! markers and device tokens are imported once: a complete run marks its users and chats done
//! ([`ImportDone`]), and later runs import those rows only for users or chats not marked, so
//! what users undid in Melo (a contact removed, a chat left, a session revoked) stays undone. A
//! run that stopped part-way marks nothing; the next one merges what it wrote. A uid, phone or chat id that Melo uses for
//! something else is a reported conflict, never overwritten. A dry run reads everything and
//! writes nothing.
//!
//! Source tables are read in pages (users, chats) or as one ordered stream (edges and members,
//! whose duplicates must be seen together); memory grows with the number of users and chats
//! (a map of ids) only.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::crypto::{CryptoError, KeyProvider, Pii};
use crate::model::{Timestamp, UserId};
use crate::store::{ImportDone, Store, StoreError};

mod devices;
mod graph;
mod markers;
pub mod original_crypto;
pub mod report;
mod source;
mod users;

pub use devices::OriginalRedis;
pub use original_crypto::{BadOriginalKey, OriginalKey};
pub use report::{Action, KindCounts, Problem, Report};
pub use source::{OriginalDb, UidColumn};

/// Why an import stopped. Messages are one line and name no secret and no personal value.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A setting is wrong (a URL that does not parse, a bad key).
    #[error("{0}")]
    Usage(String),
    /// The original's database failed or could not be reached.
    #[error("original database: {0}")]
    Source(String),
    /// The original's database is not shaped like the original server's.
    #[error("original database: {0}")]
    Schema(String),
    /// The original's Redis failed or could not be reached.
    #[error("original Redis: {0}")]
    Redis(String),
    /// Melo's store failed.
    #[error("Melo's store: {0}")]
    Store(#[from] StoreError),
    /// Sealing failed (Melo's keys).
    #[error("sealing: {0}")]
    Crypto(#[from] CryptoError),
}

/// How an import runs.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Read everything, write nothing.
    pub dry_run: bool,
    /// Users read per page.
    pub user_batch: u32,
    /// Chats read per page.
    pub chat_batch: u32,
    /// Largest avatar kept, bytes (Melo's `AVATAR_MAX_BYTES`).
    pub avatar_max_bytes: usize,
    /// Longest lifetime of an imported device token, and that of one whose Redis key has no
    /// expiry, seconds (Melo's `DEVICE_TOKEN_TTL`).
    pub device_token_ttl_secs: u64,
}

impl Default for ImportOptions {
    fn default() -> Self {
        let config = crate::Config::default();
        Self {
            dry_run: false,
            user_batch: 200,
            chat_batch: 1000,
            avatar_max_bytes: config.push.avatar_max_bytes,
            device_token_ttl_secs: config.auth.device_token_ttl,
        }
    }
}

/// The state of one run.
pub(crate) struct Run<'a> {
    pub(crate) store: &'a dyn Store,
    pub(crate) pii: Pii,
    pub(crate) key: &'a OriginalKey,
    pub(crate) db: &'a OriginalDb,
    pub(crate) opts: &'a ImportOptions,
    pub(crate) uid_column: UidColumn,
    pub(crate) report: Report,
    /// Original user id → Melo uid, of every user that is in Melo (or would be, in a dry run).
    pub(crate) users: HashMap<i64, UserId>,
    /// The same uids, for the Redis keys that name users by uid.
    pub(crate) imported_uids: HashSet<UserId>,
    /// Every original user id read (to tell a skipped user from a dangling reference).
    pub(crate) seen_users: HashSet<i64>,
    /// Every Melo uid produced (duplicates in the source).
    pub(crate) seen_uids: HashSet<UserId>,
    /// The first 16 bytes of every phone blind index produced (duplicates in the source).
    pub(crate) seen_phones: HashSet<[u8; 16]>,
    /// Original chat id → owner, of every chat that is in Melo (or would be).
    pub(crate) chats: HashMap<i64, UserId>,
    /// Every original chat id read.
    pub(crate) seen_chats: HashSet<i64>,
    /// What earlier complete runs imported of the graph and the device tokens (imported once).
    pub(crate) done: ImportDone,
}

impl Run<'_> {
    /// Whether an earlier complete run imported the graph rows between `user` and `chat`
    /// (memberships, read markers): both were marked done.
    pub(crate) fn member_done(&self, user: UserId, chat: i64) -> bool {
        self.done.graph_users.contains(&user) && self.done.member_chats.contains(&chat)
    }
}

/// A time in seconds since the epoch from the source, or `default`.
pub(crate) fn secs_or(secs: Option<i64>, default: Timestamp) -> Timestamp {
    match secs {
        Some(s) if s > 0 => Timestamp::from_millis(s.saturating_mul(1000)),
        _ => default,
    }
}

/// The importer: Melo's store and keys (the servers' own), and how to run.
#[derive(Debug)]
pub struct Importer {
    store: Arc<dyn Store>,
    keys: Arc<dyn KeyProvider>,
    options: ImportOptions,
}

impl Importer {
    /// An importer writing `store` under `keys` (the keys the servers use: sealed values are
    /// bound to them).
    pub fn new(store: Arc<dyn Store>, keys: Arc<dyn KeyProvider>, options: ImportOptions) -> Self {
        Self {
            store,
            keys,
            options,
        }
    }

    /// Imports (or, in a dry run, reads and counts) everything from the original's database,
    /// and its device tokens from `redis` when given.
    pub async fn run(
        &self,
        key: &OriginalKey,
        db: &OriginalDb,
        redis: Option<&OriginalRedis>,
    ) -> Result<Report, ImportError> {
        let mut run = Run {
            store: self.store.as_ref(),
            pii: Pii::new(self.keys.clone()),
            key,
            db,
            opts: &self.options,
            uid_column: db.uid_column(),
            report: Report::new(self.options.dry_run, db.uid_column()),
            users: HashMap::new(),
            imported_uids: HashSet::new(),
            seen_users: HashSet::new(),
            seen_uids: HashSet::new(),
            seen_phones: HashSet::new(),
            chats: HashMap::new(),
            seen_chats: HashSet::new(),
            done: self.store.import_done().await?,
        };
        users::import(&mut run).await?;
        run.imported_uids = run.users.values().copied().collect();
        run.seen_uids = HashSet::new();
        run.seen_phones = HashSet::new();
        graph::contacts(&mut run).await?;
        graph::chats(&mut run).await?;
        if let Some(max) = run.seen_chats.iter().max().copied() {
            if !self.options.dry_run {
                run.store.reserve_chat_ids(max).await?;
            }
        }
        graph::members(&mut run).await?;
        markers::import(&mut run).await?;
        match redis {
            Some(redis) => devices::import(&mut run, redis).await?,
            None => run.report.notes.push(
                "no Redis of the original given: device tokens not imported (apps log in with their password)"
                    .into(),
            ),
        }
        if !self.options.dry_run {
            // Only after every step: a run that stopped part-way marks nothing, and the next
            // run imports these users' and chats' graph rows again (adding what is missing).
            let users: Vec<UserId> = run.users.values().copied().collect();
            let chats: Vec<i64> = run.chats.keys().copied().collect();
            run.store
                .mark_import_done(&users, redis.is_some(), &chats)
                .await?;
        }
        tracing::info!(
            target: "melo::audit",
            event = "import_original",
            dry_run = self.options.dry_run,
            users = run.report.kind("users").imported,
            chats = run.report.kind("chats").imported,
            "import from the original server"
        );
        Ok(run.report)
    }
}

/// The keys a dry run seals with, read without writing anything: Melo's data keys derived from
/// `secret` (Melo's own `ENCRYPTION_KEY_STR`), else those of `<keys_dir>/data-keys.json`, else
/// fresh ones (a data directory without keys: nothing to compare blind indexes with). The JWT
/// key is a throwaway (a dry run signs nothing).
pub async fn dry_run_keys(
    keys_dir: &std::path::Path,
    secret: Option<&str>,
) -> Result<Arc<dyn KeyProvider>, ImportError> {
    use crate::crypto::{DataKeys, JwtKey, StaticKeys};
    let data = match secret {
        Some(s) => DataKeys::derive_from_secret(s),
        None => crate::crypto::read_data_keys(keys_dir)
            .await?
            .unwrap_or_else(DataKeys::generate),
    };
    let jwt = JwtKey::generate(Timestamp::now().secs())?;
    Ok(Arc::new(StaticKeys::new(jwt, data)))
}
