//! [`MessageStore`] of [`MysqlStore`]: reading messages, history pages, and management (edit,
//! delete, pin, react). Message ids are `BINARY(16)` big-endian, so `ORDER BY id` is time order.
//!
//! Byte-bounded reads (history here, the device queue in `queue.rs`) run in two statements:
//! one selects the keys and content sizes (`LENGTH(…)`, no payload column) of the rows in
//! range and decides how many fit, the other fetches exactly those. No payload is sent that is
//! not returned.

use std::collections::HashMap;

use async_trait::async_trait;

use super::json::{self, ID_TABLE};
use super::{be, is_foreign_key_violation, MysqlStore};
use crate::model::{Message, MessageId, QueueItem, QueuedEntry, Timestamp, UserId};
use crate::store::sql::rows::{self, clamp, id_blob, pair, uid, Cells, MESSAGE_COLS};
use crate::store::{HistoryPageSpec, HistoryRows, MessageStore, StoreResult};

/// Content bytes of a message row over `m` (see [`Message::content_bytes`]).
pub(super) const MESSAGE_BYTES: &str =
    "CAST(LENGTH(m.payload) + COALESCE(LENGTH(m.signature), 0) AS SIGNED)";

/// How many leading rows of `sizes` fit in `max_bytes` (at least one when there is one), and
/// whether that stopped short of the end.
pub(super) fn fitting(sizes: impl IntoIterator<Item = u64>, max_bytes: u64) -> (usize, bool) {
    let mut total: u64 = 0;
    let mut n = 0;
    for size in sizes {
        total = total.saturating_add(size);
        if total > max_bytes && n > 0 {
            return (n, true);
        }
        n += 1;
    }
    (n, false)
}

impl MysqlStore {
    /// Fills the `reactions` of `msgs`.
    pub(super) async fn load_reactions(&self, msgs: &mut [Message]) -> StoreResult<()> {
        self.fill_reactions(msgs.iter_mut().collect()).await
    }

    /// Fills the `reactions` of the messages of a queue page.
    pub(super) async fn queue_reactions(&self, entries: &mut [QueuedEntry]) -> StoreResult<()> {
        let msgs = entries
            .iter_mut()
            .filter_map(|e| match &mut e.item {
                QueueItem::Message { message, .. } => Some(message),
                _ => None,
            })
            .collect();
        self.fill_reactions(msgs).await
    }

    async fn fill_reactions(&self, mut msgs: Vec<&mut Message>) -> StoreResult<()> {
        if msgs.is_empty() {
            return Ok(());
        }
        let mut index: HashMap<MessageId, Vec<usize>> = HashMap::new();
        for (i, m) in msgs.iter().enumerate() {
            index.entry(m.id).or_default().push(i);
        }
        let ids: Vec<MessageId> = index.keys().copied().collect();
        // One statement whatever the number of messages; in reacting order.
        let rows = sqlx::query(&format!(
            "SELECT r.message_id, r.uid, r.reaction FROM reactions r \
             WHERE r.message_id IN (SELECT UNHEX(i) FROM {ID_TABLE} j) ORDER BY r.id"
        ))
        .bind(json::ids(&ids)?)
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        for row in &rows {
            let id = row.message_id("message_id")?;
            let reaction = row.text("reaction")?;
            let user = row.uid("uid")?;
            for &i in index.get(&id).into_iter().flatten() {
                msgs[i]
                    .reactions
                    .entry(reaction.clone())
                    .or_default()
                    .push(user);
            }
        }
        Ok(())
    }

    /// One page of a conversation, newest first: `filter` selects it over `m` with its `?`s
    /// bound to `keys`. Two statement shapes per step rather than `(? IS NULL OR id < ?)`,
    /// which would hide the cursor range from the index.
    async fn history_rows(
        &self,
        filter: &str,
        keys: &[i64],
        before: Option<MessageId>,
        page: HistoryPageSpec,
    ) -> StoreResult<HistoryRows> {
        if page.take == 0 {
            return Ok(HistoryRows::default());
        }
        // The ids and sizes of the page; then the rows that fit, by their id range.
        let cursor = if before.is_some() { "AND m.id < ?" } else { "" };
        let sql = format!(
            "SELECT m.id AS id, {MESSAGE_BYTES} AS size FROM messages m \
             WHERE {filter} {cursor} ORDER BY m.id DESC LIMIT ? OFFSET ?"
        );
        let mut q = sqlx::query(&sql);
        for key in keys {
            q = q.bind(*key);
        }
        if let Some(before) = before {
            q = q.bind(id_blob(before).to_vec());
        }
        let sizes = q
            .bind(clamp(page.take))
            .bind(clamp(page.skip))
            .fetch_all(&self.pool)
            .await
            .map_err(be)?
            .iter()
            .map(|r| Ok((r.bytes("id")?, r.int("size")?.max(0) as u64)))
            .collect::<StoreResult<Vec<_>>>()?;
        let (n, cut) = fitting(sizes.iter().map(|(_, size)| *size), page.max_bytes);
        let (Some((newest, _)), Some((oldest, _))) = (sizes.first(), sizes.get(n.wrapping_sub(1)))
        else {
            return Ok(HistoryRows::default());
        };
        let sql = format!(
            "SELECT {MESSAGE_COLS} FROM messages m WHERE {filter} \
             AND m.id <= ? AND m.id >= ? ORDER BY m.id DESC LIMIT ?"
        );
        let mut q = sqlx::query(&sql);
        for key in keys {
            q = q.bind(*key);
        }
        let rows = q
            .bind(newest)
            .bind(oldest)
            .bind(clamp(n as u64))
            .fetch_all(&self.pool)
            .await
            .map_err(be)?;
        let mut messages = rows
            .iter()
            .map(rows::message)
            .collect::<StoreResult<Vec<_>>>()?;
        // A message edited between the two statements may have grown: the bound holds.
        let (keep, shrunk) = fitting(messages.iter().map(Message::content_bytes), page.max_bytes);
        messages.truncate(keep);
        self.load_reactions(&mut messages).await?;
        Ok(HistoryRows {
            messages,
            cut: cut || shrunk,
        })
    }
}

#[async_trait]
impl MessageStore for MysqlStore {
    async fn message(&self, id: MessageId) -> StoreResult<Option<Message>> {
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLS} FROM messages m WHERE m.id = ?"
        ))
        .bind(id_blob(id).to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(be)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut msg = [rows::message(&row)?];
        self.load_reactions(&mut msg).await?;
        let [msg] = msg;
        Ok(Some(msg))
    }

    async fn dm_history(
        &self,
        a: UserId,
        b: UserId,
        before: Option<MessageId>,
        page: HistoryPageSpec,
    ) -> StoreResult<HistoryRows> {
        let (lo, hi) = pair(a, b);
        self.history_rows("m.dm_lo = ? AND m.dm_hi = ?", &[lo, hi], before, page)
            .await
    }

    async fn dm_count(&self, a: UserId, b: UserId) -> StoreResult<u64> {
        let (lo, hi) = pair(a, b);
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE dm_lo = ? AND dm_hi = ?")
                .bind(lo)
                .bind(hi)
                .fetch_one(&self.pool)
                .await
                .map_err(be)?;
        Ok(n.max(0) as u64)
    }

    async fn chat_history(
        &self,
        chat_id: i64,
        before: Option<MessageId>,
        page: HistoryPageSpec,
    ) -> StoreResult<HistoryRows> {
        self.history_rows("m.chat_id = ?", &[chat_id], before, page)
            .await
    }

    async fn chat_count(&self, chat_id: i64) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE chat_id = ?")
            .bind(chat_id)
            .fetch_one(&self.pool)
            .await
            .map_err(be)?;
        Ok(n.max(0) as u64)
    }

    async fn edit_message(&self, id: MessageId, payload: &str, at: Timestamp) -> StoreResult<bool> {
        let id = &id_blob(id);
        // sqlx asks for CLIENT_FOUND_ROWS: the count is of matched rows, changed or not.
        self.retry(move || async move {
            let r = sqlx::query(
                "UPDATE messages SET payload = ?, edited_at = ? WHERE id = ? AND deleted = 0",
            )
            .bind(payload)
            .bind(at.millis())
            .bind(&id[..])
            .execute(&self.pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
        .await
    }

    async fn delete_message(&self, id: MessageId) -> StoreResult<bool> {
        let id = &id_blob(id);
        self.retry(move || async move {
            let r = sqlx::query(
                "UPDATE messages SET deleted = 1, payload = '', signature = NULL WHERE id = ?",
            )
            .bind(&id[..])
            .execute(&self.pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
        .await
    }

    async fn set_pinned(&self, id: MessageId, pinned: bool) -> StoreResult<bool> {
        let id = &id_blob(id);
        self.retry(move || async move {
            let r = sqlx::query("UPDATE messages SET pinned = ? WHERE id = ?")
                .bind(pinned)
                .bind(&id[..])
                .execute(&self.pool)
                .await?;
            Ok(r.rows_affected() == 1)
        })
        .await
    }

    async fn set_reaction(
        &self,
        id: MessageId,
        user: UserId,
        reaction: Option<&str>,
    ) -> StoreResult<bool> {
        let id = &id_blob(id);
        self.retry(move || async move {
            let mut tx = self.pool.begin().await?;
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM messages WHERE id = ?")
                .bind(&id[..])
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                tx.rollback().await?;
                return Ok(false);
            }
            // A changed reaction is deleted and inserted again (a new, larger id: the user moves
            // to the end of the new emoji's list); the same one again stays where it is.
            sqlx::query(
                "DELETE FROM reactions WHERE message_id = ? AND uid = ? \
                 AND NOT (reaction <=> ?)",
            )
            .bind(&id[..])
            .bind(uid(user))
            .bind(reaction)
            .execute(&mut *tx)
            .await?;
            if let Some(reaction) = reaction {
                let res = sqlx::query(
                    "INSERT INTO reactions (message_id, uid, reaction, at) VALUES (?, ?, ?, ?) \
                     ON DUPLICATE KEY UPDATE at = at",
                )
                .bind(&id[..])
                .bind(uid(user))
                .bind(reaction)
                .bind(Timestamp::now().millis())
                .execute(&mut *tx)
                .await;
                match res {
                    Ok(_) => {}
                    // Purged meanwhile.
                    Err(e) if is_foreign_key_violation(&e) => {
                        tx.rollback().await?;
                        return Ok(false);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            tx.commit().await?;
            Ok(true)
        })
        .await
    }
}
