//! Group commit for the hot write paths of [`SqliteStore`](super::SqliteStore).
//!
//! One writer task (spawned when the store is opened, on the current tokio runtime) receives
//! `store_message`, `ack`, `mark_delivered` and `enqueue_events` operations through a bounded
//! channel. It takes the first queued operation, drains whatever else is queued (up to
//! [`MAX_BATCH`]), runs them all in ONE `BEGIN IMMEDIATE … COMMIT` on the single writer
//! connection, and answers each caller only after the COMMIT succeeded: a caller is never told
//! about a write that is not durable.
//!
//! All operations of a batch were pending at the same time, so any order among them is a valid
//! linearization; the batch runs them as: every `store_message` (one duplicate/id probe, one
//! multi-row INSERT, then) together with every `enqueue_events` (one seq upsert and one queue
//! INSERT for all their entries, seqs assigned per session in operation order), then every
//! `mark_delivered` (one UPDATE), then each `ack` (one DELETE each).
//!
//! Errors: a per-operation outcome (`Duplicate`, `Conflict("message_id")`) is decided before any
//! write and answered to that operation alone. Any other failure (a statement or the COMMIT)
//! rolls the whole batch back and re-runs each operation alone in its own transaction, so only
//! the operation that fails gets the error.
//!
//! Cold write paths keep using the same single-connection writer pool; the task holds that
//! connection only while it runs a batch, so they are serialized with it (no `SQLITE_BUSY`).

use std::collections::{HashMap, HashSet};

use sqlx::{Row, SqliteConnection, SqlitePool};
use tokio::sync::mpsc;

use super::be;
use super::messages::{hex, id_blob, id_of, json};
use crate::model::{
    AckSelector, AckedEntry, MessageId, NewMessage, SessionId, StoreOutcome, Timestamp,
};
use crate::store::hot_writer::{
    answer_appends, answer_delivered, mismatch, queue_layout, Op, Req, Resp, Writer, MAX_BATCH,
};
use crate::store::{StoreError, StoreResult};

/// Spawns the writer task on the current tokio runtime; it stops when the last handle is
/// dropped.
pub(super) fn spawn(pool: SqlitePool) -> Writer {
    let (writer, rx) = Writer::channel("sqlite");
    tokio::spawn(run(pool, rx));
    writer
}

async fn run(pool: SqlitePool, mut rx: mpsc::Receiver<Op>) {
    let mut ops = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut ops, MAX_BATCH).await > 0 {
        let (reqs, replies): (Vec<Req>, Vec<_>) = ops.drain(..).map(|o| (o.req, o.reply)).unzip();
        match in_transaction(&pool, &reqs).await {
            Ok(results) => {
                for (reply, r) in replies.into_iter().zip(results) {
                    // The caller may have gone away; the write stands regardless.
                    let _ = reply.send(r);
                }
            }
            Err(e) if reqs.len() == 1 => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(e));
                }
            }
            Err(_) => {
                // Isolate the failing operation: each alone in its own transaction.
                for (req, reply) in reqs.iter().zip(replies) {
                    let r = in_transaction(&pool, std::slice::from_ref(req))
                        .await
                        .and_then(|mut v| v.pop().unwrap_or_else(|| Err(mismatch())));
                    let _ = reply.send(r);
                }
            }
        }
    }
}

/// Runs `reqs` in one IMMEDIATE transaction; the per-operation answers, valid once committed.
async fn in_transaction(pool: &SqlitePool, reqs: &[Req]) -> StoreResult<Vec<StoreResult<Resp>>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(be)?;
    match execute(&mut tx, reqs).await {
        Ok(results) => {
            tx.commit().await.map_err(be)?;
            Ok(results)
        }
        Err(e) => {
            // A failed rollback leaves the connection to sqlx, which resets it on return.
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// Probes, for the batch's messages, existing `(sender_session, client_id)` pairs (`?1`:
/// `[[session, client_id], ..]`, rows with `k = 0`) and existing ids (`?2`: hex ids, `k = 1`).
const PROBE: &str = "SELECT 0 AS k, m.sender_session AS s, m.client_id AS c, m.id AS id \
     FROM json_each(?1) j JOIN messages m \
     ON m.sender_session = j.value ->> 0 AND m.client_id = j.value ->> 1 \
     UNION ALL SELECT 1, NULL, NULL, m.id FROM messages m \
     WHERE m.id IN (SELECT unhex(value) FROM json_each(?2))";

/// Inserts messages `[[id_hex, from, to, chat_id, payload, signature, created_at, delivered,
/// read, sender_session, client_id], ..]`.
const INSERT_MESSAGES: &str = "INSERT INTO messages (id, from_uid, to_uid, chat_id, payload, \
     signature, created_at, delivered, read, sender_session, client_id) \
     SELECT unhex(value ->> 0), value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, \
     value ->> 6, value ->> 7, value ->> 8, value ->> 9, value ->> 10 FROM json_each(?1)";

/// Bumps each session's counter by the number of entries it gets (`[[session, count], ..]`) and
/// returns the new highest seq per session.
const ALLOC_SEQS: &str = "INSERT INTO queue_seq (session_id, last_seq) \
     SELECT value ->> 0, value ->> 1 FROM json_each(?1) WHERE true \
     ON CONFLICT(session_id) DO UPDATE SET last_seq = last_seq + excluded.last_seq \
     RETURNING session_id, last_seq";

/// Inserts queue rows `[[session, seq, message_hex_or_null, self_copy, event_hex_or_null], ..]`.
const INSERT_QUEUE: &str =
    "INSERT INTO queue (session_id, seq, message_id, self_copy, event, created_at) \
     SELECT value ->> 0, value ->> 1, unhex(value ->> 2), value ->> 3, unhex(value ->> 4), ?2 \
     FROM json_each(?1)";

/// Batched acks: `?1` lists `[[session, n], ..]` (or `[[session, message_hex], ..]`).
const ACK_UP_TO: &str = "DELETE FROM queue WHERE (session_id, seq) IN (SELECT q.session_id, \
     q.seq FROM json_each(?1) j JOIN queue q \
     ON q.session_id = j.value ->> 0 AND q.seq <= j.value ->> 1) \
     RETURNING session_id, seq, message_id, self_copy";
const ACK_SEQ: &str = "DELETE FROM queue WHERE (session_id, seq) IN (SELECT q.session_id, \
     q.seq FROM json_each(?1) j JOIN queue q \
     ON q.session_id = j.value ->> 0 AND q.seq = j.value ->> 1) \
     RETURNING session_id, seq, message_id, self_copy";
const ACK_MESSAGE: &str = "DELETE FROM queue WHERE (session_id, seq) IN (SELECT q.session_id, \
     q.seq FROM json_each(?1) j JOIN queue q \
     ON q.message_id = unhex(j.value ->> 1) AND q.session_id = j.value ->> 0) \
     RETURNING session_id, seq, message_id, self_copy";

const MARK_DELIVERED: &str = "UPDATE messages SET delivered = 1 WHERE delivered = 0 \
     AND id IN (SELECT unhex(value) FROM json_each(?)) RETURNING id";

type MessageRow<'a> = (
    String,
    i64,
    Option<i64>,
    Option<i64>,
    &'a str,
    Option<&'a str>,
    i64,
    bool,
    bool,
    i64,
    Option<&'a str>,
);

/// One queue entry to append: its session, self-copy flag, message (hex) or event (hex).
type Slot = (i64, bool, Option<String>, Option<String>);

/// Executes the batch inside the caller's transaction.
async fn execute(conn: &mut SqliteConnection, reqs: &[Req]) -> StoreResult<Vec<StoreResult<Resp>>> {
    let mut out: Vec<Option<StoreResult<Resp>>> = reqs.iter().map(|_| None).collect();

    // 1. Messages: decide duplicates and id conflicts up front, then insert the rest at once.
    let stores: Vec<(usize, &NewMessage)> = reqs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r {
            Req::Store(m, _) => Some((i, m)),
            _ => None,
        })
        .collect();
    let mut accepted = vec![false; reqs.len()];
    if !stores.is_empty() {
        let pairs: Vec<(i64, &str)> = stores
            .iter()
            .filter_map(|(_, m)| m.client_id.as_deref().map(|c| (m.sender_session.0, c)))
            .collect();
        let ids: Vec<String> = stores
            .iter()
            .map(|(_, m)| m.message.id.to_string())
            .collect();
        let rows = sqlx::query(PROBE)
            .bind(json(&pairs)?)
            .bind(json(&ids)?)
            .fetch_all(&mut *conn)
            .await
            .map_err(be)?;
        let mut by_client: HashMap<(i64, String), MessageId> = HashMap::new();
        let mut taken: HashSet<MessageId> = HashSet::new();
        for r in &rows {
            let k: i64 = r.try_get("k").map_err(be)?;
            let id = id_of(r, "id")?;
            if k == 0 {
                let s: i64 = r.try_get("s").map_err(be)?;
                let c: String = r.try_get("c").map_err(be)?;
                by_client.insert((s, c), id);
            } else {
                taken.insert(id);
            }
        }
        let mut rows: Vec<MessageRow<'_>> = Vec::with_capacity(stores.len());
        for &(i, msg) in &stores {
            let key = msg
                .client_id
                .as_ref()
                .map(|c| (msg.sender_session.0, c.clone()));
            if let Some(first) = key.as_ref().and_then(|k| by_client.get(k)) {
                out[i] = Some(Ok(Resp::Store(StoreOutcome::Duplicate(*first))));
                continue;
            }
            let m = &msg.message;
            if !taken.insert(m.id) {
                out[i] = Some(Err(StoreError::Conflict("message_id")));
                continue;
            }
            if let Some(key) = key {
                // A later operation of this batch with the same key is its duplicate.
                by_client.insert(key, m.id);
            }
            accepted[i] = true;
            rows.push((
                m.id.to_string(),
                i64::from(m.from.get()),
                m.to.map(|u| i64::from(u.get())),
                m.chat_id,
                &m.payload,
                m.signature.as_deref(),
                m.created_at.millis(),
                m.delivered,
                m.read,
                msg.sender_session.0,
                msg.client_id.as_deref(),
            ));
        }
        if !rows.is_empty() {
            sqlx::query(INSERT_MESSAGES)
                .bind(json(&rows)?)
                .execute(&mut *conn)
                .await
                .map_err(be)?;
        }
    }

    // 2. Queue entries of the stored messages and of the events, in operation order.
    let ids: Vec<Option<String>> = reqs
        .iter()
        .map(|r| match r {
            Req::Store(m, _) => Some(m.message.id.to_string()),
            _ => None,
        })
        .collect();
    let (slots, ranges): (Vec<Slot>, _) = queue_layout(
        reqs,
        &accepted,
        |i, t| (t.session.0, t.self_copy, ids[i].clone(), None),
        |s, e| (s.0, false, None, Some(hex(e))),
    );
    // Queue time is now: `trim_queues` expires entries by it.
    let seqs = append(conn, &slots, Timestamp::now()).await?;
    answer_appends(reqs, ranges, &seqs, &mut out);

    // 3. Delivery flags: one UPDATE; each flipped id reported once, to the first asking.
    let delivered: Vec<String> = reqs
        .iter()
        .filter_map(|r| match r {
            Req::Delivered(ids) => Some(ids.iter().map(ToString::to_string)),
            _ => None,
        })
        .flatten()
        .collect();
    let mut flipped = HashSet::new();
    if !delivered.is_empty() {
        let rows = sqlx::query(MARK_DELIVERED)
            .bind(json(&delivered)?)
            .fetch_all(&mut *conn)
            .await
            .map_err(be)?;
        for r in &rows {
            flipped.insert(id_of(r, "id")?);
        }
    }
    answer_delivered(reqs, flipped, &mut out);

    // 4. Acknowledgements: one DELETE per selector kind for the sessions acked once in the
    // batch (their removed rows are theirs alone); one DELETE each for the others.
    let mut per_session: HashMap<i64, usize> = HashMap::new();
    for r in reqs {
        if let Req::Ack(session, _) = r {
            *per_session.entry(session.0).or_default() += 1;
        }
    }
    let mut owner: HashMap<i64, usize> = HashMap::new();
    let (mut up_to, mut at_seq, mut by_message) = (Vec::new(), Vec::new(), Vec::new());
    for (i, r) in reqs.iter().enumerate() {
        let Req::Ack(session, sel) = r else { continue };
        if per_session.get(&session.0).copied().unwrap_or(0) > 1 {
            out[i] = Some(Ok(Resp::Acked(ack(conn, *session, *sel).await?)));
            continue;
        }
        owner.insert(session.0, i);
        out[i] = Some(Ok(Resp::Acked(Vec::new())));
        match sel {
            AckSelector::UpTo(n) => up_to.push((session.0, *n)),
            AckSelector::Seq(n) => at_seq.push((session.0, *n)),
            AckSelector::Message(id) => by_message.push((session.0, id.to_string())),
        }
    }
    let mut acked: Vec<(i64, AckedEntry)> = Vec::new();
    if !up_to.is_empty() {
        acked.extend(ack_many(conn, ACK_UP_TO, json(&up_to)?).await?);
    }
    if !at_seq.is_empty() {
        acked.extend(ack_many(conn, ACK_SEQ, json(&at_seq)?).await?);
    }
    if !by_message.is_empty() {
        acked.extend(ack_many(conn, ACK_MESSAGE, json(&by_message)?).await?);
    }
    for (session, entry) in acked {
        let slot = owner
            .get(&session)
            .and_then(|&i| out.get_mut(i))
            .ok_or_else(|| StoreError::Backend("ack removed a row of another session".into()))?;
        if let Some(Ok(Resp::Acked(entries))) = slot {
            entries.push(entry);
        }
    }
    for r in out.iter_mut().flatten() {
        if let Ok(Resp::Acked(entries)) = r {
            // RETURNING order is unspecified.
            entries.sort_by_key(|e| e.seq);
        }
    }

    out.into_iter()
        .map(|r| r.ok_or_else(mismatch))
        .collect::<StoreResult<Vec<_>>>()
}

/// Appends `slots`; returns the seq of each, in order. Two statements whatever the count.
async fn append(
    conn: &mut SqliteConnection,
    slots: &[Slot],
    at: Timestamp,
) -> StoreResult<Vec<i64>> {
    if slots.is_empty() {
        return Ok(Vec::new());
    }
    let mut counts: HashMap<i64, i64> = HashMap::new();
    for s in slots {
        *counts.entry(s.0).or_default() += 1;
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
    for (session, self_copy, message, event) in slots {
        let seq = next
            .get_mut(session)
            .ok_or_else(|| StoreError::Backend("queue_seq upsert skipped a session".into()))?;
        seqs.push(*seq);
        entries.push((*session, *seq, message, i64::from(*self_copy), event));
        *seq += 1;
    }
    sqlx::query(INSERT_QUEUE)
        .bind(json(&entries)?)
        .bind(at.millis())
        .execute(&mut *conn)
        .await
        .map_err(be)?;
    Ok(seqs)
}

/// Runs one of the batched ack statements; the removed rows with their session.
async fn ack_many(
    conn: &mut SqliteConnection,
    sql: &'static str,
    arg: String,
) -> StoreResult<Vec<(i64, AckedEntry)>> {
    let rows = sqlx::query(sql)
        .bind(arg)
        .fetch_all(&mut *conn)
        .await
        .map_err(be)?;
    rows.iter()
        .map(|r| Ok((r.try_get("session_id").map_err(be)?, acked_entry(r)?)))
        .collect()
}

/// A removed queue row; event and gap rows have no message_id: they ack as `message_id: None`.
fn acked_entry(r: &sqlx::sqlite::SqliteRow) -> StoreResult<AckedEntry> {
    let message: Option<&[u8]> = r.try_get("message_id").map_err(be)?;
    Ok(AckedEntry {
        seq: r.try_get("seq").map_err(be)?,
        message_id: message.map(|_| id_of(r, "message_id")).transpose()?,
        self_copy: r.try_get::<i64, _>("self_copy").map_err(be)? != 0,
    })
}

async fn ack(
    conn: &mut SqliteConnection,
    session: SessionId,
    sel: AckSelector,
) -> StoreResult<Vec<AckedEntry>> {
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
    let rows = query.fetch_all(&mut *conn).await.map_err(be)?;
    let mut out = rows
        .iter()
        .map(acked_entry)
        .collect::<StoreResult<Vec<_>>>()?;
    // RETURNING order is unspecified.
    out.sort_by_key(|e| e.seq);
    Ok(out)
}

#[cfg(test)]
#[path = "sqlite_writer_tests.rs"]
mod tests;
