//! [`DeliveryStore`] and [`QueueStore`] of [`SqliteStore`]: the hot writes go to the writer
//! thread's group commit (`hot.rs`); queue reads step rows on a reader and stop at their byte
//! budget; the sweep trims queues one session per transaction and purges history in batches,
//! so it never holds the write lock long.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{params, Connection};

use super::db::be;
use super::hot::{Hot, HotAnswer};
use super::messages::load_reactions;
use super::rows::{all, exec, id_blob, one};
use super::SqliteStore;
use crate::model::{
    Acks, MessageId, NewEntry, NewMessage, QueueItem, QueueTarget, QueuedEntry, SessionId,
    StoreOutcome, Timestamp,
};
use crate::store::sql::rows::{self as dec, clamp, Cells, MESSAGE_COLS};
use crate::store::{DeliveryStore, QueueRows, QueueStore, StoreError, StoreResult};

/// Rows per statement of the retention purge.
const PURGE_BATCH: i64 = 1000;

fn wrong_answer() -> StoreError {
    StoreError::Backend("sqlite writer answered with the wrong kind".into())
}

/// Entries of a session, ascending, stepping rows until `limit` or the byte budget.
fn queue_rows(
    c: &Connection,
    session: SessionId,
    after: i64,
    upto: i64,
    limit: u64,
    max_bytes: u64,
) -> StoreResult<QueueRows> {
    let sql = format!(
        "SELECT q.seq AS seq, q.self_copy AS self_copy, q.event AS event, q.status AS status, \
         q.gap_from AS gap_from, q.gap_count AS gap_count, q.gap_overflow AS gap_overflow, \
         q.gap_at AS gap_at, {MESSAGE_COLS} FROM queue q \
         LEFT JOIN messages m ON m.id = q.message_id \
         WHERE q.session_id = ?1 AND q.seq > ?2 AND q.seq <= ?3 ORDER BY q.seq LIMIT ?4"
    );
    let mut st = c.prepare_cached(&sql).map_err(be)?;
    let mut rows = st
        .query(params![session.0, after, upto, clamp(limit)])
        .map_err(be)?;
    let mut out = QueueRows::default();
    let mut bytes = 0;
    while let Some(r) = rows.next().map_err(be)? {
        let seq = r.int("seq")?;
        let item = if let Some(e) = r.opt_bytes("event")? {
            QueueItem::Event(Bytes::from(e))
        } else if let Some(s) = r.opt_bytes("status")? {
            QueueItem::Status(Bytes::from(s))
        } else if let Some(from_seq) = r.opt_int("gap_from")? {
            QueueItem::Gap(dec::gap(r, from_seq)?)
        } else if r.opt_bytes("id")?.is_some() {
            QueueItem::Message {
                message: dec::message(r)?,
                self_copy: r.flag("self_copy")?,
            }
        } else {
            // The purge keeps queued messages; should one be missing, its entry is skipped.
            continue;
        };
        let entry = QueuedEntry { seq, item };
        bytes += entry.content_bytes();
        if bytes > max_bytes && !out.entries.is_empty() {
            out.cut = true;
            break;
        }
        out.entries.push(entry);
    }
    drop(rows);
    for e in &mut out.entries {
        if let QueueItem::Message { message, .. } = &mut e.item {
            load_reactions(c, message)?;
        }
    }
    Ok(out)
}

#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn store_message(
        &self,
        msg: &NewMessage,
        targets: &[QueueTarget],
    ) -> StoreResult<StoreOutcome> {
        match self
            .db
            .hot(Hot::Store(msg.clone(), targets.to_vec()))
            .await?
        {
            HotAnswer::Store(outcome) => Ok(outcome),
            HotAnswer::Seqs(_) => Err(wrong_answer()),
        }
    }

    async fn enqueue(&self, entries: &[(SessionId, NewEntry)]) -> StoreResult<Vec<i64>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        match self.db.hot(Hot::Enqueue(entries.to_vec())).await? {
            HotAnswer::Seqs(seqs) => Ok(seqs),
            HotAnswer::Store(_) => Err(wrong_answer()),
        }
    }

    async fn ack(&self, session: SessionId, acks: &Acks) -> StoreResult<Vec<i64>> {
        match self.db.hot(Hot::Ack(session, acks.clone())).await? {
            HotAnswer::Seqs(seqs) => Ok(seqs),
            HotAnswer::Store(_) => Err(wrong_answer()),
        }
    }

    async fn mark_read(&self, id: MessageId) -> StoreResult<(bool, bool)> {
        self.db
            .write(move |t| {
                let id = id_blob(id);
                let delivered = exec(
                    t,
                    "UPDATE messages SET delivered = 1 WHERE id = ?1 AND delivered = 0",
                    [id],
                )?;
                let read = exec(
                    t,
                    "UPDATE messages SET is_read = 1 WHERE id = ?1 AND is_read = 0",
                    [id],
                )?;
                Ok((delivered == 1, read == 1))
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
        self.db
            .read(move |c| queue_rows(c, session, after, upto, limit, max_bytes))
            .await
    }

    async fn last_seq(&self, session: SessionId) -> StoreResult<i64> {
        self.db
            .read(move |c| {
                let n = one(
                    c,
                    "SELECT last_seq FROM queue_seq WHERE session_id = ?1",
                    [session.0],
                    |r| r.int("last_seq"),
                )?;
                Ok(n.unwrap_or(0))
            })
            .await
    }

    async fn queue_seqs(&self, session: SessionId, after: i64, upto: i64) -> StoreResult<Vec<i64>> {
        self.db
            .read(move |c| {
                all(
                    c,
                    "SELECT seq FROM queue WHERE session_id = ?1 AND seq > ?2 AND seq <= ?3 \
                     ORDER BY seq",
                    [session.0, after, upto],
                    |r| r.int("seq"),
                )
            })
            .await
    }
}

/// Trims one queue (see [`QueueStore::trim_queues`]) inside the caller's transaction; the new
/// gap's seq.
fn trim_queue(
    t: &Connection,
    session: i64,
    max_len: u64,
    expire_before: Timestamp,
) -> StoreResult<Option<i64>> {
    let count = |sql: &str, p: &[i64]| -> StoreResult<Option<i64>> {
        one(t, sql, rusqlite::params_from_iter(p), |r| r.opt_int("x")).map(Option::flatten)
    };
    let n = count(
        "SELECT COUNT(*) AS x FROM queue WHERE session_id = ?1",
        &[session],
    )?
    .unwrap_or(0)
    .max(0) as u64;
    let overflow = n
        .saturating_sub(max_len)
        .saturating_add(u64::from(n > max_len));
    // Entries are dropped up to (excluding) `end`: past the overflow ones and past the leading
    // run of gaps and expired entries, whichever reaches further.
    let overflow_end = match overflow {
        0 => i64::MIN,
        k if k >= n => i64::MAX,
        k => {
            let last = count(
                "SELECT seq AS x FROM queue WHERE session_id = ?1 ORDER BY seq LIMIT 1 OFFSET ?2",
                &[session, clamp(k - 1)],
            )?
            .ok_or_else(|| StoreError::Backend("queue shrank inside its transaction".into()))?;
            last + 1
        }
    };
    // The first entry that is neither a gap nor expired ends the expired run.
    let kept = count(
        "SELECT seq AS x FROM queue WHERE session_id = ?1 AND gap_from IS NULL \
         AND created_at >= ?2 ORDER BY seq LIMIT 1",
        &[session, expire_before.millis()],
    )?;
    let end = overflow_end.max(kept.unwrap_or(i64::MAX));
    let span = one(
        t,
        "SELECT COUNT(*) - COUNT(gap_from) AS entries, COALESCE(SUM(gap_count), 0) AS merged, \
         MIN(seq) AS first, MIN(gap_from) AS gap_first, MAX(seq) AS last \
         FROM queue WHERE session_id = ?1 AND seq < ?2",
        [session, end],
        |r| {
            Ok((
                r.int("entries")?,
                r.int("merged")?,
                r.opt_int("first")?,
                r.opt_int("gap_first")?,
                r.opt_int("last")?,
            ))
        },
    )?;
    // Nothing but gaps (or nothing) to drop: a gap alone never expires.
    let Some((entries, merged, Some(first), gap_first, Some(last))) = span else {
        return Ok(None);
    };
    if entries <= 0 {
        return Ok(None);
    }
    let at = Timestamp::now().millis();
    exec(
        t,
        "DELETE FROM queue WHERE session_id = ?1 AND seq < ?2",
        [session, end],
    )?;
    exec(
        t,
        "INSERT INTO queue (session_id, seq, gap_from, gap_count, gap_overflow, gap_at, \
         created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![
            session,
            last,
            gap_first.map_or(first, |g| g.min(first)),
            entries + merged,
            overflow > 0,
            at
        ],
    )?;
    Ok(Some(last))
}

#[async_trait]
impl QueueStore for SqliteStore {
    async fn drop_queue(&self, session: SessionId) -> StoreResult<()> {
        // `queue_seq` stays: a session's seqs are never reused.
        self.db
            .write(move |t| {
                exec(t, "DELETE FROM queue WHERE session_id = ?1", [session.0]).map(drop)
            })
            .await
    }

    async fn trim_queues(
        &self,
        max_len: u64,
        expire_before: Timestamp,
    ) -> StoreResult<Vec<(SessionId, i64)>> {
        // Candidates in one pass over the queue's primary key, on a reader; each is checked
        // again in its own write, since entries may have been acked or appended meanwhile.
        let candidates = self
            .db
            .read(move |c| {
                all(
                    c,
                    "SELECT session_id FROM queue GROUP BY session_id \
                     HAVING COUNT(*) > ?1 OR MIN(CASE WHEN gap_from IS NULL THEN created_at END) < ?2",
                    [clamp(max_len), expire_before.millis()],
                    |r| r.int("session_id"),
                )
            })
            .await?;
        let mut gaps = Vec::new();
        for session in candidates {
            let trimmed = self
                .db
                .write(move |t| trim_queue(t, session, max_len, expire_before))
                .await?;
            if let Some(seq) = trimmed {
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
        // Old messages no queue entry references, found on a reader (one pass over the queue
        // per batch); an old message never gets a queue entry again, so the writer deletes them
        // without looking again. Reactions go with them (trigger `messages_delete_reactions`).
        let mut deleted = 0;
        loop {
            let ids: Vec<Vec<u8>> = self
                .db
                .read(move |c| {
                    all(
                        c,
                        "SELECT id FROM messages WHERE created_at < ?1 AND id NOT IN \
                         (SELECT message_id FROM queue WHERE message_id IS NOT NULL) \
                         ORDER BY created_at LIMIT ?2",
                        [history_before.millis(), PURGE_BATCH],
                        |r| r.bytes("id"),
                    )
                })
                .await?;
            let n = ids.len() as u64;
            if n > 0 {
                self.db
                    .write(move |t| {
                        for id in &ids {
                            exec(t, "DELETE FROM messages WHERE id = ?1", [id])?;
                        }
                        Ok(())
                    })
                    .await?;
            }
            deleted += n;
            if n < PURGE_BATCH as u64 {
                break;
            }
        }
        // `client_id`s older than `dedupe_before` are forgotten; the horizon remembers how far
        // that went, so a pass looks only at messages sent since the last one.
        let from = self.dedupe_horizon.load(Ordering::Relaxed);
        let to = dedupe_before.millis();
        loop {
            let n = self
                .db
                .write(move |t| {
                    exec(
                        t,
                        "UPDATE messages SET client_id = NULL WHERE id IN (SELECT id FROM messages \
                         WHERE created_at >= ?1 AND created_at < ?2 AND client_id IS NOT NULL \
                         LIMIT ?3)",
                        [from, to, PURGE_BATCH],
                    )
                })
                .await?;
            if (n as i64) < PURGE_BATCH {
                break;
            }
        }
        self.dedupe_horizon.fetch_max(to, Ordering::Relaxed);
        Ok(deleted)
    }
}
