//! [`DeliveryStore`] and [`QueueStore`] of [`MysqlStore`]: the device queues.
//!
//! The hot writes (`store_message`, `enqueue`, `ack`) are group-committed by the writer task of
//! `writer.rs` (its statements: `hot.rs`); the reads and the cold writes run here, each in one
//! statement or one transaction. Trimming and the retention purge: `retention.rs`.

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::mysql::MySqlRow;

use super::messages::{fitting, MESSAGE_BYTES};
use super::{be, MysqlStore};
use crate::model::{
    Acks, MessageId, NewEntry, NewMessage, QueueItem, QueueTarget, QueuedEntry, SessionId,
    StoreOutcome, Timestamp,
};
use crate::store::sql::rows::{self, clamp, id_blob, Cells, MESSAGE_COLS};
use crate::store::{DeliveryStore, QueueRows, QueueStore, StoreResult};

/// The range of a queue read over `q`: session, after, upto (inclusive), then `LIMIT`.
const RANGE: &str = "q.session_id = ? AND q.seq > ? AND q.seq <= ? ORDER BY q.seq LIMIT ?";

/// One queue row of a read, or `None` for a message entry whose message is gone (the purge
/// keeps queued messages; should one be missing, its entry is skipped).
fn entry(r: &MySqlRow) -> StoreResult<Option<QueuedEntry>> {
    let seq = r.int("seq")?;
    let item = if let Some(e) = r.opt_bytes("event")? {
        QueueItem::Event(Bytes::from(e))
    } else if let Some(s) = r.opt_bytes("status")? {
        QueueItem::Status(Bytes::from(s))
    } else if let Some(from_seq) = r.opt_int("gap_from")? {
        QueueItem::Gap(rows::gap(r, from_seq)?)
    } else if r.opt_bytes("id")?.is_none() {
        return Ok(None);
    } else {
        QueueItem::Message {
            message: rows::message(r)?,
            self_copy: r.flag("self_copy")?,
        }
    };
    Ok(Some(QueuedEntry { seq, item }))
}

#[async_trait]
impl DeliveryStore for MysqlStore {
    async fn store_message(
        &self,
        msg: &NewMessage,
        targets: &[QueueTarget],
    ) -> StoreResult<StoreOutcome> {
        self.hot.store_message(msg, targets).await
    }

    async fn enqueue(&self, entries: &[(SessionId, NewEntry)]) -> StoreResult<Vec<i64>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        self.hot.enqueue(entries).await
    }

    async fn ack(&self, session: SessionId, acks: &Acks) -> StoreResult<Vec<i64>> {
        if acks.is_empty() && acks.receipts.is_empty() && acks.delivered.is_empty() {
            return Ok(Vec::new());
        }
        self.hot.ack(session, acks).await
    }

    async fn mark_read(&self, id: MessageId) -> StoreResult<(bool, bool)> {
        let id = &id_blob(id);
        self.retry(move || async move {
            let mut tx = self.pool.begin().await?;
            let row =
                sqlx::query("SELECT delivered, is_read FROM messages WHERE id = ? FOR UPDATE")
                    .bind(&id[..])
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(row) = row else {
                tx.rollback().await?;
                return Ok((false, false));
            };
            let (delivered, read) = (row.flag("delivered")?, row.flag("is_read")?);
            if !(delivered && read) {
                sqlx::query("UPDATE messages SET delivered = 1, is_read = 1 WHERE id = ?")
                    .bind(&id[..])
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok((!delivered, !read))
        })
        .await
    }

    async fn queue_after(
        &self,
        session: SessionId,
        after: i64,
        upto: Option<i64>,
        limit: u64,
        max_bytes: u64,
    ) -> StoreResult<QueueRows> {
        let upto = upto.unwrap_or(i64::MAX);
        if limit == 0 || upto <= after {
            return Ok(QueueRows::default());
        }
        // The seqs and content sizes in range (no payload, event or receipt is sent)...
        let sizes = sqlx::query(&format!(
            "SELECT q.seq AS seq, CASE WHEN q.message_id IS NOT NULL \
               THEN COALESCE({MESSAGE_BYTES}, 0) \
               ELSE CAST(COALESCE(LENGTH(q.event), LENGTH(q.status), 0) AS SIGNED) END AS size \
             FROM queue q LEFT JOIN messages m ON m.id = q.message_id WHERE {RANGE}"
        ))
        .bind(session.0)
        .bind(after)
        .bind(upto)
        .bind(clamp(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(be)?
        .iter()
        .map(|r| Ok((r.int("seq")?, r.int("size")?.max(0) as u64)))
        .collect::<StoreResult<Vec<_>>>()?;
        let (n, cut) = fitting(sizes.iter().map(|(_, size)| *size), max_bytes);
        let Some(&(last, _)) = sizes.get(n.wrapping_sub(1)) else {
            return Ok(QueueRows::default());
        };
        // ... then the entries that fit. Seqs of a session are committed in order, so the
        // range holds no entry the first statement did not see (some may be acked meanwhile).
        let rows = sqlx::query(&format!(
            "SELECT q.seq AS seq, q.self_copy AS self_copy, q.event AS event, \
             q.status AS status, q.gap_from AS gap_from, q.gap_count AS gap_count, \
             q.gap_overflow AS gap_overflow, q.gap_at AS gap_at, {MESSAGE_COLS} \
             FROM queue q LEFT JOIN messages m ON m.id = q.message_id WHERE {RANGE}"
        ))
        .bind(session.0)
        .bind(after)
        .bind(last)
        .bind(clamp(n as u64))
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        let mut entries = Vec::with_capacity(rows.len());
        for r in &rows {
            entries.extend(entry(r)?);
        }
        // A message edited between the two statements may have grown: the bound holds.
        let (keep, shrunk) = fitting(entries.iter().map(QueuedEntry::content_bytes), max_bytes);
        entries.truncate(keep);
        self.queue_reactions(&mut entries).await?;
        Ok(QueueRows {
            entries,
            cut: cut || shrunk,
        })
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

    async fn queue_seqs(&self, session: SessionId, after: i64, upto: i64) -> StoreResult<Vec<i64>> {
        sqlx::query_scalar(
            "SELECT seq FROM queue WHERE session_id = ? AND seq > ? AND seq <= ? ORDER BY seq",
        )
        .bind(session.0)
        .bind(after)
        .bind(upto)
        .fetch_all(&self.pool)
        .await
        .map_err(be)
    }
}

#[async_trait]
impl QueueStore for MysqlStore {
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
