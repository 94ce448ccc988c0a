//! [`MessageStore`] and [`QueueStore`] of [`MysqlStore`].
//!
//! Message ids are `BINARY(16)` big-endian, so `ORDER BY id` is time order.
//!
//! The hot writes (`store_message`, `ack`, `mark_delivered`, `enqueue_events`) are group-committed
//! by the writer task of `mysql_writer.rs` (seqs and locking: `mysql_hot.rs`); the cold ones run
//! here, each in one statement or one transaction.

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::mysql::MySqlRow;
use sqlx::Row;

use super::{be, clamp, opt_text_of, pair, text_of, uid_of, MysqlStore};
use crate::model::{
    AckSelector, AckedEntry, Gap, Message, MessageId, NewMessage, QueueItem, QueueTarget,
    QueuedEntry, SessionId, StoreOutcome, Timestamp, UserId,
};
use crate::store::{MessageStore, QueueStore, StoreError, StoreResult};

pub(super) const MSG_COLS: &str = "m.id, m.from_uid, m.to_uid, m.chat_id, m.payload, \
     m.signature, m.created_at, m.delivered, m.is_read, m.edited_at, m.deleted, m.pinned";

pub(super) fn id_blob(id: MessageId) -> Vec<u8> {
    id.as_u128().to_be_bytes().to_vec()
}

pub(super) fn id_of(row: &MySqlRow, col: &str) -> StoreResult<MessageId> {
    let b: Vec<u8> = row.try_get(col).map_err(be)?;
    <[u8; 16]>::try_from(b.as_slice())
        .map(|a| MessageId::from_u128(u128::from_be_bytes(a)))
        .map_err(|_| StoreError::Backend(format!("corrupt message id in column {col}").into()))
}

fn opt_uid_of(row: &MySqlRow, col: &str) -> StoreResult<Option<UserId>> {
    let n: Option<i64> = row.try_get(col).map_err(be)?;
    n.map(|_| uid_of(row, col)).transpose()
}

/// A message from the columns of [`MSG_COLS`], without its reactions (see `load_reactions`).
pub(super) fn message_from_row(row: &MySqlRow) -> StoreResult<Message> {
    let edited_at: Option<i64> = row.try_get("edited_at").map_err(be)?;
    Ok(Message {
        id: id_of(row, "id")?,
        from: uid_of(row, "from_uid")?,
        to: opt_uid_of(row, "to_uid")?,
        chat_id: row.try_get("chat_id").map_err(be)?,
        payload: text_of(row, "payload")?,
        signature: opt_text_of(row, "signature")?,
        created_at: Timestamp::from_millis(row.try_get("created_at").map_err(be)?),
        delivered: row.try_get("delivered").map_err(be)?,
        read: row.try_get("is_read").map_err(be)?,
        edited_at: edited_at.map(Timestamp::from_millis),
        deleted: row.try_get("deleted").map_err(be)?,
        pinned: row.try_get("pinned").map_err(be)?,
        reactions: Default::default(),
    })
}

fn gap_from_row(row: &MySqlRow, from_seq: i64) -> StoreResult<Gap> {
    let count: i64 = row.try_get("gap_count").map_err(be)?;
    Ok(Gap {
        from_seq,
        count: count.max(0) as u64,
        overflow: row.try_get("gap_overflow").map_err(be)?,
        at: Timestamp::from_millis(row.try_get("gap_at").map_err(be)?),
    })
}

#[async_trait]
impl MessageStore for MysqlStore {
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
        self.history_rows("m.dm_lo = ? AND m.dm_hi = ?", &[lo, hi], before, skip, take)
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
        let id = &id_blob(id);
        self.retry(move || async move {
            let mut tx = self.pool.begin().await?;
            let row =
                sqlx::query("SELECT delivered, is_read FROM messages WHERE id = ? FOR UPDATE")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(row) = row else {
                tx.rollback().await?;
                return Ok((false, false));
            };
            let delivered: bool = row.try_get("delivered")?;
            let read: bool = row.try_get("is_read")?;
            if !(delivered && read) {
                sqlx::query("UPDATE messages SET delivered = 1, is_read = 1 WHERE id = ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok((!delivered, !read))
        })
        .await
    }

    async fn chat_history(
        &self,
        chat_id: i64,
        before: Option<MessageId>,
        skip: u64,
        take: u64,
    ) -> StoreResult<Vec<Message>> {
        self.history_rows("m.chat_id = ?", &[chat_id], before, skip, take)
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

#[async_trait]
impl QueueStore for MysqlStore {
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
            let message_found = r.try_get::<Option<Vec<u8>>, _>("id").map_err(be)?.is_some();
            let item = match (event, gap_from) {
                (Some(e), _) => QueueItem::Event(Bytes::from(e)),
                (None, Some(from_seq)) => QueueItem::Gap(gap_from_row(r, from_seq)?),
                // The purge keeps queued messages; should one be missing, its entry is skipped.
                (None, None) if !message_found => continue,
                (None, None) => QueueItem::Message {
                    message: message_from_row(r)?,
                    self_copy: r.try_get("self_copy").map_err(be)?,
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
        self.retry(move || async move {
            sqlx::query("DELETE FROM queue WHERE session_id = ?")
                .bind(session.0)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn trim_queues(
        &self,
        max_len: u64,
        expire_before: Timestamp,
    ) -> StoreResult<Vec<(SessionId, i64)>> {
        self.trim_all(max_len, expire_before).await
    }

    async fn purge_messages(
        &self,
        history_before: Timestamp,
        dedupe_before: Timestamp,
    ) -> StoreResult<u64> {
        self.purge(history_before, dedupe_before).await
    }
}
