//! [`Cells`] for rusqlite rows, and the message-id helpers of this backend.

use rusqlite::types::FromSql;
use rusqlite::Row;

use super::db::be;
use crate::store::sql::rows::Cells;
use crate::store::StoreResult;

pub(super) use crate::store::sql::rows::{id_blob, id_from};

fn get<T: FromSql>(r: &Row<'_>, col: &str) -> StoreResult<T> {
    r.get(col).map_err(be)
}

impl Cells for Row<'_> {
    fn int(&self, col: &str) -> StoreResult<i64> {
        get(self, col)
    }
    fn opt_int(&self, col: &str) -> StoreResult<Option<i64>> {
        get(self, col)
    }
    fn bytes(&self, col: &str) -> StoreResult<Vec<u8>> {
        get(self, col)
    }
    fn opt_bytes(&self, col: &str) -> StoreResult<Option<Vec<u8>>> {
        get(self, col)
    }
    fn text(&self, col: &str) -> StoreResult<String> {
        get(self, col)
    }
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>> {
        get(self, col)
    }
}

/// The first row of `sql` with `params`, decoded by `f`.
pub(super) fn one<T>(
    c: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    let mut st = c.prepare_cached(sql).map_err(be)?;
    let mut rows = st.query(params).map_err(be)?;
    match rows.next().map_err(be)? {
        Some(r) => f(r).map(Some),
        None => Ok(None),
    }
}

/// Every row of `sql` with `params`, decoded by `f`.
pub(super) fn all<T>(
    c: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
    mut f: impl FnMut(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let mut st = c.prepare_cached(sql).map_err(be)?;
    let mut rows = st.query(params).map_err(be)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(be)? {
        out.push(f(r)?);
    }
    Ok(out)
}

/// Runs a statement; the number of rows it changed.
pub(super) fn exec(
    c: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<usize> {
    c.prepare_cached(sql)
        .map_err(be)?
        .execute(params)
        .map_err(be)
}
