//! [`MessageStore`] and [`QueueStore`] of [`SqliteStore`] (schema: `0002_messages.sql`).
//!
//! Message ids are 16-byte big-endian BLOBs, so `ORDER BY id` is time order. Writes that touch
//! several rows run in one `BEGIN IMMEDIATE` transaction and pass their rows as one JSON array
//! bound to a single parameter and expanded by `json_each`: one prepared statement of fixed shape
//! per step whatever the fan-out, instead of one statement per target. Blobs inside that JSON
//! travel as hex and are decoded by `unhex` (SQLite 3.41+; sqlx bundles a newer one).
//!
//! The hot writes (`store_message`, `ack`, `mark_delivered`, `enqueue_events`) are group-committed
//! by the writer task of `sqlite_writer.rs`; the cold ones run here on the writer connection.

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{be, pair, uid_of, SqliteStore};
use crate::model::{
    AckSelector, AckedEntry, Gap, Message, MessageId, NewMessage, QueueItem, QueueTarget,
    QueuedEntry, SessionId, StoreOutcome, Timestamp, UserId,
};
use crate::store::{MessageStore, QueueStore, StoreError, StoreResult};

pub(super) const MSG_COLS: &str = "m.id, m.from_uid, m.to_uid, m.chat_id, m.payload, \
     m.signature, m.created_at, m.delivered, m.read, m.edited_at, m.deleted, m.pinned";

pub(super) fn id_blob(id: MessageId) -> Vec<u8> {
    id.as_u128().to_be_bytes().to_vec()
}

pub(super) fn id_of(row: &SqliteRow, col: &str) -> StoreResult<MessageId> {
    let b: &[u8] = row.try_get(col).map_err(be)?;
    <[u8; 16]>::try_from(b)
        .map(|a| MessageId::from_u128(u128::from_be_bytes(a)))
        .map_err(|_| StoreError::Backend(format!("corrupt message id in column {col}").into()))
}

fn opt_uid_of(row: &SqliteRow, col: &str) -> StoreResult<Option<UserId>> {
    let n: Option<i64> = row.try_get(col).map_err(be)?;
    n.map(|_| uid_of(row, col)).transpose()
}

/// A message from the columns of [`MSG_COLS`], without its reactions (see `load_reactions`).
pub(super) fn message_from_row(row: &SqliteRow) -> StoreResult<Message> {
    let delivered: i64 = row.try_get("delivered").map_err(be)?;
    let read: i64 = row.try_get("read").map_err(be)?;
    let edited_at: Option<i64> = row.try_get("edited_at").map_err(be)?;
    let deleted: i64 = row.try_get("deleted").map_err(be)?;
    let pinned: i64 = row.try_get("pinned").map_err(be)?;
    Ok(Message {
        id: id_of(row, "id")?,
        from: uid_of(row, "from_uid")?,
        to: opt_uid_of(row, "to_uid")?,
        chat_id: row.try_get("chat_id").map_err(be)?,
        payload: row.try_get("payload").map_err(be)?,
        signature: row.try_get("signature").map_err(be)?,
        created_at: Timestamp::from_millis(row.try_get("created_at").map_err(be)?),
        delivered: delivered != 0,
        read: read != 0,
        edited_at: edited_at.map(Timestamp::from_millis),
        deleted: deleted != 0,
        pinned: pinned != 0,
        reactions: Default::default(),
    })
}

fn gap_from_row(row: &SqliteRow, from_seq: i64) -> StoreResult<Gap> {
    let count: i64 = row.try_get("gap_count").map_err(be)?;
    let overflow: i64 = row.try_get("gap_overflow").map_err(be)?;
    Ok(Gap {
        from_seq,
        count: count.max(0) as u64,
        overflow: overflow != 0,
        at: Timestamp::from_millis(row.try_get("gap_at").map_err(be)?),
    })
}

pub(super) fn json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(StoreError::backend)
}

pub(super) fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(char::from(DIGITS[usize::from(x >> 4)]));
        s.push(char::from(DIGITS[usize::from(x & 0x0f)]));
    }
    s
}

pub(super) fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn store_message(
        &self,
        msg: &NewMessage,
        targets: &[QueueTarget],
    ) -> StoreResult<StoreOutcome> {
        self.hot.store_message(msg, targets).await
    }

    async fn message(&self, id: MessageId) -> StoreResult<Option<Message>> {
        let row = sqlx::query(&format!("SELECT {MSG_COLS} FROM messages m WHERE m.id = ?"))
            .bind(id_blob(id))
            .fetch_optional(&self.pool)
            .await
            .map_err(be)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut msg = [message_from_row(&row)?];
        self.load_reactions(&mut msg).await?;
        let [msg] = msg;
        Ok(Some(msg))
    }

    async fn dm_history(
        &self,
        a: UserId,
        b: UserId,
        before: Option<MessageId>,
        skip: u64,
        take: u64,
    ) -> StoreResult<Vec<Message>> {
        let (lo, hi) = pair(a, b);
        self.history_rows(
            "m.dm_lo = ?1 AND m.dm_hi = ?2",
            &[lo, hi],
            before,
            skip,
            take,
        )
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

    async fn mark_delivered(&self, ids: &[MessageId]) -> StoreResult<Vec<MessageId>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.hot.mark_delivered(ids).await
    }

    async fn mark_read(&self, id: MessageId) -> StoreResult<(bool, bool)> {
        let id = id_blob(id);
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(be)?;
        let delivered =
            sqlx::query("UPDATE messages SET delivered = 1 WHERE id = ? AND delivered = 0")
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(be)?;
        let read = sqlx::query("UPDATE messages SET read = 1 WHERE id = ? AND read = 0")
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(be)?;
        tx.commit().await.map_err(be)?;
        Ok((delivered.rows_affected() == 1, read.rows_affected() == 1))
    }

    async fn chat_history(
        &self,
        chat_id: i64,
        before: Option<MessageId>,
        skip: u64,
        take: u64,
    ) -> StoreResult<Vec<Message>> {
        self.chat_history_page(chat_id, before, skip, take).await
    }

    async fn chat_count(&self, chat_id: i64) -> StoreResult<u64> {
        self.chat_total(chat_id).await
    }

    async fn edit_message(&self, id: MessageId, payload: &str, at: Timestamp) -> StoreResult<bool> {
        self.edit(id, payload, at).await
    }

    async fn delete_message(&self, id: MessageId) -> StoreResult<bool> {
        self.delete(id).await
    }

    async fn set_pinned(&self, id: MessageId, pinned: bool) -> StoreResult<bool> {
        self.pin(id, pinned).await
    }

    async fn set_reaction(
        &self,
        id: MessageId,
        user: UserId,
        reaction: Option<&str>,
    ) -> StoreResult<bool> {
        self.react(id, user, reaction).await
    }
}

/// Rows per statement of `purge_messages`.
const PURGE_BATCH: i64 = 1000;

impl SqliteStore {
    /// Trims one queue (see [`QueueStore::trim_queues`]) in one IMMEDIATE transaction; returns
    /// the new gap's seq.
    async fn trim_queue(
        &self,
        session: i64,
        max_len: u64,
        expire_before: Timestamp,
    ) -> StoreResult<Option<i64>> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(be)?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM queue WHERE session_id = ?")
            .bind(session)
            .fetch_one(&mut *tx)
            .await
            .map_err(be)?;
        let n = n.max(0) as u64;
        let overflow = if n > max_len { n - max_len + 1 } else { 0 };
        // Entries are dropped up to (excluding) `end`: past the overflow ones and past the
        // leading run of gaps and expired entries, whichever reaches further.
        let overflow_end = match overflow {
            0 => i64::MIN,
            k if k >= n => i64::MAX,
            k => {
                let last: i64 = sqlx::query_scalar(
                    "SELECT seq FROM queue WHERE session_id = ? ORDER BY seq LIMIT 1 OFFSET ?",
                )
                .bind(session)
                .bind(clamp(k - 1))
                .fetch_one(&mut *tx)
                .await
                .map_err(be)?;
                last + 1
            }
        };
        // The first entry that is neither a gap nor expired ends the expired run.
        let kept: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM queue WHERE session_id = ? AND gap_from IS NULL \
             AND created_at >= ? ORDER BY seq LIMIT 1",
        )
        .bind(session)
        .bind(expire_before.millis())
        .fetch_optional(&mut *tx)
        .await
        .map_err(be)?;
        let end = overflow_end.max(kept.unwrap_or(i64::MAX));
        let row = sqlx::query(
            "SELECT COUNT(*) - COUNT(gap_from) AS entries, COALESCE(SUM(gap_count), 0) AS merged, \
             MIN(seq) AS first, MIN(gap_from) AS gap_first, MAX(seq) AS last \
             FROM queue WHERE session_id = ? AND seq < ?",
        )
        .bind(session)
        .bind(end)
        .fetch_one(&mut *tx)
        .await
        .map_err(be)?;
        let entries: i64 = row.try_get("entries").map_err(be)?;
        let first: Option<i64> = row.try_get("first").map_err(be)?;
        let last: Option<i64> = row.try_get("last").map_err(be)?;
        // Nothing but gaps (or nothing) to drop: a gap alone never expires.
        let (Some(first), Some(last), true) = (first, last, entries > 0) else {
            tx.rollback().await.map_err(be)?;
            return Ok(None);
        };
        let merged: i64 = row.try_get("merged").map_err(be)?;
        let gap_first: Option<i64> = row.try_get("gap_first").map_err(be)?;
        let at = Timestamp::now();
        sqlx::query("DELETE FROM queue WHERE session_id = ? AND seq < ?")
            .bind(session)
            .bind(end)
            .execute(&mut *tx)
            .await
            .map_err(be)?;
        sqlx::query(
            "INSERT INTO queue (session_id, seq, gap_from, gap_count, gap_overflow, gap_at, \
             created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        )
        .bind(session)
        .bind(last)
        .bind(gap_first.map_or(first, |g| g.min(first)))
        .bind(entries + merged)
        .bind(overflow > 0)
        .bind(at.millis())
        .execute(&mut *tx)
        .await
        .map_err(be)?;
        tx.commit().await.map_err(be)?;
        Ok(Some(last))
    }
}

#[async_trait]
impl QueueStore for SqliteStore {
    async fn enqueue_events(&self, events: &[(SessionId, Bytes)]) -> StoreResult<Vec<i64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.hot.enqueue_events(events).await
    }

    async fn queue_after(
        &self,
        session: SessionId,
        after: i64,
        upto: Option<i64>,
        limit: u64,
    ) -> StoreResult<Vec<QueuedEntry>> {
        let rows = sqlx::query(&format!(
            "SELECT q.seq, q.self_copy, q.event, q.gap_from, q.gap_count, q.gap_overflow, \
             q.gap_at, {MSG_COLS} FROM queue q \
             LEFT JOIN messages m ON m.id = q.message_id \
             WHERE q.session_id = ? AND q.seq > ? AND q.seq <= ? ORDER BY q.seq LIMIT ?"
        ))
        .bind(session.0)
        .bind(after)
        .bind(upto.unwrap_or(i64::MAX))
        .bind(clamp(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let seq: i64 = r.try_get("seq").map_err(be)?;
            let event: Option<Vec<u8>> = r.try_get("event").map_err(be)?;
            let gap_from: Option<i64> = r.try_get("gap_from").map_err(be)?;
            let message_found = r.try_get::<Option<&[u8]>, _>("id").map_err(be)?.is_some();
            let item = match (event, gap_from) {
                (Some(e), _) => QueueItem::Event(Bytes::from(e)),
                (None, Some(from_seq)) => QueueItem::Gap(gap_from_row(r, from_seq)?),
                // The purge keeps queued messages; should one be missing, its entry is skipped.
                (None, None) if !message_found => continue,
                (None, None) => QueueItem::Message {
                    message: message_from_row(r)?,
                    self_copy: r.try_get::<i64, _>("self_copy").map_err(be)? != 0,
                },
            };
            out.push(QueuedEntry { seq, item });
        }
        self.queue_reactions(&mut out).await?;
        Ok(out)
    }

    async fn ack(&self, session: SessionId, sel: AckSelector) -> StoreResult<Vec<AckedEntry>> {
        self.hot.ack(session, sel).await
    }

    async fn last_seq(&self, session: SessionId) -> StoreResult<i64> {
        let n: Option<i64> =
            sqlx::query_scalar("SELECT last_seq FROM queue_seq WHERE session_id = ?")
                .bind(session.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(be)?;
        Ok(n.unwrap_or(0))
    }

    async fn drop_queue(&self, session: SessionId) -> StoreResult<()> {
        // `queue_seq` stays: a session's seqs are never reused.
        sqlx::query("DELETE FROM queue WHERE session_id = ?")
            .bind(session.0)
            .execute(&self.writer)
            .await
            .map_err(be)?;
        Ok(())
    }

    async fn trim_queues(
        &self,
        max_len: u64,
        expire_before: Timestamp,
    ) -> StoreResult<Vec<(SessionId, i64)>> {
        // Candidates in one pass over the queue's primary key; each is re-checked in its own
        // transaction, since entries may have been acked or appended meanwhile.
        let candidates: Vec<i64> = sqlx::query_scalar(
            "SELECT session_id FROM queue GROUP BY session_id \
             HAVING COUNT(*) > ?1 OR MIN(CASE WHEN gap_from IS NULL THEN created_at END) < ?2",
        )
        .bind(clamp(max_len))
        .bind(expire_before.millis())
        .fetch_all(&self.writer)
        .await
        .map_err(be)?;
        let mut gaps = Vec::new();
        for session in candidates {
            if let Some(seq) = self.trim_queue(session, max_len, expire_before).await? {
                gaps.push((SessionId(session), seq));
            }
        }
        Ok(gaps)
    }

    async fn purge_messages(
        &self,
        history_before: Timestamp,
        dedupe_before: Timestamp,
    ) -> StoreResult<u64> {
        // In batches, each its own short write, so the sweep never holds the write lock long.
        // The `messages_delete_reactions` trigger deletes the reactions of each purged message.
        let mut deleted = 0;
        loop {
            let n = sqlx::query(
                "DELETE FROM messages WHERE id IN (SELECT m.id FROM messages m \
                 WHERE m.created_at < ?1 \
                 AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.message_id = m.id) LIMIT ?2)",
            )
            .bind(history_before.millis())
            .bind(PURGE_BATCH)
            .execute(&self.writer)
            .await
            .map_err(be)?
            .rows_affected();
            deleted += n;
            if n < PURGE_BATCH as u64 {
                break;
            }
        }
        loop {
            let n = sqlx::query(
                "UPDATE messages SET client_id = NULL WHERE id IN (SELECT id FROM messages \
                 WHERE created_at < ?1 AND client_id IS NOT NULL LIMIT ?2)",
            )
            .bind(dedupe_before.millis())
            .bind(PURGE_BATCH)
            .execute(&self.writer)
            .await
            .map_err(be)?
            .rows_affected();
            if n < PURGE_BATCH as u64 {
                break;
            }
        }
        Ok(deleted)
    }
}
