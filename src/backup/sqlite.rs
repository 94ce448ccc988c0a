//! The SQLite part: a consistent copy of a live database with `VACUUM INTO`, and reading a copy
//! (its migration level, the rows the key check samples) without changing it.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::files;
use super::keycheck::{merge, sample_sql, Samples};
use super::BackupError;
use crate::store::{KeyShape, RowKey, SealedRow, SealedTable};

/// How long the copy waits for a lock (a checkpoint restarting the WAL holds one briefly).
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

fn db_err(what: &str) -> impl Fn(rusqlite::Error) -> BackupError + '_ {
    move |e| BackupError::Database(format!("{what}: {e}"))
}

/// Writes a consistent copy of the database `source` to the new file `dest` (0600).
///
/// The source is opened read-only by a connection of this process (the server may be running
/// in another one and keeps writing: WAL lets it). `VACUUM INTO` reads the whole database in one
/// read transaction, so the copy is the database as of one moment: every transaction committed
/// before it began, none after. The copy is compact, in rollback-journal mode, and synced.
pub(crate) fn snapshot(source: &Path, dest: &Path) -> Result<(), BackupError> {
    if !source.is_file() {
        return Err(BackupError::Database(format!(
            "no SQLite database at {}",
            source.display()
        )));
    }
    let dest_str = dest
        .to_str()
        .ok_or_else(|| BackupError::Unsupported("the backup path is not UTF-8".into()))?;
    let conn = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db_err("opening the database"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(db_err("opening the database"))?;
    // An empty file of our own first: SQLite writes into it and keeps its mode (0600).
    drop(files::create_new(dest)?);
    conn.execute("VACUUM INTO ?1", [dest_str])
        .map_err(db_err("copying the database"))?;
    drop(conn);
    std::fs::File::open(dest)
        .and_then(|f| f.sync_all())
        .map_err(BackupError::io(dest))?;
    Ok(())
}

/// Opens a copy read-only and `immutable` (no lock, no journal, no file created beside it).
pub(crate) fn open_copy(path: &Path) -> Result<Connection, BackupError> {
    let uri = format!("file:{}?immutable=1", uri_path(path)?);
    Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db_err("opening the copy"))
}

/// A path for a `file:` URI: every byte but unreserved ones and `/` percent-encoded.
fn uri_path(path: &Path) -> Result<String, BackupError> {
    let s = path
        .to_str()
        .ok_or_else(|| BackupError::Unsupported("the backup path is not UTF-8".into()))?;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

/// The migration level: the newest migration applied.
pub(crate) fn schema_version(conn: &Connection) -> Result<i64, BackupError> {
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success",
        [],
        |r| r.get(0),
    )
    .map_err(|e| {
        BackupError::Database(format!(
            "reading the migration level ({e}): not a melo database?"
        ))
    })
}

/// The oldest and newest rows of every table with sealed columns.
pub(crate) fn sample(conn: &Connection) -> Result<Samples, BackupError> {
    let mut out = Vec::new();
    for table in SealedTable::ALL {
        let present = columns(conn, table.name())?;
        let has = |c: &str| present.contains(c);
        // A table (or a key column) an older schema lacks is not sampled.
        let (Some((first, chosen)), Some((last, _))) =
            (sample_sql(table, false, has), sample_sql(table, true, has))
        else {
            continue;
        };
        let oldest = rows(conn, table, &first, &chosen)?;
        let newest = rows(conn, table, &last, &chosen)?;
        out.push((table, merge(oldest, newest)));
    }
    Ok(out)
}

/// The columns of `table` (none when it does not exist).
fn columns(conn: &Connection, table: &str) -> Result<HashSet<String>, BackupError> {
    let mut st = conn
        .prepare("SELECT name FROM pragma_table_info(?1)")
        .map_err(db_err("reading the schema"))?;
    let names = st
        .query_map([table], |r| r.get::<_, String>(0))
        .map_err(db_err("reading the schema"))?
        .collect::<Result<_, _>>()
        .map_err(db_err("reading the schema"))?;
    Ok(names)
}

fn rows(
    conn: &Connection,
    table: SealedTable,
    sql: &str,
    chosen: &[usize],
) -> Result<Vec<SealedRow>, BackupError> {
    let what = table.name();
    let mut st = conn.prepare(sql).map_err(db_err(what))?;
    let mut rows = st.query([]).map_err(db_err(what))?;
    let keys = table.key_columns().len();
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(db_err(what))? {
        let int = |i| r.get::<_, i64>(i).map_err(db_err(what));
        let key = match table.key_shape() {
            KeyShape::Id => RowKey::Id(int(0)?),
            KeyShape::Bytes => RowKey::Bytes(r.get(0).map_err(db_err(what))?),
            KeyShape::Pair => RowKey::Pair(int(0)?, int(1)?),
        };
        let mut values = vec![None; table.columns().len()];
        for (n, &i) in chosen.iter().enumerate() {
            values[i] = match r.get_ref(keys + n).map_err(db_err(what))? {
                ValueRef::Null => None,
                ValueRef::Blob(b) | ValueRef::Text(b) => Some(b.to_vec()),
                ValueRef::Integer(_) | ValueRef::Real(_) => {
                    return Err(BackupError::Database(format!(
                        "{what}.{} holds a number where sealed bytes belong",
                        table.columns()[i]
                    )))
                }
            };
        }
        let context = (0..table.context_columns().len())
            .map(|c| {
                r.get_ref(keys + chosen.len() + c)
                    .map(text)
                    .map_err(db_err(what))
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.push(SealedRow {
            key,
            values,
            context,
        });
    }
    Ok(out)
}

/// A context column as the seal's AAD spells it (as the store's `SealedStore` does).
fn text(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Integer(n) => n.to_string(),
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Null => String::new(),
    }
}
