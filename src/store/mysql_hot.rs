//! The hot writes of [`MysqlStore`](super::MysqlStore), each alone in a transaction of its own:
//! what the group-commit writer of `mysql_writer.rs` falls back to when a batch keeps failing,
//! plus [`append`], which the writer's batches share.
//!
//! Seqs: each session's counter row in `queue_seq` is bumped with `INSERT … ON DUPLICATE KEY
//! UPDATE` (which keeps the row locked until COMMIT) and read back with `SELECT … FOR UPDATE`, so
//! appends to one session are serialized and their seqs are gap-free and increasing; counters are
//! touched in ascending session order so concurrent fan-outs lock them in one order. Acks read the
//! entries they remove with `FOR UPDATE` and delete exactly those (MySQL has no `DELETE …
//! RETURNING`).

use std::collections::BTreeMap;

use bytes::Bytes;
use sqlx::mysql::MySqlRow;
use sqlx::{MySqlConnection, MySqlPool, Row};

use super::messages::{id_blob, id_of};
use super::{be, marks, TxResult};
use crate::model::{
    AckSelector, AckedEntry, MessageId, NewMessage, QueueTarget, SessionId, StoreOutcome, Timestamp,
};
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

/// The message of the sender's device with this `client_id`; `lock` reads the newest committed
/// row (after a duplicate-key error) rather than the transaction's snapshot.
async fn client_id_owner(
    conn: &mut MySqlConnection,
    msg: &NewMessage,
    client_id: &str,
    lock: bool,
) -> TxResult<Option<MessageId>> {
    let sql = if lock {
        "SELECT id FROM messages WHERE sender_session = ? AND client_id = ? FOR UPDATE"
    } else {
        "SELECT id FROM messages WHERE sender_session = ? AND client_id = ?"
    };
    let row = sqlx::query(sql)
        .bind(msg.sender_session.0)
        .bind(client_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.as_ref().map(|r| id_of(r, "id")).transpose()?)
}

fn acked_entry(r: &MySqlRow) -> StoreResult<AckedEntry> {
    let message: Option<Vec<u8>> = r.try_get("message_id").map_err(be)?;
    Ok(AckedEntry {
        seq: r.try_get("seq").map_err(be)?,
        message_id: message.map(|_| id_of(r, "message_id")).transpose()?,
        self_copy: r.try_get("self_copy").map_err(be)?,
    })
}

/// One run of [`MessageStore::store_message`] alone in its own transaction.
pub(super) async fn store_tx(
    pool: &MySqlPool,
    msg: &NewMessage,
    targets: &[QueueTarget],
) -> TxResult<StoreOutcome> {
    let mut tx = pool.begin().await?;
    if let Some(cid) = &msg.client_id {
        if let Some(first) = client_id_owner(&mut tx, msg, cid, false).await? {
            tx.rollback().await?;
            return Ok(StoreOutcome::Duplicate(first));
        }
    }
    let m = &msg.message;
    let id = id_blob(m.id);
    let inserted = sqlx::query(
        "INSERT INTO messages (id, from_uid, to_uid, chat_id, payload, signature, \
             created_at, delivered, is_read, sender_session, client_id) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        Err(e) if super::is_unique_violation(&e) => {
            // A concurrent send with the same client_id committed first (the INSERT waited
            // for it), or the id is taken.
            if let Some(cid) = &msg.client_id {
                if let Some(first) = client_id_owner(&mut tx, msg, cid, true).await? {
                    tx.rollback().await?;
                    return Ok(StoreOutcome::Duplicate(first));
                }
            }
            tx.rollback().await?;
            return Err(StoreError::Conflict("message_id").into());
        }
        Err(e) => return Err(e.into()),
    }
    let slots: Vec<Slot<'_>> = targets
        .iter()
        .map(|t| Slot {
            session: t.session.0,
            self_copy: t.self_copy,
            message: Some(&id),
            event: None,
        })
        .collect();
    // Queue time is now: `trim_queues` expires entries by it.
    let seqs = append(&mut tx, &slots, Timestamp::now()).await?;
    tx.commit().await?;
    Ok(StoreOutcome::Stored(seqs))
}

/// One run of [`MessageStore::mark_delivered`] alone in its own transaction.
pub(super) async fn delivered_tx(pool: &MySqlPool, ids: &[MessageId]) -> TxResult<Vec<MessageId>> {
    let mut tx = pool.begin().await?;
    let mut flipped = std::collections::HashSet::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let list = marks(chunk.len());
        let sql =
            format!("SELECT id FROM messages WHERE id IN ({list}) AND delivered = 0 FOR UPDATE");
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id_blob(*id));
        }
        let rows = q.fetch_all(&mut *tx).await?;
        let found = rows
            .iter()
            .map(|r| id_of(r, "id"))
            .collect::<StoreResult<Vec<_>>>()?;
        if found.is_empty() {
            continue;
        }
        let sql = format!(
            "UPDATE messages SET delivered = 1 WHERE id IN ({})",
            marks(found.len())
        );
        let mut q = sqlx::query(&sql);
        for id in &found {
            q = q.bind(id_blob(*id));
        }
        q.execute(&mut *tx).await?;
        flipped.extend(found);
    }
    tx.commit().await?;
    // Input order, each flipped id once.
    Ok(ids
        .iter()
        .copied()
        .filter(|id| flipped.remove(id))
        .collect())
}

/// One run of [`QueueStore::ack`] alone in its own transaction.
pub(super) async fn ack_tx(
    pool: &MySqlPool,
    session: SessionId,
    sel: AckSelector,
) -> TxResult<Vec<AckedEntry>> {
    let mut tx = pool.begin().await?;
    let acked = ack_on(&mut tx, session, sel).await?;
    tx.commit().await?;
    Ok(acked)
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

/// One run of [`QueueStore::enqueue_events`] alone in its own transaction.
pub(super) async fn enqueue_tx(
    pool: &MySqlPool,
    events: &[(SessionId, Bytes)],
) -> TxResult<Vec<i64>> {
    let mut tx = pool.begin().await?;
    let slots: Vec<Slot<'_>> = events
        .iter()
        .map(|(s, e)| Slot {
            session: s.0,
            self_copy: false,
            message: None,
            event: Some(e),
        })
        .collect();
    let seqs = append(&mut tx, &slots, Timestamp::now()).await?;
    tx.commit().await?;
    Ok(seqs)
}
