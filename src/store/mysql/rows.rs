//! [`Cells`] for MySQL rows, so the backend decodes its rows with the decoders shared with the
//! SQLite store (`store::sql::rows`).

use sqlx::mysql::MySqlRow;
use sqlx::Row;

use super::be;
use crate::store::sql::rows::{corrupt, Cells};
use crate::store::StoreResult;

impl Cells for MySqlRow {
    fn int(&self, col: &str) -> StoreResult<i64> {
        self.try_get(col).map_err(be)
    }
    fn opt_int(&self, col: &str) -> StoreResult<Option<i64>> {
        self.try_get(col).map_err(be)
    }
    fn bytes(&self, col: &str) -> StoreResult<Vec<u8>> {
        self.try_get(col).map_err(be)
    }
    fn opt_bytes(&self, col: &str) -> StoreResult<Option<Vec<u8>>> {
        self.try_get(col).map_err(be)
    }
    /// Read as bytes and checked: `_bin` collations flag text columns binary, which sqlx's
    /// `String` decoding refuses.
    fn text(&self, col: &str) -> StoreResult<String> {
        String::from_utf8(self.bytes(col)?).map_err(|_| corrupt(col))
    }
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>> {
        self.opt_bytes(col)?
            .map(|b| String::from_utf8(b).map_err(|_| corrupt(col)))
            .transpose()
    }
}
