//! [`SealedStore`] of [`SqliteStore`]: paging through sealed columns and compare-and-set
//! replacement for data-key rotation, with the statements `SealedTable` builds (shared with
//! MySQL: the tables agree).

use async_trait::async_trait;
use rusqlite::params_from_iter;
use rusqlite::types::{Value, ValueRef};

use super::db::be;
use super::SqliteStore;
use crate::store::{
    KeyShape, RowKey, SealedRow, SealedStore, SealedTable, SealedUpdate, StoreResult,
};

fn key_values(key: &RowKey) -> Vec<Value> {
    match key {
        RowKey::Id(id) => vec![Value::Integer(*id)],
        RowKey::Bytes(b) => vec![Value::Blob(b.clone())],
        RowKey::Pair(a, b) => vec![Value::Integer(*a), Value::Integer(*b)],
    }
}

fn text(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Integer(n) => n.to_string(),
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Null => String::new(),
    }
}

#[async_trait]
impl SealedStore for SqliteStore {
    async fn sealed_rows(
        &self,
        table: SealedTable,
        after: Option<&RowKey>,
        limit: u32,
    ) -> StoreResult<Vec<SealedRow>> {
        let mut args = after.map(key_values).unwrap_or_default();
        args.push(Value::Integer(i64::from(limit)));
        let sql = table.page_sql(after.is_some());
        self.db
            .read(move |c| {
                let mut st = c.prepare_cached(&sql).map_err(be)?;
                let mut rows = st.query(params_from_iter(args)).map_err(be)?;
                let (keys, cols) = (table.key_columns().len(), table.columns().len());
                let mut out = Vec::new();
                while let Some(r) = rows.next().map_err(be)? {
                    let int = |i| r.get::<_, i64>(i).map_err(be);
                    let key = match table.key_shape() {
                        KeyShape::Id => RowKey::Id(int(0)?),
                        KeyShape::Bytes => RowKey::Bytes(r.get(0).map_err(be)?),
                        KeyShape::Pair => RowKey::Pair(int(0)?, int(1)?),
                    };
                    let values = (keys..keys + cols)
                        .map(|i| r.get::<_, Option<Vec<u8>>>(i).map_err(be))
                        .collect::<StoreResult<Vec<_>>>()?;
                    let context = (0..table.context_columns().len())
                        .map(|i| r.get_ref(keys + cols + i).map(text).map_err(be))
                        .collect::<StoreResult<Vec<_>>>()?;
                    out.push(SealedRow {
                        key,
                        values,
                        context,
                    });
                }
                Ok(out)
            })
            .await
    }

    async fn replace_sealed(
        &self,
        table: SealedTable,
        updates: &[SealedUpdate],
    ) -> StoreResult<u64> {
        let updates = updates.to_vec();
        self.db
            .write(move |t| {
                let mut applied = 0;
                for u in updates {
                    let Some(sql) = table.update_sql(u.column) else {
                        continue;
                    };
                    let mut args = vec![Value::Blob(u.new)];
                    args.extend(key_values(&u.key));
                    args.push(Value::Blob(u.old));
                    let n = t
                        .prepare_cached(&sql)
                        .map_err(be)?
                        .execute(params_from_iter(args))
                        .map_err(be)?;
                    applied += n.min(1) as u64;
                }
                Ok(applied)
            })
            .await
    }
}
