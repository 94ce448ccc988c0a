//! Dumps of everything a deployment keeps: every cell of every SQLite and MySQL table, the raw
//! bytes of the SQLite files (main, `-wal`, `-shm`), and every Redis key under the test prefix
//! with its value read by type. Each [`Entry`] names where its bytes came from.

use std::path::Path;

use redis::aio::MultiplexedConnection;
use redis::Value;
use sqlx::mysql::MySqlPool;
use sqlx::Row;

/// Raw bytes and where they were read.
#[derive(Debug)]
pub struct Entry {
    pub place: String,
    pub bytes: Vec<u8>,
}

impl Entry {
    pub fn new(place: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            place: place.into(),
            bytes: bytes.into(),
        }
    }
}

fn quote(ident: &str, q: char) -> String {
    format!("{q}{}{q}", ident.replace(q, &format!("{q}{q}")))
}

/// One entry per non-NULL cell of `table` (`rows` holds every column cast to bytes).
fn cells(
    backend: &str,
    table: &str,
    columns: &[String],
    rows: Vec<Vec<Option<Vec<u8>>>>,
) -> Vec<Entry> {
    let mut out = Vec::new();
    for (r, row) in rows.into_iter().enumerate() {
        for (c, cell) in row.into_iter().enumerate() {
            if let Some(bytes) = cell {
                let place = format!("{backend} table `{table}` row {r} column `{}`", columns[c]);
                out.push(Entry::new(place, bytes));
            }
        }
    }
    out
}

/// Every cell of every table listed in `sqlite_master` of the database file `db`, read on a
/// connection of its own (the store keeps its connections to itself).
pub fn sqlite_tables(db: &Path) -> Vec<Entry> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the SQLite file");
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .expect("list SQLite tables");
    let mut out = Vec::new();
    for t in &tables {
        let columns: Vec<String> = conn
            .prepare(&format!("PRAGMA table_info({})", quote(t, '"')))
            .and_then(|mut st| st.query_map([], |r| r.get("name"))?.collect())
            .expect("table_info");
        let select = columns
            .iter()
            .map(|c| format!("CAST({} AS BLOB)", quote(c, '"')))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = conn
            .prepare(&format!("SELECT {select} FROM {}", quote(t, '"')))
            .and_then(|mut st| {
                st.query_map([], |row| {
                    (0..columns.len())
                        .map(|i| row.get::<_, Option<Vec<u8>>>(i))
                        .collect()
                })?
                .collect::<Result<Vec<Vec<Option<Vec<u8>>>>, _>>()
            })
            .unwrap_or_else(|e| panic!("SELECT * FROM {t}: {e}"));
        out.extend(cells("sqlite", t, &columns, rows));
    }
    assert!(
        tables.iter().any(|t| t == "users"),
        "the SQLite dump lists the store's tables: {tables:?}"
    );
    out
}

/// The raw bytes of every file in `dir` (the database, its WAL and shared memory).
pub fn files(dir: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the database directory") {
        let path = entry.expect("entry").path();
        match std::fs::read(&path) {
            Ok(b) => out.push(Entry::new(format!("file {}", path.display()), b)),
            // The WAL and shm files vanish when the last connection closes.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("reading {}: {e}", path.display()),
        }
    }
    out
}

/// Every cell of every table of `SHOW TABLES` in the pool's database, as raw bytes.
pub async fn mysql_tables(pool: &MySqlPool) -> Vec<Entry> {
    let tables: Vec<Vec<u8>> = sqlx::query("SHOW TABLES")
        .fetch_all(pool)
        .await
        .expect("SHOW TABLES")
        .iter()
        .map(|r| r.get_unchecked::<Vec<u8>, _>(0))
        .collect();
    let tables: Vec<String> = tables
        .into_iter()
        .map(|t| String::from_utf8(t).expect("table name"))
        .collect();
    let mut out = Vec::new();
    for t in &tables {
        let columns: Vec<String> = sqlx::query(&format!("SHOW COLUMNS FROM {}", quote(t, '`')))
            .fetch_all(pool)
            .await
            .expect("SHOW COLUMNS")
            .iter()
            .map(|r| String::from_utf8(r.get_unchecked::<Vec<u8>, _>(0)).expect("column name"))
            .collect();
        let select = columns
            .iter()
            .map(|c| format!("CAST({} AS BINARY)", quote(c, '`')))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(&format!("SELECT {select} FROM {}", quote(t, '`')))
            .fetch_all(pool)
            .await
            .unwrap_or_else(|e| panic!("SELECT * FROM {t}: {e}"));
        let rows = rows
            .iter()
            .map(|row| {
                (0..columns.len())
                    .map(|i| row.get_unchecked::<Option<Vec<u8>>, _>(i))
                    .collect()
            })
            .collect();
        out.extend(cells("mysql", t, &columns, rows));
    }
    assert!(
        tables.iter().any(|t| t == "users"),
        "the MySQL dump lists the store's tables: {tables:?}"
    );
    out
}

/// Every key matching `prefix*` (SCAN).
async fn redis_scan(con: &mut MultiplexedConnection, prefix: &str) -> Vec<Vec<u8>> {
    assert!(
        !prefix.contains(['*', '?', '[', '\\']),
        "a literal prefix: {prefix}"
    );
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(con)
            .await
            .expect("SCAN");
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    keys
}

/// Appends every byte string inside `v`, separated by newlines.
fn flatten(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Nil | Value::Okay => {}
        Value::BulkString(b) => out.extend_from_slice(b),
        Value::SimpleString(s) => out.extend_from_slice(s.as_bytes()),
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Array(items) | Value::Set(items) => {
            for i in items {
                flatten(i, out);
                out.push(b'\n');
            }
        }
        Value::Map(pairs) => {
            for (k, v) in pairs {
                flatten(k, out);
                out.push(b'\n');
                flatten(v, out);
                out.push(b'\n');
            }
        }
        other => out.extend_from_slice(format!("{other:?}").as_bytes()),
    }
}

/// Every key under `prefix` (its name is an entry too) and its value, read by type.
pub async fn redis_keys(url: &str, prefix: &str) -> Vec<Entry> {
    let client = redis::Client::open(url).expect("redis url");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("MELO_TEST_REDIS_URL is set but Redis is unreachable: {e}"));
    let mut out = Vec::new();
    for key in redis_scan(&mut con, prefix).await {
        let name = String::from_utf8_lossy(&key).into_owned();
        out.push(Entry::new(format!("redis key name {name:?}"), key.clone()));
        let ty: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut con)
            .await
            .expect("TYPE");
        let mut read = match ty.as_str() {
            "string" => redis::cmd("GET"),
            "hash" => redis::cmd("HGETALL"),
            "set" => redis::cmd("SMEMBERS"),
            "list" => {
                let mut c = redis::cmd("LRANGE");
                c.arg(&key).arg(0).arg(-1);
                c
            }
            "zset" => {
                let mut c = redis::cmd("ZRANGE");
                c.arg(&key).arg(0).arg(-1).arg("WITHSCORES");
                c
            }
            "stream" => {
                let mut c = redis::cmd("XRANGE");
                c.arg(&key).arg("-").arg("+");
                c
            }
            // Expired between SCAN and TYPE.
            "none" => continue,
            other => panic!("key {name:?} has a type the audit cannot read: {other}"),
        };
        if matches!(ty.as_str(), "string" | "hash" | "set") {
            read.arg(&key);
        }
        let value: Value = read.query_async(&mut con).await.expect("read a value");
        let mut bytes = Vec::new();
        flatten(&value, &mut bytes);
        out.push(Entry::new(format!("redis {ty} value of {name:?}"), bytes));
    }
    out
}
