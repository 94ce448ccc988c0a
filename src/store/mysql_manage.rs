//! Message management (edit, delete, pin, react), history pages, reaction loading, queue trimming
//! and the retention purge of [`MysqlStore`]. The impls in `mysql_messages.rs` delegate here.

use std::collections::HashMap;

use sqlx::Row;

use super::messages::{id_blob, id_of, message_from_row, MSG_COLS};
use super::{
    be, clamp, is_foreign_key_violation, marks, text_of, uid, uid_of, MysqlStore, TxResult,
};
use crate::model::{Message, MessageId, QueueItem, QueuedEntry, SessionId, Timestamp, UserId};
use crate::store::StoreResult;

/// Rows per statement of the purge (a constant in the SQL text: `LIMIT` of DELETE and UPDATE).
const PURGE_BATCH: u64 = 1000;

/// One queue row as the trim sees it.
struct TrimRow {
    seq: i64,
    gap_from: Option<i64>,
    gap_count: i64,
    created_at: i64,
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
        // A message may appear more than once (a queue page never repeats one, but be safe).
        let mut index: HashMap<MessageId, Vec<usize>> = HashMap::new();
        for (i, m) in msgs.iter().enumerate() {
            index.entry(m.id).or_default().push(i);
        }
        let ids: Vec<MessageId> = index.keys().copied().collect();
        // Each message's reactions all come from one chunk, in reacting order.
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT message_id, uid, reaction FROM reactions WHERE message_id IN ({}) \
                 ORDER BY id",
                marks(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id_blob(*id));
            }
            for row in q.fetch_all(&self.pool).await.map_err(be)? {
                let id = id_of(&row, "message_id")?;
                let reaction = text_of(&row, "reaction")?;
                let user = uid_of(&row, "uid")?;
                for &i in index.get(&id).into_iter().flatten() {
                    msgs[i]
                        .reactions
                        .entry(reaction.clone())
                        .or_default()
                        .push(user);
                }
            }
        }
        Ok(())
    }

    /// One page of a conversation, newest first: `filter` selects it over `m` with its `?`s
    /// bound to `keys`. Two statement shapes rather than `(? IS NULL OR id < ?)`, which would
    /// hide the cursor range from the index.
    pub(super) async fn history_rows(
        &self,
        filter: &str,
        keys: &[i64],
        before: Option<MessageId>,
        skip: u64,
        take: u64,
    ) -> StoreResult<Vec<Message>> {
        let cursor = if before.is_some() { "AND m.id < ?" } else { "" };
        let sql = format!(
            "SELECT {MSG_COLS} FROM messages m WHERE {filter} {cursor} \
             ORDER BY m.id DESC LIMIT ? OFFSET ?"
        );
        let mut query = sqlx::query(&sql);
        for key in keys {
            query = query.bind(*key);
        }
        if let Some(before) = before {
            query = query.bind(id_blob(before));
        }
        query = query.bind(clamp(take)).bind(clamp(skip));
        let rows = query.fetch_all(&self.pool).await.map_err(be)?;
        let mut msgs = rows
            .iter()
            .map(message_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        self.load_reactions(&mut msgs).await?;
        Ok(msgs)
    }

    /// See [`MessageStore::edit_message`](crate::store::MessageStore::edit_message).
    pub(super) async fn edit(
        &self,
        id: MessageId,
        payload: &str,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let id = &id_blob(id);
        // sqlx asks for CLIENT_FOUND_ROWS: the count is of matched rows, changed or not.
        self.retry(move || async move {
            let r = sqlx::query(
                "UPDATE messages SET payload = ?, edited_at = ? WHERE id = ? AND deleted = 0",
            )
            .bind(payload)
            .bind(at.millis())
            .bind(id)
            .execute(&self.pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
        .await
    }

    /// See [`MessageStore::delete_message`](crate::store::MessageStore::delete_message).
    pub(super) async fn delete(&self, id: MessageId) -> StoreResult<bool> {
        let id = &id_blob(id);
        self.retry(move || async move {
            let r = sqlx::query(
                "UPDATE messages SET deleted = 1, payload = '', signature = NULL WHERE id = ?",
            )
            .bind(id)
            .execute(&self.pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
        .await
    }

    /// See [`MessageStore::set_pinned`](crate::store::MessageStore::set_pinned).
    pub(super) async fn pin(&self, id: MessageId, pinned: bool) -> StoreResult<bool> {
        let id = &id_blob(id);
        self.retry(move || async move {
            let r = sqlx::query("UPDATE messages SET pinned = ? WHERE id = ?")
                .bind(pinned)
                .bind(id)
                .execute(&self.pool)
                .await?;
            Ok(r.rows_affected() == 1)
        })
        .await
    }

    /// See [`MessageStore::set_reaction`](crate::store::MessageStore::set_reaction).
    pub(super) async fn react(
        &self,
        id: MessageId,
        user: UserId,
        reaction: Option<&str>,
    ) -> StoreResult<bool> {
        let id = &id_blob(id);
        self.retry(move || async move {
            let mut tx = self.pool.begin().await?;
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM messages WHERE id = ?")
                .bind(id)
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
            .bind(id)
            .bind(uid(user))
            .bind(reaction)
            .execute(&mut *tx)
            .await?;
            if let Some(reaction) = reaction {
                let res = sqlx::query(
                    "INSERT INTO reactions (message_id, uid, reaction, at) VALUES (?, ?, ?, ?) \
                     ON DUPLICATE KEY UPDATE at = at",
                )
                .bind(id)
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

    /// See [`QueueStore::trim_queues`](crate::store::QueueStore::trim_queues).
    pub(super) async fn trim_all(
        &self,
        max_len: u64,
        expire_before: Timestamp,
    ) -> StoreResult<Vec<(SessionId, i64)>> {
        // Candidates in one pass over the queue's primary key; each is re-checked in its own
        // transaction, since entries may have been acked or appended meanwhile.
        let candidates: Vec<i64> = sqlx::query_scalar(
            "SELECT session_id FROM queue GROUP BY session_id \
             HAVING COUNT(*) > ? OR MIN(CASE WHEN gap_from IS NULL THEN created_at END) < ?",
        )
        .bind(clamp(max_len))
        .bind(expire_before.millis())
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        let mut gaps = Vec::new();
        for session in candidates {
            let trimmed = self
                .retry(move || self.trim_queue(session, max_len, expire_before))
                .await?;
            if let Some(seq) = trimmed {
                gaps.push((SessionId(session), seq));
            }
        }
        Ok(gaps)
    }

    /// Trims one queue (see [`QueueStore::trim_queues`](crate::store::QueueStore::trim_queues))
    /// in one transaction; returns the new gap's seq. The queue's rows are read with
    /// `FOR UPDATE`, which also blocks appends to it until COMMIT.
    async fn trim_queue(
        &self,
        session: i64,
        max_len: u64,
        expire_before: Timestamp,
    ) -> TxResult<Option<i64>> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT seq, gap_from, gap_count, created_at FROM queue WHERE session_id = ? \
             ORDER BY seq FOR UPDATE",
        )
        .bind(session)
        .fetch_all(&mut *tx)
        .await?;
        let mut queue = Vec::with_capacity(rows.len());
        for r in &rows {
            queue.push(TrimRow {
                seq: r.try_get("seq")?,
                gap_from: r.try_get("gap_from")?,
                gap_count: r.try_get::<Option<i64>, _>("gap_count")?.unwrap_or(0),
                created_at: r.try_get("created_at")?,
            });
        }
        let n = queue.len() as u64;
        let overflow = if n > max_len { n - max_len + 1 } else { 0 };
        // Entries are dropped up to (excluding) `end`: past the overflow ones and past the
        // leading run of gaps and expired entries, whichever reaches further.
        let overflow_end = match overflow {
            0 => i64::MIN,
            k if k >= n => i64::MAX,
            k => queue
                .get(usize::try_from(k - 1).unwrap_or(usize::MAX))
                .map_or(i64::MAX, |r| r.seq + 1),
        };
        // The first entry that is neither a gap nor expired ends the expired run.
        let kept = queue
            .iter()
            .find(|r| r.gap_from.is_none() && r.created_at >= expire_before.millis())
            .map(|r| r.seq);
        let end = overflow_end.max(kept.unwrap_or(i64::MAX));
        let dropped: Vec<&TrimRow> = queue.iter().filter(|r| r.seq < end).collect();
        let entries = dropped.iter().filter(|r| r.gap_from.is_none()).count() as i64;
        // Nothing but gaps (or nothing) to drop: a gap alone never expires.
        let (Some(first), Some(last), true) = (
            dropped.first().map(|r| r.seq),
            dropped.last().map(|r| r.seq),
            entries > 0,
        ) else {
            tx.rollback().await?;
            return Ok(None);
        };
        let merged: i64 = dropped.iter().map(|r| r.gap_count).sum();
        let gap_first = dropped.iter().filter_map(|r| r.gap_from).min();
        let at = Timestamp::now();
        sqlx::query("DELETE FROM queue WHERE session_id = ? AND seq < ?")
            .bind(session)
            .bind(end)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO queue (session_id, seq, gap_from, gap_count, gap_overflow, gap_at, \
             created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(session)
        .bind(last)
        .bind(gap_first.map_or(first, |g| g.min(first)))
        .bind(entries + merged)
        .bind(overflow > 0)
        .bind(at.millis())
        .bind(at.millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(last))
    }

    /// See [`QueueStore::purge_messages`](crate::store::QueueStore::purge_messages).
    pub(super) async fn purge(
        &self,
        history_before: Timestamp,
        dedupe_before: Timestamp,
    ) -> StoreResult<u64> {
        // In batches, each its own short statement, so the sweep never holds many locks long.
        // Reactions go with their message (foreign key cascade).
        let delete = format!(
            "DELETE FROM messages WHERE created_at < ? \
             AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.message_id = messages.id) \
             ORDER BY created_at LIMIT {PURGE_BATCH}"
        );
        let forget = format!(
            "UPDATE messages SET client_id = NULL WHERE created_at < ? \
             AND client_id IS NOT NULL ORDER BY created_at LIMIT {PURGE_BATCH}"
        );
        let mut deleted = 0;
        loop {
            let delete = &delete;
            let n = self
                .retry(move || async move {
                    let r = sqlx::query(delete)
                        .bind(history_before.millis())
                        .execute(&self.pool)
                        .await?;
                    Ok(r.rows_affected())
                })
                .await?;
            deleted += n;
            if n < PURGE_BATCH {
                break;
            }
        }
        loop {
            let forget = &forget;
            let n = self
                .retry(move || async move {
                    let r = sqlx::query(forget)
                        .bind(dedupe_before.millis())
                        .execute(&self.pool)
                        .await?;
                    Ok(r.rows_affected())
                })
                .await?;
            if n < PURGE_BATCH {
                break;
            }
        }
        Ok(deleted)
    }
}
