//! The queue primitives the group-commit writer of `mysql_writer.rs` runs inside its
//! transactions: [`append`] (seq allocation and queue rows) and [`ack_on`] (one acknowledgement).
//!
//! Seqs: each session's counter row in `queue_seq` is bumped with `INSERT … ON DUPLICATE KEY
//! UPDATE` (which keeps the row locked until COMMIT) and read back with `SELECT … FOR UPDATE`, so
//! appends to one session are serialized and their seqs are gap-free and increasing; counters are
//! touched in ascending session order so concurrent fan-outs lock them in one order. Acks read the
//! entries they remove with `FOR UPDATE` and delete exactly those (MySQL has no `DELETE …
//! RETURNING`).

use std::collections::BTreeMap;

use sqlx::mysql::MySqlRow;
use sqlx::{MySqlConnection, Row};

use super::messages::{id_blob, id_of};
use super::{be, marks, TxResult};
use crate::model::{AckSelector, AckedEntry, SessionId, Timestamp};
use crate::store::{StoreError, StoreResult};

/// Queue rows per INSERT statement (6 parameters each).
const INSERT_CHUNK: usize = 1000;
/// Values per `IN (…)` list.
const IN_CHUNK: usize = 500;

/// One queue entry to append: its session, self-copy flag, message id or event.
pub(super) struct Slot<'a> {
    pub(super) session: i64,
    pub(super) self_copy: bool,
    pub(super) message: Option<&'a [u8]>,
    pub(super) event: Option<&'a [u8]>,
}

/// Appends `slots` inside the caller's transaction; returns the seq of each, in order.
pub(super) async fn append(
    conn: &mut MySqlConnection,
    slots: &[Slot<'_>],
    at: Timestamp,
) -> TxResult<Vec<i64>> {
    if slots.is_empty() {
        return Ok(Vec::new());
    }
    // Ascending session order: concurrent appends lock counters in one order.
    let mut counts: BTreeMap<i64, i64> = BTreeMap::new();
    for s in slots {
        *counts.entry(s.session).or_default() += 1;
    }
    let counts: Vec<(i64, i64)> = counts.into_iter().collect();
    let mut next: BTreeMap<i64, i64> = BTreeMap::new();
    for chunk in counts.chunks(IN_CHUNK) {
        let sql = format!(
            "INSERT INTO queue_seq (session_id, last_seq) VALUES {} \
             ON DUPLICATE KEY UPDATE last_seq = last_seq + VALUES(last_seq)",
            vec!["(?, ?)"; chunk.len()].join(",")
        );
        let mut q = sqlx::query(&sql);
        for (session, n) in chunk {
            q = q.bind(*session).bind(*n);
        }
        q.execute(&mut *conn).await?;
        let sql = format!(
            "SELECT session_id, last_seq FROM queue_seq WHERE session_id IN ({}) FOR UPDATE",
            marks(chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for (session, _) in chunk {
            q = q.bind(*session);
        }
        for r in q.fetch_all(&mut *conn).await? {
            let session: i64 = r.try_get("session_id")?;
            let last: i64 = r.try_get("last_seq")?;
            next.insert(session, last);
        }
    }
    // Per session, the first seq of this append: the new last_seq minus the count, plus one.
    for (session, n) in &counts {
        let last = next
            .get_mut(session)
            .ok_or_else(|| StoreError::Backend("queue_seq upsert skipped a session".into()))?;
        *last = *last - n + 1;
    }
    let mut seqs = Vec::with_capacity(slots.len());
    for s in slots {
        let seq = next
            .get_mut(&s.session)
            .ok_or_else(|| StoreError::Backend("queue_seq upsert skipped a session".into()))?;
        seqs.push(*seq);
        *seq += 1;
    }
    for (chunk, chunk_seqs) in slots.chunks(INSERT_CHUNK).zip(seqs.chunks(INSERT_CHUNK)) {
        let sql = format!(
            "INSERT INTO queue (session_id, seq, message_id, self_copy, event, created_at) \
             VALUES {}",
            vec!["(?, ?, ?, ?, ?, ?)"; chunk.len()].join(",")
        );
        let mut q = sqlx::query(&sql);
        for (s, seq) in chunk.iter().zip(chunk_seqs) {
            q = q
                .bind(s.session)
                .bind(*seq)
                .bind(s.message)
                .bind(s.self_copy)
                .bind(s.event)
                .bind(at.millis());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(seqs)
}

fn acked_entry(r: &MySqlRow) -> StoreResult<AckedEntry> {
    let message: Option<Vec<u8>> = r.try_get("message_id").map_err(be)?;
    Ok(AckedEntry {
        seq: r.try_get("seq").map_err(be)?,
        message_id: message.map(|_| id_of(r, "message_id")).transpose()?,
        self_copy: r.try_get("self_copy").map_err(be)?,
    })
}

/// [`QueueStore::ack`] inside the caller's transaction.
pub(super) async fn ack_on(
    conn: &mut MySqlConnection,
    session: SessionId,
    sel: AckSelector,
) -> TxResult<Vec<AckedEntry>> {
    let query = match sel {
        AckSelector::UpTo(n) => sqlx::query(
            "SELECT seq, message_id, self_copy FROM queue WHERE session_id = ? \
                 AND seq <= ? ORDER BY seq FOR UPDATE",
        )
        .bind(session.0)
        .bind(n),
        AckSelector::Seq(n) => sqlx::query(
            "SELECT seq, message_id, self_copy FROM queue WHERE session_id = ? \
                 AND seq = ? FOR UPDATE",
        )
        .bind(session.0)
        .bind(n),
        AckSelector::Message(id) => sqlx::query(
            "SELECT seq, message_id, self_copy FROM queue WHERE session_id = ? \
                 AND message_id = ? ORDER BY seq FOR UPDATE",
        )
        .bind(session.0)
        .bind(id_blob(id)),
    };
    let rows = query.fetch_all(&mut *conn).await?;
    let acked = rows
        .iter()
        .map(acked_entry)
        .collect::<StoreResult<Vec<_>>>()?;
    for chunk in acked.chunks(IN_CHUNK) {
        let sql = format!(
            "DELETE FROM queue WHERE session_id = ? AND seq IN ({})",
            marks(chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(session.0);
        for e in chunk {
            q = q.bind(e.seq);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(acked)
}
