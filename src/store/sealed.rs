//! Raw access to the sealed and blind-indexed columns, for data-key rotation
//! ([`crate::rekey`]). The store only pages through bytes and swaps them compare-and-set; it
//! never sees keys or plaintext.

use async_trait::async_trait;

use super::StoreResult;

/// A table whose rows hold values the service sealed (or blind indexes it computed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SealedTable {
    /// `users`: phone, profile fields, E2E public key and the phone's blind index.
    Users,
    /// `secret_keys`: the E2E secret-key backup.
    SecretKeys,
    /// `user_settings`: privacy choices (invisible mode).
    UserSettings,
    /// `sessions`: device name, IP and last activity.
    Sessions,
    /// `push_registrations`: the push subscription.
    PushRegistrations,
    /// `avatars`: the image.
    Avatars,
    /// `chats`: name, permanent invite code and its blind index.
    Chats,
    /// `invites`: temporary invite codes and their blind indexes.
    Invites,
    /// `queue`: queued non-message frames (`event`).
    QueueEvents,
}

/// How a table's rows are keyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyShape {
    /// One integer column.
    Id,
    /// One binary column.
    Bytes,
    /// Two integer columns.
    Pair,
}

impl SealedTable {
    /// Every table, in the order a rotation walks them.
    pub const ALL: [SealedTable; 9] = [
        SealedTable::Users,
        SealedTable::SecretKeys,
        SealedTable::UserSettings,
        SealedTable::Sessions,
        SealedTable::PushRegistrations,
        SealedTable::Avatars,
        SealedTable::Chats,
        SealedTable::Invites,
        SealedTable::QueueEvents,
    ];

    /// The SQL table name (also the name in reports).
    pub fn name(self) -> &'static str {
        match self {
            SealedTable::Users => "users",
            SealedTable::SecretKeys => "secret_keys",
            SealedTable::UserSettings => "user_settings",
            SealedTable::Sessions => "sessions",
            SealedTable::PushRegistrations => "push_registrations",
            SealedTable::Avatars => "avatars",
            SealedTable::Chats => "chats",
            SealedTable::Invites => "invites",
            SealedTable::QueueEvents => "queue",
        }
    }

    /// The key columns, in order.
    pub fn key_columns(self) -> &'static [&'static str] {
        match self {
            SealedTable::Users
            | SealedTable::SecretKeys
            | SealedTable::UserSettings
            | SealedTable::Avatars => &["uid"],
            SealedTable::Sessions | SealedTable::Chats => &["id"],
            SealedTable::PushRegistrations => &["session_id"],
            SealedTable::Invites => &["code_index"],
            SealedTable::QueueEvents => &["session_id", "seq"],
        }
    }

    /// The shape of [`key_columns`](Self::key_columns).
    pub fn key_shape(self) -> KeyShape {
        match self {
            SealedTable::Invites => KeyShape::Bytes,
            SealedTable::QueueEvents => KeyShape::Pair,
            _ => KeyShape::Id,
        }
    }

    /// The sealed and blind-index columns, in the order [`SealedRow::values`] holds them.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            SealedTable::Users => &[
                "phone_index",
                "phone",
                "name",
                "nickname",
                "username",
                "bio",
                "public_key",
            ],
            SealedTable::SecretKeys => &["ciphertext"],
            SealedTable::UserSettings => &["settings"],
            SealedTable::Sessions => &["device_name", "ip", "last_activity"],
            SealedTable::PushRegistrations | SealedTable::Avatars => &["sealed"],
            SealedTable::Chats => &["name", "invite_code", "code_index"],
            SealedTable::Invites => &["code_index", "code"],
            SealedTable::QueueEvents => &["event"],
        }
    }

    /// Columns the seal's AAD row is built from, when the key is not enough: a session's values
    /// are bound to `<uid>:<device_id>`, an invite's code to its chat.
    pub fn context_columns(self) -> &'static [&'static str] {
        match self {
            SealedTable::Sessions => &["uid", "device_id"],
            SealedTable::Invites => &["chat_id"],
            _ => &[],
        }
    }

    /// `SELECT <key>, <columns>, <context> FROM <table> [WHERE (<key>) > (?..)] ORDER BY <key> LIMIT ?`,
    /// valid in SQLite and MySQL alike. Queue rows without an event are skipped.
    // Only the SQL backends call this; a build without them (the fuzz targets) does not.
    #[cfg_attr(not(any(feature = "sqlite", feature = "mysql")), allow(dead_code))]
    pub(crate) fn page_sql(self, after: bool) -> String {
        let keys = self.key_columns().join(", ");
        let cols = self
            .columns()
            .iter()
            .chain(self.context_columns())
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        let mut cond = Vec::new();
        if after {
            let marks = vec!["?"; self.key_columns().len()].join(", ");
            cond.push(format!("({keys}) > ({marks})"));
        }
        if self == SealedTable::QueueEvents {
            cond.push("event IS NOT NULL".to_owned());
        }
        let filter = if cond.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", cond.join(" AND "))
        };
        format!(
            "SELECT {keys}, {cols} FROM {} {filter} ORDER BY {keys} LIMIT ?",
            self.name()
        )
    }

    /// `UPDATE <table> SET <column> = ? WHERE <key> = ?.. AND <column> = ?` (compare-and-set).
    /// `None` for a column this table does not have.
    // Only the SQL backends call this; a build without them (the fuzz targets) does not.
    #[cfg_attr(not(any(feature = "sqlite", feature = "mysql")), allow(dead_code))]
    pub(crate) fn update_sql(self, column: &str) -> Option<String> {
        let column = self.columns().iter().find(|c| **c == column)?;
        let keys = self
            .key_columns()
            .iter()
            .map(|k| format!("{k} = ?"))
            .collect::<Vec<_>>()
            .join(" AND ");
        Some(format!(
            "UPDATE {} SET {column} = ? WHERE {keys} AND {column} = ?",
            self.name()
        ))
    }
}

/// The key of one row of a [`SealedTable`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RowKey {
    /// An integer key (`uid`, `id`, `session_id`).
    Id(i64),
    /// A binary key (an invite's blind index).
    Bytes(Vec<u8>),
    /// `(session_id, seq)` of a queue entry.
    Pair(i64, i64),
}

impl RowKey {
    /// The row part of the seal's AAD for integer keys (`uid`, session or chat id).
    pub fn id(&self) -> Option<i64> {
        match self {
            RowKey::Id(id) => Some(*id),
            _ => None,
        }
    }
}

/// One row: its key and its sealed columns (`None` where the column is NULL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedRow {
    /// The row's key.
    pub key: RowKey,
    /// Values in [`SealedTable::columns`] order.
    pub values: Vec<Option<Vec<u8>>>,
    /// [`SealedTable::context_columns`] as text, in order.
    pub context: Vec<String>,
}

/// Replace `column` of row `key` with `new`, only if it still holds `old`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedUpdate {
    /// The row.
    pub key: RowKey,
    /// One of the table's [`SealedTable::columns`].
    pub column: &'static str,
    /// The value read.
    pub old: Vec<u8>,
    /// The value to write.
    pub new: Vec<u8>,
}

/// Paging through sealed columns and compare-and-set replacement, for data-key rotation while
/// the server keeps serving: an update whose row changed since it was read (a profile edit, a
/// revoked session) is not applied, and the next pass sees the new value.
#[async_trait]
pub trait SealedStore: Send + Sync + std::fmt::Debug {
    /// Up to `limit` rows of `table` whose key is greater than `after`, in key order.
    async fn sealed_rows(
        &self,
        table: SealedTable,
        after: Option<&RowKey>,
        limit: u32,
    ) -> StoreResult<Vec<SealedRow>>;

    /// Applies each update whose column still holds its `old` value; returns how many applied.
    /// Updates apply in order, so one row's blind index may change its key (invites) after
    /// its other columns.
    async fn replace_sealed(
        &self,
        table: SealedTable,
        updates: &[SealedUpdate],
    ) -> StoreResult<u64>;
}

/// Implements [`SealedStore`] for an sqlx-backed store whose tables follow the shared schema
/// (SQLite and MySQL use the same table and column names): `$pool` is the field writes go
/// through, `$be` maps `sqlx::Error`. Each batch of updates is one transaction.
#[allow(unused_macros)]
macro_rules! sql_sealed_store {
    ($store:ty, $pool:ident, $be:path) => {
        #[async_trait::async_trait]
        impl $crate::store::SealedStore for $store {
            async fn sealed_rows(
                &self,
                table: $crate::store::SealedTable,
                after: Option<&$crate::store::RowKey>,
                limit: u32,
            ) -> $crate::store::StoreResult<Vec<$crate::store::SealedRow>> {
                use sqlx::Row;
                use $crate::store::{KeyShape, RowKey, SealedRow};
                let sql = table.page_sql(after.is_some());
                let mut q = sqlx::query(&sql);
                match after {
                    None => {}
                    Some(RowKey::Id(id)) => q = q.bind(*id),
                    Some(RowKey::Bytes(b)) => q = q.bind(b.as_slice()),
                    Some(RowKey::Pair(a, b)) => q = q.bind(*a).bind(*b),
                }
                let rows = q
                    .bind(i64::from(limit))
                    .fetch_all(&self.$pool)
                    .await
                    .map_err($be)?;
                let keys = table.key_columns().len();
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    let key = match table.key_shape() {
                        KeyShape::Id => RowKey::Id(row.try_get::<i64, _>(0).map_err($be)?),
                        KeyShape::Bytes => {
                            RowKey::Bytes(row.try_get::<Vec<u8>, _>(0).map_err($be)?)
                        }
                        KeyShape::Pair => RowKey::Pair(
                            row.try_get::<i64, _>(0).map_err($be)?,
                            row.try_get::<i64, _>(1).map_err($be)?,
                        ),
                    };
                    let cols = table.columns().len();
                    let mut values = Vec::with_capacity(cols);
                    for i in 0..cols {
                        values.push(row.try_get::<Option<Vec<u8>>, _>(keys + i).map_err($be)?);
                    }
                    let mut context = Vec::new();
                    for i in 0..table.context_columns().len() {
                        let at = keys + cols + i;
                        // Integers (uid) or text (device ids: TEXT in SQLite, VARBINARY in MySQL).
                        let text = match row.try_get::<i64, _>(at) {
                            Ok(n) => n.to_string(),
                            Err(_) => match row.try_get::<String, _>(at) {
                                Ok(s) => s,
                                Err(_) => String::from_utf8_lossy(
                                    &row.try_get::<Vec<u8>, _>(at).map_err($be)?,
                                )
                                .into_owned(),
                            },
                        };
                        context.push(text);
                    }
                    out.push(SealedRow {
                        key,
                        values,
                        context,
                    });
                }
                Ok(out)
            }

            async fn replace_sealed(
                &self,
                table: $crate::store::SealedTable,
                updates: &[$crate::store::SealedUpdate],
            ) -> $crate::store::StoreResult<u64> {
                use $crate::store::RowKey;
                let mut tx = self.$pool.begin().await.map_err($be)?;
                let mut applied = 0;
                for u in updates {
                    let Some(sql) = table.update_sql(u.column) else {
                        continue;
                    };
                    let mut q = sqlx::query(&sql).bind(u.new.as_slice());
                    match &u.key {
                        RowKey::Id(id) => q = q.bind(*id),
                        RowKey::Bytes(b) => q = q.bind(b.as_slice()),
                        RowKey::Pair(a, b) => q = q.bind(*a).bind(*b),
                    }
                    let res = q
                        .bind(u.old.as_slice())
                        .execute(&mut *tx)
                        .await
                        .map_err($be)?;
                    applied += res.rows_affected().min(1);
                }
                tx.commit().await.map_err($be)?;
                Ok(applied)
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use sql_sealed_store;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_names_every_column() {
        assert_eq!(
            SealedTable::QueueEvents.page_sql(true),
            "SELECT session_id, seq, event FROM queue  WHERE (session_id, seq) > (?, ?) AND \
             event IS NOT NULL ORDER BY session_id, seq LIMIT ?"
        );
        assert_eq!(
            SealedTable::Users.update_sql("phone_index").as_deref(),
            Some("UPDATE users SET phone_index = ? WHERE uid = ? AND phone_index = ?")
        );
        assert_eq!(SealedTable::Users.update_sql("password_hash"), None);
        for t in SealedTable::ALL {
            assert!(!t.columns().is_empty() && !t.key_columns().is_empty());
        }
    }
}
