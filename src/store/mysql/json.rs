//! Lists passed to a statement as ONE JSON parameter and read back with `JSON_TABLE` (MariaDB
//! 10.6+, MySQL 8): the statement text is the same whatever the list's length, so sqlx's
//! per-connection statement cache always hits (an `IN (?, ?, …)` or `VALUES (…), (…)` of each
//! length would be a statement of its own, prepared again and again), and the server joins the
//! rows by key instead of analysing long `IN`/`OR` lists.
//!
//! Encodings: integers as JSON numbers, message ids as 32 hex digits (`UNHEX(…)` in SQL; see
//! [`MessageId`]'s serialization), binary values as base64 (`FROM_BASE64(…)`, [`B64`]), text as
//! JSON strings. `JSON_TABLE` truncates a value longer than its column type silently (with a
//! warning), so text and binary columns are declared `LONGTEXT`: the table the value goes to
//! checks its length.

use base64::Engine;
use serde::{Serialize, Serializer};

use crate::model::MessageId;
use crate::store::{StoreError, StoreResult};

/// A binary value, serialized as base64.
pub(super) struct B64<'a>(pub(super) &'a [u8]);

impl Serialize for B64<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(self.0))
    }
}

/// The JSON text of `rows` (tuples serialize as arrays).
pub(super) fn array<T: Serialize>(rows: &[T]) -> StoreResult<String> {
    serde_json::to_string(rows).map_err(StoreError::backend)
}

/// A JSON array of message ids.
pub(super) fn ids(ids: &[MessageId]) -> StoreResult<String> {
    array(ids)
}

/// `JSON_TABLE` over an array of message ids: column `i`, the hex id.
pub(super) const ID_TABLE: &str =
    "JSON_TABLE(?, '$[*]' COLUMNS (i VARCHAR(32) CHARACTER SET ascii PATH '$'))";

/// `JSON_TABLE` over an array of integers: column `n`.
pub(super) const INT_TABLE: &str = "JSON_TABLE(?, '$[*]' COLUMNS (n BIGINT PATH '$'))";
