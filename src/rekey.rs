//! Data-key rotation: move every sealed value and blind index to the current data-key version.
//!
//! A rotation has two steps. First a new key version is added with an activation time (for the
//! file key provider: [`FileKeyProvider::add_data_key`](crate::FileKeyProvider::add_data_key),
//! `melo rotate-keys --new-key`); every node loads it before it activates, and
//! from then on new values are sealed with it while old ones stay readable. Then [`rotate`]
//! walks every table with sealed columns and re-seals what is still under an older version,
//! and recomputes blind indexes under the current blind key.
//!
//! [`rotate`] is safe while servers serve: each replacement is compare-and-set (a value changed
//! since it was read is left to the writer, who sealed it with the current key anyway), lookups
//! try every blind key meanwhile, and a second run resumes where an interrupted one stopped,
//! because values already at the current version are only read. Values that do not open (a
//! version this key set lacks, or tampering) are counted and left untouched.
//!
//! Ephemeral state (CSRF tokens, link codes, presence, held call frames) is not rewritten: it
//! expires on its own TTL, and old key versions stay readable until then.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::crypto::{KeyProvider, Pii};
use crate::store::{RowKey, SealedRow, SealedTable, SealedUpdate, Store, StoreError};

/// How [`rotate`] runs.
#[derive(Clone, Copy, Debug)]
pub struct RekeyOptions {
    /// Count what would change and write nothing.
    pub dry_run: bool,
    /// Rows per page (and per write transaction).
    pub batch: u32,
}

impl Default for RekeyOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            batch: 200,
        }
    }
}

/// What a rotation found and did in one table.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct TableReport {
    /// SQL table name.
    pub table: &'static str,
    /// Rows read.
    pub rows: u64,
    /// Sealed values read (non-NULL), by the data-key version they were sealed with.
    pub sealed_by_version: BTreeMap<u8, u64>,
    /// Values (sealed or blind index) not at the current version.
    pub stale: u64,
    /// Values replaced (0 in a dry run).
    pub rewritten: u64,
    /// Stale values a concurrent write replaced first (nothing to do: the writer used the
    /// current key).
    pub changed_meanwhile: u64,
    /// Values that did not open with any key of the set (left untouched).
    pub unreadable: u64,
}

/// The result of [`rotate`].
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RekeyReport {
    /// The version everything was moved to.
    pub target_version: u8,
    /// A pending version and its activation time (Unix seconds): run again after it.
    pub pending_version: Option<(u8, i64)>,
    /// Nothing was written.
    pub dry_run: bool,
    /// Per table, in walk order.
    pub tables: Vec<TableReport>,
}

impl RekeyReport {
    /// Stale values over all tables (after a real run: those a concurrent writer replaced, or
    /// that could not be read).
    pub fn stale(&self) -> u64 {
        self.tables.iter().map(|t| t.stale).sum()
    }

    /// Values replaced over all tables.
    pub fn rewritten(&self) -> u64 {
        self.tables.iter().map(|t| t.rewritten).sum()
    }

    /// Unreadable values over all tables.
    pub fn unreadable(&self) -> u64 {
        self.tables.iter().map(|t| t.unreadable).sum()
    }
}

/// Moves every sealed value and blind index of `store` to the current data-key version of
/// `keys` (see the module docs). `progress` sees each table's report when it is done.
pub async fn rotate(
    store: &dyn Store,
    keys: Arc<dyn KeyProvider>,
    options: RekeyOptions,
    mut progress: impl FnMut(&TableReport),
) -> Result<RekeyReport, StoreError> {
    let data = keys.data_keys();
    let target = data.current_version();
    let pii = Pii::new(keys);
    let batch = options.batch.clamp(1, 10_000);
    let mut tables = Vec::new();
    for table in SealedTable::ALL {
        let mut report = TableReport {
            table: table.name(),
            ..TableReport::default()
        };
        let mut after: Option<RowKey> = None;
        loop {
            let rows = with_retry(|| store.sealed_rows(table, after.as_ref(), batch)).await?;
            let Some(last) = rows.last() else { break };
            after = Some(last.key.clone());
            let full = rows.len() as u32 == batch;
            let mut updates = Vec::new();
            for row in &rows {
                report.rows += 1;
                plan_row(&pii, target, table, row, &mut report, &mut updates);
            }
            if !options.dry_run && !updates.is_empty() {
                let applied = with_retry(|| store.replace_sealed(table, &updates)).await?;
                report.rewritten += applied;
                report.changed_meanwhile += updates.len() as u64 - applied;
            }
            if !full {
                break;
            }
        }
        progress(&report);
        tables.push(report);
    }
    Ok(RekeyReport {
        target_version: target,
        pending_version: data.next_version().filter(|(v, _)| *v != target),
        dry_run: options.dry_run,
        tables,
    })
}

/// Retries a store call on transient failures (a lock timeout under live traffic).
async fn with_retry<T, F, Fut>(mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match op().await {
            Err(StoreError::Unavailable(_) | StoreError::Backend(_)) if attempt < 4 => {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            other => return other,
        }
    }
}

/// The seal's (table, column, row) for a sealed column; `None` for blind-index columns.
pub(crate) fn aad(
    table: SealedTable,
    column: &str,
    row: &SealedRow,
) -> Option<(&'static str, String)> {
    let id = || match &row.key {
        RowKey::Id(id) => id.to_string(),
        _ => String::new(),
    };
    // Rows keyed by uid are bound to the uid as `UserId` prints it (8 digits, a leading zero
    // kept), not as the integer column holds it.
    let uid = || match &row.key {
        RowKey::Id(id) => uid_text(*id),
        _ => String::new(),
    };
    Some(match (table, column) {
        (_, "phone_index" | "code_index") => return None,
        (SealedTable::Users, _) => ("users", uid()),
        (SealedTable::SecretKeys, _) => ("secret_keys", uid()),
        (SealedTable::UserSettings, _) => ("user_settings", uid()),
        (SealedTable::Sessions, _) => ("sessions", session_binding(&row.context)),
        (SealedTable::PushRegistrations, _) => ("push", id()),
        (SealedTable::Avatars, _) => ("avatars", uid()),
        (SealedTable::Chats, _) => ("chats", id()),
        (SealedTable::Invites, _) => ("invites", row.context.join(":")),
        (SealedTable::QueueEvents, _) => match &row.key {
            RowKey::Pair(session, _) => ("queue", session.to_string()),
            _ => ("queue", String::new()),
        },
    })
}

/// A uid from an integer column as [`UserId`](crate::model::UserId) prints it: 8 digits.
pub(crate) fn uid_text(uid: i64) -> String {
    format!("{uid:08}")
}

/// A session's binding, `uid:device`, from its context columns: the uid (an integer column,
/// read as its decimal digits) printed as [`UserId`](crate::model::UserId) does.
fn session_binding(context: &[String]) -> String {
    let mut parts = context.to_vec();
    if let Some(first) = parts.first_mut() {
        if let Ok(n) = first.parse::<i64>() {
            *first = uid_text(n);
        }
    }
    parts.join(":")
}

/// Tables whose values older releases sealed for no row (`""`): opened with a fallback, and
/// re-sealed bound to their row by a rotation.
fn legacy_unbound(table: SealedTable) -> bool {
    matches!(
        table,
        SealedTable::Chats | SealedTable::Invites | SealedTable::QueueEvents
    )
}

/// The column name inside the seal's AAD (differs from the SQL column for a few tables).
pub(crate) fn aad_column(table: SealedTable, column: &'static str) -> &'static str {
    match table {
        SealedTable::PushRegistrations => "subscription",
        SealedTable::Avatars => "image",
        _ => column,
    }
}

/// A blind-index column: its domain and the sealed column holding its plaintext.
pub(crate) fn blind_source(
    table: SealedTable,
    column: &str,
) -> Option<(&'static str, &'static str)> {
    match (table, column) {
        (SealedTable::Users, "phone_index") => Some(("phone", "phone")),
        (SealedTable::Chats, "code_index") => Some(("invite", "invite_code")),
        (SealedTable::Invites, "code_index") => Some(("invite", "code")),
        _ => None,
    }
}

/// Adds the updates `row` needs: sealed columns first, blind indexes last (an invite's blind
/// index is its key, so it must change after the other columns).
fn plan_row(
    pii: &Pii,
    target: u8,
    table: SealedTable,
    row: &SealedRow,
    report: &mut TableReport,
    updates: &mut Vec<SealedUpdate>,
) {
    let columns = table.columns();
    let mut blind = Vec::new();
    for (column, value) in columns.iter().zip(&row.values) {
        let Some(value) = value else { continue };
        let Some((seal_table, seal_row)) = aad(table, column, row) else {
            blind.push((*column, value));
            continue;
        };
        let Some(version) = Pii::key_version(value) else {
            report.unreadable += 1;
            continue;
        };
        *report.sealed_by_version.entry(version).or_default() += 1;
        let seal_column = aad_column(table, column);
        // Tables whose values were once sealed for no row: a value that opens only that way is
        // re-sealed bound to its row whatever its key version.
        let rebind =
            legacy_unbound(table) && pii.open(seal_table, seal_column, &seal_row, value).is_err();
        if version == target && !rebind {
            continue;
        }
        match pii
            .open_bound(seal_table, seal_column, &seal_row, value)
            .and_then(|plain| pii.seal(seal_table, seal_column, &seal_row, &plain))
        {
            Ok(new) => {
                report.stale += 1;
                updates.push(SealedUpdate {
                    key: row.key.clone(),
                    column,
                    old: value.clone(),
                    new,
                });
            }
            Err(_) => report.unreadable += 1,
        }
    }
    for (column, value) in blind {
        let Some((domain, source)) = blind_source(table, column) else {
            continue;
        };
        let Some(sealed) = columns
            .iter()
            .position(|c| *c == source)
            .and_then(|i| row.values.get(i))
            .and_then(Option::as_ref)
        else {
            continue;
        };
        let Some((seal_table, seal_row)) = aad(table, source, row) else {
            continue;
        };
        let Ok(plain) = pii.open_bound(seal_table, source, &seal_row, sealed) else {
            report.unreadable += 1;
            continue;
        };
        let current = pii.blind_index(domain, &plain);
        if current != *value {
            report.stale += 1;
            updates.push(SealedUpdate {
                key: row.key.clone(),
                column,
                old: value.clone(),
                new: current,
            });
        }
    }
}
