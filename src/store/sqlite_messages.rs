//! [`MessageStore`] and [`QueueStore`] of [`SqliteStore`] (schema: `0002_messages.sql`).
//!
//! Message ids are 16-byte big-endian BLOBs, so `ORDER BY id` is time order. Writes that touch
//! several rows run in one `BEGIN IMMEDIATE` transaction and pass their rows as one JSON array
//! bound to a single parameter and expanded by `json_each`: one prepared statement of fixed shape
//! per step whatever the fan-out, instead of one statement per target. Blobs inside that JSON
//! travel as hex and are decoded by `unhex` (SQLite 3.41+; sqlx bundles a newer one).

use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::{be, is_unique_violation, pair, uid_of, SqliteStore};
use crate::model::{
    AckSelector, AckedEntry, Gap, Message, MessageId, NewMessage, QueueItem, QueueTarget,
    QueuedEntry, SessionId, StoreOutcome, Timestamp, UserId,
};
use crate::store::{MessageStore, QueueStore, StoreError, StoreResult};

const MSG_COLS: &str = "m.id, m.from_uid, m.to_uid, m.chat_id, m.payload, m.signature, \
     m.created_at, m.delivered, m.read";

/// Bumps each session's counter by the number of entries it gets (`[[session, count], ..]`) and
/// returns the new highest seq per session.
const ALLOC_SEQS: &str = "INSERT INTO queue_seq (session_id, last_seq) \
     SELECT value ->> 0, value ->> 1 FROM json_each(?1) WHERE true \
     ON CONFLICT(session_id) DO UPDATE SET last_seq = last_seq + excluded.last_seq \
     RETURNING session_id, last_seq";

/// Inserts queue rows `[[session, seq, self_copy, event_hex_or_null], ..]`, all carrying the
/// same `message_id` (NULL for events).
const INSERT_QUEUE: &str =
    "INSERT INTO queue (session_id, seq, message_id, self_copy, event, created_at) \
     SELECT value ->> 0, value ->> 1, ?2, value ->> 2, unhex(value ->> 3), ?3 FROM json_each(?1)";

fn id_blob(id: MessageId) -> Vec<u8> {
    id.as_u128().to_be_bytes().to_vec()
}

fn id_of(row: &SqliteRow, col: &str) -> StoreResult<MessageId> {
    let b: &[u8] = row.try_get(col).map_err(be)?;
    <[u8; 16]>::try_from(b)
        .map(|a| MessageId::from_u128(u128::from_be_bytes(a)))
        .map_err(|_| StoreError::Backend(format!("corrupt message id in column {col}").into()))
}

fn opt_uid_of(row: &SqliteRow, col: &str) -> StoreResult<Option<UserId>> {
    let n: Option<i64> = row.try_get(col).map_err(be)?;
    n.map(|_| uid_of(row, col)).transpose()
}

fn message_from_row(row: &SqliteRow) -> StoreResult<Message> {
    let delivered: i64 = row.try_get("delivered").map_err(be)?;
    let read: i64 = row.try_get("read").map_err(be)?;
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

fn json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(StoreError::backend)
}

fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(char::from(DIGITS[usize::from(x >> 4)]));
        s.push(char::from(DIGITS[usize::from(x & 0x0f)]));
    }
    s
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One queue entry to append.
struct Slot<'a> {
    session: SessionId,
    self_copy: bool,
    event: Option<&'a [u8]>,
}

/// Appends `slots` (all carrying `message`, or each its event) inside the caller's transaction;
/// returns the seq of each slot, in order. Two statements whatever the number of slots.
async fn append(
    conn: &mut SqliteConnection,
    slots: &[Slot<'_>],
    message: Option<&[u8]>,
    at: Timestamp,
) -> StoreResult<Vec<i64>> {
    if slots.is_empty() {
        return Ok(Vec::new());
    }
    let mut counts: HashMap<i64, i64> = HashMap::new();
    for s in slots {
        *counts.entry(s.session.0).or_default() += 1;
    }
    let allocated = sqlx::query(ALLOC_SEQS)
        .bind(json(&counts.iter().collect::<Vec<_>>())?)
        .fetch_all(&mut *conn)
        .await
        .map_err(be)?;
    // Per session, the first seq of this batch: the new last_seq minus the count, plus one.
    let mut next: HashMap<i64, i64> = HashMap::with_capacity(allocated.len());
    for r in &allocated {
        let session: i64 = r.try_get("session_id").map_err(be)?;
        let last: i64 = r.try_get("last_seq").map_err(be)?;
        let count = counts.get(&session).copied().unwrap_or(0);
        next.insert(session, last - count + 1);
    }
    // A session listed several times gets consecutive seqs, in slot order.
    let mut seqs = Vec::with_capacity(slots.len());
    let mut entries = Vec::with_capacity(slots.len());
    for s in slots {
        let seq = next
            .get_mut(&s.session.0)
            .ok_or_else(|| StoreError::Backend("queue_seq upsert skipped a session".into()))?;
        seqs.push(*seq);
        entries.push((s.session.0, *seq, i64::from(s.self_copy), s.event.map(hex)));
        *seq += 1;
    }
    sqlx::query(INSERT_QUEUE)
        .bind(json(&entries)?)
        .bind(message)
        .bind(at.millis())
        .execute(&mut *conn)
        .await
        .map_err(be)?;
    Ok(seqs)
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn store_message(
        &self,
        msg: &NewMessage,
        targets: &[QueueTarget],
    ) -> StoreResult<StoreOutcome> {
        let m = &msg.message;
        let id = id_blob(m.id);
        // IMMEDIATE takes the write lock up front, so the duplicate check below cannot race.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(be)?;
        if let Some(cid) = &msg.client_id {
            let first =
                sqlx::query("SELECT id FROM messages WHERE sender_session = ? AND client_id = ?")
                    .bind(msg.sender_session.0)
                    .bind(cid)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(be)?;
            if let Some(row) = first {
                let first = id_of(&row, "id")?;
                tx.rollback().await.map_err(be)?;
                return Ok(StoreOutcome::Duplicate(first));
            }
        }
        let inserted = sqlx::query(
            "INSERT INTO messages (id, from_uid, to_uid, chat_id, payload, signature, created_at, \
             delivered, read, sender_session, client_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(i64::from(m.from.get()))
        .bind(m.to.map(|u| i64::from(u.get())))
        .bind(m.chat_id)
        .bind(&m.payload)
        .bind(&m.signature)
        .bind(m.created_at.millis())
        .bind(m.delivered)
        .bind(m.read)
        .bind(msg.sender_session.0)
        .bind(&msg.client_id)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(StoreError::Conflict("message_id")),
            Err(e) => return Err(be(e)),
        }
        let slots: Vec<Slot<'_>> = targets
            .iter()
            .map(|t| Slot {
                session: t.session,
                self_copy: t.self_copy,
                event: None,
            })
            .collect();
        // Queue time is now (as for events): `trim_queues` expires entries by it.
        let seqs = append(&mut tx, &slots, Some(&id), Timestamp::now()).await?;
        tx.commit().await.map_err(be)?;
        Ok(StoreOutcome::Stored(seqs))
    }

    async fn message(&self, id: MessageId) -> StoreResult<Option<Message>> {
        let row = sqlx::query(&format!("SELECT {MSG_COLS} FROM messages m WHERE m.id = ?"))
            .bind(id_blob(id))
            .fetch_optional(&self.pool)
            .await
            .map_err(be)?;
        row.as_ref().map(message_from_row).transpose()
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
        // Two statement shapes rather than `(?5 IS NULL OR id < ?5)`, which would hide the
        // range from the index.
        let cursor = if before.is_some() {
            "AND m.id < ?5"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {MSG_COLS} FROM messages m WHERE m.dm_lo = ?1 AND m.dm_hi = ?2 {cursor} \
             ORDER BY m.id DESC LIMIT ?3 OFFSET ?4"
        );
        let mut query = sqlx::query(&sql)
            .bind(lo)
            .bind(hi)
            .bind(clamp(take))
            .bind(clamp(skip));
        if let Some(before) = before {
            query = query.bind(id_blob(before));
        }
        let rows = query.fetch_all(&self.pool).await.map_err(be)?;
        rows.iter().map(message_from_row).collect()
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
        // One atomic statement for any number of ids: a partial failure would lose statuses.
        // A `MessageId` displays as the 32 hex digits of its big-endian bytes, i.e. its key.
        let hex_ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let rows = sqlx::query(
            "UPDATE messages SET delivered = 1 WHERE delivered = 0 \
             AND id IN (SELECT unhex(value) FROM json_each(?)) RETURNING id",
        )
        .bind(json(&hex_ids)?)
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        let mut flipped = rows
            .iter()
            .map(|r| id_of(r, "id"))
            .collect::<StoreResult<std::collections::HashSet<_>>>()?;
        // RETURNING order is unspecified: report in the caller's order, each id once.
        Ok(ids
            .iter()
            .copied()
            .filter(|id| flipped.remove(id))
            .collect())
    }

    async fn mark_read(&self, id: MessageId) -> StoreResult<(bool, bool)> {
        let id = id_blob(id);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(be)?;
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(be)?;
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
        let slots: Vec<Slot<'_>> = events
            .iter()
            .map(|(session, event)| Slot {
                session: *session,
                self_copy: false,
                event: Some(event),
            })
            .collect();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(be)?;
        let seqs = append(&mut tx, &slots, None, Timestamp::now()).await?;
        tx.commit().await.map_err(be)?;
        Ok(seqs)
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
        Ok(out)
    }

    async fn ack(&self, session: SessionId, sel: AckSelector) -> StoreResult<Vec<AckedEntry>> {
        let query = match sel {
            AckSelector::UpTo(n) => sqlx::query(
                "DELETE FROM queue WHERE session_id = ? AND seq <= ? \
                 RETURNING seq, message_id, self_copy",
            )
            .bind(session.0)
            .bind(n),
            AckSelector::Seq(n) => sqlx::query(
                "DELETE FROM queue WHERE session_id = ? AND seq = ? \
                 RETURNING seq, message_id, self_copy",
            )
            .bind(session.0)
            .bind(n),
            AckSelector::Message(id) => sqlx::query(
                "DELETE FROM queue WHERE session_id = ? AND message_id = ? \
                 RETURNING seq, message_id, self_copy",
            )
            .bind(session.0)
            .bind(id_blob(id)),
        };
        // Event and gap rows have no message_id: they ack as `message_id: None`.
        let rows = query.fetch_all(&self.pool).await.map_err(be)?;
        let mut out = rows
            .iter()
            .map(|r| {
                let message: Option<&[u8]> = r.try_get("message_id").map_err(be)?;
                Ok(AckedEntry {
                    seq: r.try_get("seq").map_err(be)?,
                    message_id: message.map(|_| id_of(r, "message_id")).transpose()?,
                    self_copy: r.try_get::<i64, _>("self_copy").map_err(be)? != 0,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        // RETURNING order is unspecified.
        out.sort_by_key(|e| e.seq);
        Ok(out)
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
            .execute(&self.pool)
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
        .fetch_all(&self.pool)
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
        let mut deleted = 0;
        loop {
            let n = sqlx::query(
                "DELETE FROM messages WHERE id IN (SELECT m.id FROM messages m \
                 WHERE m.created_at < ?1 \
                 AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.message_id = m.id) LIMIT ?2)",
            )
            .bind(history_before.millis())
            .bind(PURGE_BATCH)
            .execute(&self.pool)
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
            .execute(&self.pool)
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
