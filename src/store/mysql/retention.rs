//! Queue trimming (`QUEUE_TTL`, `QUEUE_MAX`) and the retention purge of [`MysqlStore`]; the
//! [`QueueStore`](crate::store::QueueStore) impl in `queue.rs` delegates here.

use std::collections::HashSet;

use super::json::{self, ID_TABLE};
use super::{be, MysqlStore, TxResult};
use crate::model::{MessageId, SessionId, Timestamp};
use crate::store::sql::rows::{clamp, Cells};
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
                seq: r.int("seq")?,
                gap_from: r.opt_int("gap_from")?,
                gap_count: r.opt_int("gap_count")?.unwrap_or(0),
                created_at: r.int("created_at")?,
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
        // The old messages a queue entry still references: one pass over the queue (there is
        // no index on `queue.message_id`, whose upkeep would cost every queued copy). A message
        // gets its entries when it is stored, never later, so this set can only shrink.
        let kept: HashSet<MessageId> = sqlx::query(
            "SELECT DISTINCT q.message_id AS id FROM queue q \
             STRAIGHT_JOIN messages m ON m.id = q.message_id WHERE m.created_at < ?",
        )
        .bind(history_before.millis())
        .fetch_all(&self.pool)
        .await
        .map_err(be)?
        .iter()
        .map(|r| r.message_id("id"))
        .collect::<StoreResult<_>>()?;
        // Then the old messages page by page in (created_at, id) order, each page's unqueued
        // ones deleted by one short statement, so the sweep never holds many locks long.
        // Reactions go with their message (foreign key cascade).
        let first = format!(
            "SELECT id, created_at FROM messages WHERE created_at < ? \
             ORDER BY created_at, id LIMIT {PURGE_BATCH}"
        );
        let next = format!(
            "SELECT id, created_at FROM messages WHERE created_at < ? \
             AND (created_at > ? OR (created_at = ? AND id > ?)) \
             ORDER BY created_at, id LIMIT {PURGE_BATCH}"
        );
        let delete = format!("DELETE m FROM {ID_TABLE} j JOIN messages m ON m.id = UNHEX(j.i)");
        let mut deleted = 0;
        let mut cursor: Option<(i64, Vec<u8>)> = None;
        loop {
            let page = match &cursor {
                None => sqlx::query(&first).bind(history_before.millis()),
                Some((at, id)) => sqlx::query(&next)
                    .bind(history_before.millis())
                    .bind(*at)
                    .bind(*at)
                    .bind(id.clone()),
            }
            .fetch_all(&self.pool)
            .await
            .map_err(be)?;
            let mut gone = Vec::with_capacity(page.len());
            for r in &page {
                let id = r.message_id("id")?;
                if !kept.contains(&id) {
                    gone.push(id);
                }
            }
            if !gone.is_empty() {
                let (list, delete) = (&json::ids(&gone)?, &delete);
                deleted += self
                    .retry(move || async move {
                        let r = sqlx::query(delete).bind(list).execute(&self.pool).await?;
                        Ok(r.rows_affected())
                    })
                    .await?;
            }
            match page.last() {
                Some(last) if page.len() as u64 == PURGE_BATCH => {
                    cursor = Some((last.int("created_at")?, last.bytes("id")?));
                }
                _ => break,
            }
        }
        let forget = format!(
            "UPDATE messages SET client_id = NULL WHERE created_at < ? \
             AND client_id IS NOT NULL ORDER BY created_at LIMIT {PURGE_BATCH}"
        );
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
