//! [`ReadMarkerStore`] of [`MysqlStore`]: table `read_markers`, keyed (uid, chat_id).
//!
//! The forward-only move needs no transaction: a conditional `UPDATE` (atomic on the row: InnoDB
//! evaluates its `WHERE` on the locked current version) moves an existing marker; when none
//! matched, an `INSERT` creates it; when that meets a row a concurrent call inserted meanwhile,
//! the conditional `UPDATE` runs once more against it. Each step only ever writes a newer marker.

use async_trait::async_trait;

use super::json::{self, INT_TABLE};
use super::{be, is_unique_violation, MysqlStore, TxResult};
use crate::model::{Timestamp, UserId};
use crate::store::read_markers::check_marker_id;
use crate::store::sql::rows::{uid, Cells};
use crate::store::{ReadMarker, ReadMarkerStore, StoreResult};

/// Moves an existing marker forward. Matched rows (sqlx connects with CLIENT_FOUND_ROWS) are the
/// rows the `WHERE` accepted, i.e. the marker moved. `message_id` is binary: bytewise order.
const MOVE: &str = "UPDATE read_markers SET message_id = ?, at = ? \
     WHERE uid = ? AND chat_id = ? AND (at < ? OR (at = ? AND message_id < ?))";

const INSERT: &str = "INSERT INTO read_markers (uid, chat_id, message_id, at) VALUES (?, ?, ?, ?)";

/// Markers of some chats by primary key, only while the user is a member.
fn select_sql() -> String {
    format!(
        "SELECT r.chat_id AS chat_id, r.message_id AS message_id, r.at AS at \
         FROM read_markers r JOIN chat_members m ON m.chat_id = r.chat_id AND m.uid = r.uid \
         WHERE r.uid = ? AND r.chat_id IN (SELECT n FROM {INT_TABLE} j)"
    )
}

impl MysqlStore {
    /// The conditional update; true when it moved the marker.
    async fn move_marker(&self, user: UserId, chat: i64, m: &ReadMarker) -> TxResult<bool> {
        let id = m.message_id.as_bytes();
        let at = m.at.millis();
        let res = sqlx::query(MOVE)
            .bind(id)
            .bind(at)
            .bind(uid(user))
            .bind(chat)
            .bind(at)
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() == 1)
    }

    /// One run of [`ReadMarkerStore::advance_read_marker`].
    async fn advance_once(&self, user: UserId, chat: i64, m: &ReadMarker) -> TxResult<bool> {
        if self.move_marker(user, chat, m).await? {
            return Ok(true);
        }
        let inserted = sqlx::query(INSERT)
            .bind(uid(user))
            .bind(chat)
            .bind(m.message_id.as_bytes())
            .bind(m.at.millis())
            .execute(&self.pool)
            .await;
        match inserted {
            Ok(_) => Ok(true),
            // A marker exists: either it was there (equal or newer: the first update matched
            // nothing) or a concurrent call inserted it since; compare against it.
            Err(e) if is_unique_violation(&e) => self.move_marker(user, chat, m).await,
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait]
impl ReadMarkerStore for MysqlStore {
    async fn advance_read_marker(
        &self,
        user: UserId,
        chat: i64,
        marker: &ReadMarker,
    ) -> StoreResult<bool> {
        check_marker_id(&marker.message_id)?;
        self.retry(move || self.advance_once(user, chat, marker))
            .await
    }

    async fn read_markers(
        &self,
        user: UserId,
        chats: &[i64],
    ) -> StoreResult<Vec<(i64, ReadMarker)>> {
        if chats.is_empty() {
            return Ok(Vec::new());
        }
        let list = json::array(chats)?;
        let rows = sqlx::query(&select_sql())
            .bind(uid(user))
            .bind(list)
            .fetch_all(&self.pool)
            .await
            .map_err(be)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.int("chat_id")?,
                    ReadMarker {
                        message_id: r.text("message_id")?,
                        at: Timestamp::from_millis(r.int("at")?),
                    },
                ))
            })
            .collect()
    }
}
