//! The key check: sampled sealed values must open with the keys, and blind indexes must match
//! the blind-index keys; and the keys' fingerprints.

use std::collections::BTreeMap;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::files::hex;
use super::manifest::Fingerprint;
use super::BackupError;
use crate::crypto::{DataKeys, KeyProvider, Pii};
use crate::rekey::{aad, aad_column, blind_source};
use crate::store::{SealedRow, SealedTable};

/// Label of the key fingerprints (versioned: a different label would name different bytes).
const FINGERPRINT_LABEL: &[u8] = b"melo/backup/key-fingerprint/v1";

/// Rows sampled at each end (oldest and newest by key) of every table with sealed columns.
pub(crate) const SAMPLE_ROWS: u32 = 32;

/// Rows sampled from one table, oldest and newest (possibly overlapping).
pub(crate) type Samples = Vec<(SealedTable, Vec<SealedRow>)>;

/// What a key check opened.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyCheckReport {
    /// Rows sampled, by table (the oldest and newest rows of each table with sealed columns).
    pub rows: BTreeMap<String, u64>,
    /// Sealed values that opened, by the data-key version they were sealed with.
    pub values_opened: BTreeMap<u8, u64>,
    /// Blind indexes recomputed from their opened values and found equal.
    pub blind_indexes_matched: u64,
}

impl KeyCheckReport {
    /// Sealed values opened, over every version.
    pub fn opened(&self) -> u64 {
        self.values_opened.values().sum()
    }
}

/// The fingerprints of every data-key version.
pub(crate) fn fingerprints(data: &DataKeys) -> BTreeMap<u8, Fingerprint> {
    data.versions()
        .map(|(v, key, blind)| {
            (
                v,
                Fingerprint {
                    data: fingerprint(key),
                    blind: fingerprint(blind),
                },
            )
        })
        .collect()
}

fn fingerprint(key: &[u8; 32]) -> String {
    // HMAC accepts keys of any length; a 32-byte key never fails.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(FINGERPRINT_LABEL);
    hex(&mac.finalize().into_bytes()[..16])
}

/// Compares the fingerprints of `data` with those of a manifest.
pub(crate) fn check_fingerprints(
    data: &DataKeys,
    recorded: &BTreeMap<u8, Fingerprint>,
) -> Result<(), BackupError> {
    let actual = fingerprints(data);
    for (v, f) in recorded {
        match actual.get(v) {
            None => {
                return Err(BackupError::KeyCheck(format!(
                    "the data keys lack version {v}, which the manifest records"
                )))
            }
            Some(a) if a != f => {
                return Err(BackupError::KeyCheck(format!(
                    "data-key version {v} differs from the key the manifest's fingerprint names \
                     (keys from another server?)"
                )))
            }
            Some(_) => {}
        }
    }
    if let Some(v) = actual.keys().find(|v| !recorded.contains_key(v)) {
        return Err(BackupError::KeyCheck(format!(
            "the data keys hold version {v}, which the manifest does not record"
        )));
    }
    Ok(())
}

/// Opens every sealed value of `samples` with `keys` and recomputes every blind index. The
/// first value that fails is the error; it names the table, the column and the key version.
pub(crate) fn check(
    keys: Arc<dyn KeyProvider>,
    samples: &Samples,
) -> Result<KeyCheckReport, BackupError> {
    let data = keys.data_keys();
    let pii = Pii::new(keys);
    let mut report = KeyCheckReport::default();
    for (table, rows) in samples {
        *report.rows.entry(table.name().to_owned()).or_default() += rows.len() as u64;
        for row in rows {
            check_row(&pii, &data, *table, row, &mut report)?;
        }
    }
    Ok(report)
}

fn check_row(
    pii: &Pii,
    data: &DataKeys,
    table: SealedTable,
    row: &SealedRow,
    report: &mut KeyCheckReport,
) -> Result<(), BackupError> {
    let name = table.name();
    let columns = table.columns();
    for (column, value) in columns.iter().zip(&row.values) {
        let Some(value) = value else { continue };
        let Some((seal_table, seal_row)) = aad(table, column, row) else {
            continue;
        };
        let Some(version) = Pii::key_version(value) else {
            return Err(BackupError::KeyCheck(format!(
                "a value of {name}.{column} is not a sealed value"
            )));
        };
        if data.key(version).is_none() {
            return Err(BackupError::KeyCheck(format!(
                "{name}.{column} holds values sealed with data-key version {version}, which the \
                 keys lack"
            )));
        }
        pii.open_bound(seal_table, aad_column(table, column), &seal_row, value)
            .map_err(|_| {
                BackupError::KeyCheck(format!(
                    "a value of {name}.{column} (data-key version {version}) does not open with \
                     the data keys (keys from another server?)"
                ))
            })?;
        *report.values_opened.entry(version).or_default() += 1;
    }
    for (column, value) in columns.iter().zip(&row.values) {
        let (Some(value), Some((domain, source))) = (value, blind_source(table, column)) else {
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
        // Opened above already; a failure here would have been reported there.
        let Ok(plain) = pii.open_bound(seal_table, source, &seal_row, sealed) else {
            continue;
        };
        if !pii.blind_indexes(domain, &plain).contains(value) {
            return Err(BackupError::KeyCheck(format!(
                "a blind index of {name}.{column} does not match the blind-index keys (lookups \
                 such as a login by phone would fail)"
            )));
        }
        report.blind_indexes_matched += 1;
    }
    Ok(())
}

/// `SELECT <key>, <columns>, <context> FROM <table> ORDER BY <key> [DESC] LIMIT n` over the
/// columns `present` says the table has (a database of an older schema may lack some); `None`
/// when the table or a key or context column is missing. The selected sealed columns are
/// returned with the statement, in order.
pub(crate) fn sample_sql(
    table: SealedTable,
    newest: bool,
    present: impl Fn(&str) -> bool,
) -> Option<(String, Vec<usize>)> {
    if !table
        .key_columns()
        .iter()
        .chain(table.context_columns())
        .all(|c| present(c))
    {
        return None;
    }
    let chosen: Vec<usize> = (0..table.columns().len())
        .filter(|&i| present(table.columns()[i]))
        .collect();
    let mut select: Vec<&str> = table.key_columns().to_vec();
    select.extend(chosen.iter().map(|&i| table.columns()[i]));
    select.extend(table.context_columns());
    let order = table
        .key_columns()
        .iter()
        .map(|k| {
            if newest {
                format!("{k} DESC")
            } else {
                (*k).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let filter = if table == SealedTable::QueueEvents {
        " WHERE event IS NOT NULL"
    } else {
        ""
    };
    Some((
        format!(
            "SELECT {} FROM {}{filter} ORDER BY {order} LIMIT {SAMPLE_ROWS}",
            select.join(", "),
            table.name()
        ),
        chosen,
    ))
}

/// Merges the oldest and newest rows of a table (a small table's rows appear in both).
pub(crate) fn merge(oldest: Vec<SealedRow>, newest: Vec<SealedRow>) -> Vec<SealedRow> {
    let mut by_key = BTreeMap::new();
    for row in oldest.into_iter().chain(newest) {
        by_key.entry(row.key.clone()).or_insert(row);
    }
    by_key.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::StaticKeys;
    use crate::store::RowKey;

    fn keys() -> Arc<StaticKeys> {
        static KEYS: std::sync::OnceLock<Arc<StaticKeys>> = std::sync::OnceLock::new();
        KEYS.get_or_init(|| Arc::new(StaticKeys::generate().expect("keys")))
            .clone()
    }

    fn user_row(keys: Arc<StaticKeys>, uid: i64) -> SealedRow {
        let pii = Pii::new(keys);
        let row = format!("{uid:08}");
        let seal = |c: &str, v: &str| Some(pii.seal_str("users", c, &row, v).expect("seal"));
        SealedRow {
            key: RowKey::Id(uid),
            values: vec![
                Some(pii.blind_index("phone", b"+15550001")),
                seal("phone", "+15550001"),
                seal("name", "Ann"),
                seal("nickname", "ann"),
                None,
                None,
                None,
            ],
            context: vec![],
        }
    }

    #[test]
    fn the_right_keys_open_and_other_keys_are_named() {
        let k = keys();
        let samples = vec![(SealedTable::Users, vec![user_row(k.clone(), 7)])];
        let report = check(k.clone(), &samples).expect("opens");
        assert_eq!(report.opened(), 3);
        assert_eq!(report.blind_indexes_matched, 1);
        assert_eq!(report.rows["users"], 1);

        let other = Arc::new(k.with_data_keys(DataKeys::generate()));
        let err = check(other, &samples).expect_err("other keys");
        let msg = err.to_string();
        assert!(msg.starts_with("key check failed"), "{msg}");
        assert!(msg.contains("users.phone"), "{msg}");

        // The same AES key but another blind key: values open, the index does not match.
        let data = k.data_keys();
        let same_aes = DataKeys::new(
            1,
            BTreeMap::from([(1, *data.key(1).expect("v1"))]),
            [9u8; 32],
        )
        .expect("keys");
        let err = check(Arc::new(k.with_data_keys(same_aes)), &samples).expect_err("blind");
        assert!(err.to_string().contains("users.phone_index"), "{err}");
    }

    #[test]
    fn a_moved_value_does_not_open() {
        let k = keys();
        let mut row = user_row(k.clone(), 7);
        row.key = RowKey::Id(8);
        let err = check(k, &vec![(SealedTable::Users, vec![row])]).expect_err("moved");
        assert!(matches!(err, BackupError::KeyCheck(_)), "{err}");
    }

    #[test]
    fn fingerprints_name_keys() {
        let a = DataKeys::generate();
        let b = DataKeys::generate();
        let fa = fingerprints(&a);
        assert_eq!(fa.len(), 1);
        assert_eq!(fa[&1].data.len(), 32);
        assert_ne!(fa[&1].data, fa[&1].blind);
        check_fingerprints(&a, &fa).expect("same keys");
        let err = check_fingerprints(&b, &fa).expect_err("other keys");
        assert!(err.to_string().contains("another server"), "{err}");
    }

    #[test]
    fn sample_sql_skips_missing_columns() {
        let (sql, chosen) =
            sample_sql(SealedTable::Sessions, true, |c| c != "last_activity").expect("sql");
        assert_eq!(
            sql,
            "SELECT id, device_name, ip, uid, device_id FROM sessions ORDER BY id DESC LIMIT 32"
        );
        assert_eq!(chosen, vec![0, 1]);
        assert!(sample_sql(SealedTable::Sessions, false, |c| c != "uid").is_none());
        let (sql, _) = sample_sql(SealedTable::QueueEvents, false, |_| true).expect("sql");
        assert!(sql.contains("WHERE event IS NOT NULL ORDER BY session_id, seq LIMIT"));
    }
}
