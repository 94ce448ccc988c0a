//! [`ReadMarkerStore`] of [`SqliteStore`]: table `read_markers`, keyed (uid, chat_id). The
//! forward-only move is one upsert whose update is conditional on the order (`at`,
//! `message_id`); the writer thread runs it in its transaction.

use async_trait::async_trait;
use rusqlite::params;

use super::rows::{exec, one};
use super::SqliteStore;
use crate::model::{Timestamp, UserId};
use crate::store::read_markers::check_marker_id;
use crate::store::sql::rows::{uid, Cells};
use crate::store::{ReadMarker, ReadMarkerStore, StoreResult};

/// Inserts, or moves forward: the update's `WHERE` leaves an equal or newer marker alone, and
/// the change count says whether a row was written. Text compares bytewise (`BINARY`).
const ADVANCE: &str = "INSERT INTO read_markers (uid, chat_id, message_id, at) \
     VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (uid, chat_id) DO UPDATE SET message_id = excluded.message_id, at = excluded.at \
     WHERE (excluded.at, excluded.message_id) > (read_markers.at, read_markers.message_id)";

/// One marker by primary key, only while the user is a member (primary key of
/// `chat_members`).
const ONE: &str = "SELECT r.message_id AS message_id, r.at AS at FROM read_markers r \
     JOIN chat_members m ON m.chat_id = r.chat_id AND m.uid = r.uid \
     WHERE r.uid = ?1 AND r.chat_id = ?2";

#[async_trait]
impl ReadMarkerStore for SqliteStore {
    async fn advance_read_marker(
        &self,
        user: UserId,
        chat: i64,
        marker: &ReadMarker,
    ) -> StoreResult<bool> {
        check_marker_id(&marker.message_id)?;
        let id = marker.message_id.clone();
        let at = marker.at.millis();
        self.db
            .write(move |t| Ok(exec(t, ADVANCE, params![uid(user), chat, id, at])? == 1))
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
        let chats: std::collections::BTreeSet<i64> = chats.iter().copied().collect();
        let me = uid(user);
        self.db
            .read(move |c| {
                let mut out = Vec::with_capacity(chats.len());
                for chat in chats {
                    let found = one(c, ONE, params![me, chat], |r| {
                        Ok(ReadMarker {
                            message_id: r.text("message_id")?,
                            at: Timestamp::from_millis(r.int("at")?),
                        })
                    })?;
                    out.extend(found.map(|m| (chat, m)));
                }
                Ok(out)
            })
            .await
    }
}
