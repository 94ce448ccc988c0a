//! Group commit for the hot write paths of [`MysqlStore`](super::MysqlStore).
//!
//! One writer task per store (spawned when the store is opened, on the current tokio runtime)
//! receives `store_message`, `ack`, `mark_delivered` and `enqueue_events` operations through a
//! bounded channel. It takes the first queued operation, drains whatever else is queued (up to
//! [`MAX_BATCH`]), runs them all in ONE transaction on a connection of its own (taken from the
//! pool and detached from it), and answers each caller only after the COMMIT succeeded: a caller
//! is never told about a write that is not durable.
//!
//! All operations of a batch were pending at the same time, so any order among them is a valid
//! linearization; the batch runs them as: every `store_message` (one duplicate probe, one id
//! probe, one multi-row INSERT) together with every `enqueue_events` (one `queue_seq` upsert, one
//! locked read of the counters and one queue INSERT for all their entries, counters locked in
//! ascending session order, seqs assigned per session in operation order), then every
//! `mark_delivered` (one locked read and one UPDATE), then the acks (one locked read per index
//! they go by and one DELETE; a session acked several times in the batch is acked once per
//! operation, in order). Large batches split a statement into chunks, never into transactions.
//!
//! Errors: a per-operation outcome (`Duplicate`, `Conflict("message_id")`) is decided before any
//! write and answered to that operation alone. Any other failure rolls the whole batch back
//! (InnoDB rolls back the whole transaction on a deadlock or a lock wait timeout) and the batch
//! runs again, after a pause, a few times for contention ([`ATTEMPTS`]) and once for anything
//! else (a send with the same `client_id` committed by another node meanwhile); if it still
//! fails, each operation runs again as a batch of its own (with the same retries), so only the
//! operation that fails gets the error. A COMMIT whose
//! outcome is unknown (the connection broke) is answered as [`StoreError::Unavailable`] to the
//! whole batch: running it again could apply it twice.
//!
//! Several server nodes may share the database, each with its own writer: they serialize on
//! the `queue_seq` rows, which every transaction locks in ascending session order.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::{Connection, MySqlConnection, MySqlPool, Row};
use tokio::sync::mpsc;

use super::hot::{ack_on, append, Slot};
use super::messages::{id_blob, id_of};
use super::{backoff, be, is_transient, marks, TxError, TxResult, ATTEMPTS};
use crate::model::{AckSelector, AckedEntry, MessageId, NewMessage, StoreOutcome, Timestamp};
use crate::store::hot_writer::{
    answer_appends, answer_delivered, mismatch, queue_layout, Answers, Op, Req, Resp, Writer,
    MAX_BATCH,
};
use crate::store::{StoreError, StoreResult};

/// Values per `IN (…)` list or `OR` of conditions.
const IN_CHUNK: usize = 500;

/// Payload bytes per message INSERT statement (well under the server's `max_allowed_packet`).
const INSERT_BYTES: usize = 4 << 20;

/// Spawns the writer task on the current tokio runtime; it stops when the last handle is
/// dropped.
pub(super) fn spawn(pool: MySqlPool) -> Writer {
    let (writer, rx) = Writer::channel("mysql");
    tokio::spawn(run(pool, rx));
    writer
}

/// How a batch ended without being committed.
enum Failed {
    /// Rolled back: its operations may run again. The last failure.
    RolledBack(StoreError),
    /// The COMMIT was sent and its outcome is unknown.
    Unknown(StoreError),
}

async fn run(pool: MySqlPool, mut rx: mpsc::Receiver<Op>) {
    let mut conn: Option<MySqlConnection> = None;
    let mut ops = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut ops, MAX_BATCH).await > 0 {
        let (reqs, replies): (Vec<Req>, Vec<_>) = ops.drain(..).map(|o| (o.req, o.reply)).unzip();
        let results = match batch(&pool, &mut conn, &reqs).await {
            Ok(results) => results,
            Err(Failed::Unknown(e)) => reqs
                .iter()
                .map(|_| Err(StoreError::Unavailable(e.to_string())))
                .collect(),
            Err(Failed::RolledBack(_)) => {
                // Isolate the failing operation: each alone, as a batch of its own.
                let mut results = Vec::with_capacity(reqs.len());
                for req in &reqs {
                    results.push(alone(&pool, &mut conn, req).await);
                }
                results
            }
        };
        for (reply, r) in replies.into_iter().zip(results) {
            // The caller may have gone away; the write stands regardless.
            let _ = reply.send(r);
        }
    }
}

/// Runs `reqs` in one transaction, again after a rollback (see the module docs).
async fn batch(
    pool: &MySqlPool,
    conn: &mut Option<MySqlConnection>,
    reqs: &[Req],
) -> Result<Vec<StoreResult<Resp>>, Failed> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let c = match conn {
            Some(c) => c,
            None => match pool.acquire().await {
                Ok(c) => conn.insert(c.detach()),
                Err(e) => return Err(Failed::RolledBack(be(e))),
            },
        };
        let err = match once(c, reqs).await {
            Run::Committed(results) => return Ok(results),
            Run::Unknown(e) => {
                *conn = None;
                return Err(Failed::Unknown(e));
            }
            Run::Lost(e) => {
                *conn = None;
                return Err(Failed::RolledBack(e));
            }
            Run::RolledBack(e) => e,
        };
        match err {
            TxError::Sql(e) if attempt < ATTEMPTS && is_transient(&e) => backoff(attempt).await,
            _ if attempt < 2 => backoff(attempt).await,
            TxError::Sql(e) => return Err(Failed::RolledBack(be(e))),
            TxError::Store(e) => return Err(Failed::RolledBack(e)),
        }
    }
}

/// How one run of a batch ended.
enum Run {
    Committed(Vec<StoreResult<Resp>>),
    /// Rolled back; the connection is fine.
    RolledBack(TxError),
    /// Not committed, and the connection is unusable (the server rolls back when it closes).
    Lost(StoreError),
    /// The COMMIT was sent and its outcome is unknown.
    Unknown(StoreError),
}

/// One run of the batch in one transaction on `conn`.
async fn once(conn: &mut MySqlConnection, reqs: &[Req]) -> Run {
    let mut tx = match conn.begin().await {
        Ok(tx) => tx,
        Err(e) => return Run::Lost(be(e)),
    };
    match execute(&mut tx, reqs).await {
        Ok(results) => match tx.commit().await {
            Ok(()) => Run::Committed(results),
            Err(e @ sqlx::Error::Database(_)) => Run::RolledBack(TxError::Sql(e)),
            Err(e) => Run::Unknown(be(e)),
        },
        // A broken connection is dropped; on any other failure the transaction rolls back.
        Err(TxError::Sql(e)) if !matches!(e, sqlx::Error::Database(_)) => Run::Lost(be(e)),
        Err(e) => match tx.rollback().await {
            Ok(()) => Run::RolledBack(e),
            Err(lost) => Run::Lost(be(lost)),
        },
    }
}

/// Runs one operation as a batch of its own (with the same retries); its failure is its answer.
async fn alone(
    pool: &MySqlPool,
    conn: &mut Option<MySqlConnection>,
    req: &Req,
) -> StoreResult<Resp> {
    match batch(pool, conn, std::slice::from_ref(req)).await {
        Ok(mut results) => results.pop().unwrap_or_else(|| Err(mismatch())),
        Err(Failed::RolledBack(e)) => Err(e),
        Err(Failed::Unknown(e)) => Err(StoreError::Unavailable(e.to_string())),
    }
}

/// Executes the batch inside the caller's transaction.
async fn execute(conn: &mut MySqlConnection, reqs: &[Req]) -> TxResult<Vec<StoreResult<Resp>>> {
    let mut out: Vec<Option<StoreResult<Resp>>> = reqs.iter().map(|_| None).collect();
    let ids: Vec<Option<Vec<u8>>> = reqs
        .iter()
        .map(|r| match r {
            Req::Store(m, _) => Some(id_blob(m.message.id)),
            _ => None,
        })
        .collect();
    let accepted = store_messages(conn, reqs, &mut out).await?;

    // Queue entries of the stored messages and of the events, in operation order.
    let (slots, ranges) = queue_layout(
        reqs,
        &accepted,
        |i, t| Slot {
            session: t.session.0,
            self_copy: t.self_copy,
            message: ids[i].as_deref(),
            event: None,
        },
        |s, e| Slot {
            session: s.0,
            self_copy: false,
            message: None,
            event: Some(e),
        },
    );
    // Queue time is now: `trim_queues` expires entries by it.
    let seqs = append(conn, &slots, Timestamp::now()).await?;
    answer_appends(reqs, ranges, &seqs, &mut out);

    mark_delivered(conn, reqs, &mut out).await?;
    acks(conn, reqs, &mut out).await?;
    out.into_iter()
        .map(|r| r.ok_or_else(|| TxError::Store(mismatch())))
        .collect()
}

/// Decides duplicates and id conflicts of the batch's messages, then inserts the others at
/// once; which operations were inserted.
async fn store_messages(
    conn: &mut MySqlConnection,
    reqs: &[Req],
    out: &mut Answers,
) -> TxResult<Vec<bool>> {
    let mut accepted = vec![false; reqs.len()];
    let stores: Vec<(usize, &NewMessage)> = reqs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r {
            Req::Store(m, _) => Some((i, m)),
            _ => None,
        })
        .collect();
    if stores.is_empty() {
        return Ok(accepted);
    }
    // Committed sends with the same (sender_session, client_id), and ids already taken.
    let pairs: Vec<(i64, &str)> = stores
        .iter()
        .filter_map(|(_, m)| m.client_id.as_deref().map(|c| (m.sender_session.0, c)))
        .collect();
    let mut by_client: HashMap<(i64, Vec<u8>), MessageId> = HashMap::new();
    for chunk in pairs.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT sender_session, client_id, id FROM messages WHERE {}",
            vec!["(sender_session = ? AND client_id = ?)"; chunk.len()].join(" OR ")
        );
        let mut q = sqlx::query(&sql);
        for (s, c) in chunk {
            q = q.bind(*s).bind(*c);
        }
        for r in q.fetch_all(&mut *conn).await? {
            let key = (r.try_get("sender_session")?, r.try_get("client_id")?);
            by_client.insert(key, id_of(&r, "id")?);
        }
    }
    let mut taken: HashSet<MessageId> = HashSet::new();
    for chunk in stores.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT id FROM messages WHERE id IN ({})",
            marks(chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for (_, m) in chunk {
            q = q.bind(id_blob(m.message.id));
        }
        for r in q.fetch_all(&mut *conn).await? {
            taken.insert(id_of(&r, "id")?);
        }
    }
    let mut rows: Vec<&NewMessage> = Vec::with_capacity(stores.len());
    for &(i, msg) in &stores {
        let key = msg
            .client_id
            .as_ref()
            .map(|c| (msg.sender_session.0, c.as_bytes().to_vec()));
        if let Some(first) = key.as_ref().and_then(|k| by_client.get(k)) {
            out[i] = Some(Ok(Resp::Store(StoreOutcome::Duplicate(*first))));
            continue;
        }
        if !taken.insert(msg.message.id) {
            out[i] = Some(Err(StoreError::Conflict("message_id")));
            continue;
        }
        if let Some(key) = key {
            // A later operation of this batch with the same key is its duplicate.
            by_client.insert(key, msg.message.id);
        }
        accepted[i] = true;
        rows.push(msg);
    }
    let mut start = 0;
    while start < rows.len() {
        // Rows up to the byte budget (at least one).
        let mut end = start + 1;
        let mut bytes = rows[start].message.payload.len();
        while end < rows.len() && end - start < IN_CHUNK {
            bytes += rows[end].message.payload.len();
            if bytes > INSERT_BYTES {
                break;
            }
            end += 1;
        }
        insert_messages(conn, &rows[start..end]).await?;
        start = end;
    }
    Ok(accepted)
}

async fn insert_messages(conn: &mut MySqlConnection, rows: &[&NewMessage]) -> TxResult<()> {
    let sql = format!(
        "INSERT INTO messages (id, from_uid, to_uid, chat_id, payload, signature, created_at, \
         delivered, is_read, sender_session, client_id) VALUES {}",
        vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; rows.len()].join(",")
    );
    let mut q = sqlx::query(&sql);
    for msg in rows {
        let m = &msg.message;
        q = q
            .bind(id_blob(m.id))
            .bind(i64::from(m.from.get()))
            .bind(m.to.map(|u| i64::from(u.get())))
            .bind(m.chat_id)
            .bind(&m.payload)
            .bind(&m.signature)
            .bind(m.created_at.millis())
            .bind(m.delivered)
            .bind(m.read)
            .bind(msg.sender_session.0)
            .bind(&msg.client_id);
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

/// Delivery flags: one locked read and one UPDATE; each flipped id reported once, to the first
/// operation asking, in that operation's order.
async fn mark_delivered(
    conn: &mut MySqlConnection,
    reqs: &[Req],
    out: &mut Answers,
) -> TxResult<()> {
    // Ascending ids: rows are locked in index order.
    let wanted: Vec<MessageId> = reqs
        .iter()
        .filter_map(|r| match r {
            Req::Delivered(ids) => Some(ids.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut flipped: HashSet<MessageId> = HashSet::new();
    for chunk in wanted.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT id FROM messages WHERE id IN ({}) AND delivered = 0 FOR UPDATE",
            marks(chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id_blob(*id));
        }
        let found = q
            .fetch_all(&mut *conn)
            .await?
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
        q.execute(&mut *conn).await?;
        flipped.extend(found);
    }
    answer_delivered(reqs, flipped, out);
    Ok(())
}

/// A removed queue row of an ack, with its session.
type Acked = (i64, AckedEntry);

/// Acknowledgements. A session acked once in the batch has its rows to remove read (locked)
/// with those of the other such sessions: one statement for the acks by seq, one for those by
/// message; they are then deleted by one statement. A session acked several times is acked
/// once per operation, in order, so each sees the rows the earlier ones left.
async fn acks(conn: &mut MySqlConnection, reqs: &[Req], out: &mut Answers) -> TxResult<()> {
    let mut per_session: HashMap<i64, usize> = HashMap::new();
    for r in reqs {
        if let Req::Ack(session, _) = r {
            *per_session.entry(session.0).or_default() += 1;
        }
    }
    if per_session.is_empty() {
        return Ok(());
    }
    let mut owner: HashMap<i64, usize> = HashMap::new();
    let (mut by_seq, mut by_message) = (Vec::new(), Vec::new());
    for (i, r) in reqs.iter().enumerate() {
        let Req::Ack(session, sel) = r else { continue };
        if per_session.get(&session.0).copied().unwrap_or(0) > 1 {
            out[i] = Some(Ok(Resp::Acked(ack_on(conn, *session, *sel).await?)));
            continue;
        }
        owner.insert(session.0, i);
        match sel {
            AckSelector::Message(id) => by_message.push((session.0, *sel, Some(id_blob(*id)))),
            _ => by_seq.push((session.0, *sel, None)),
        }
    }
    let mut acked: Vec<Acked> = Vec::new();
    for chunk in by_seq.chunks(IN_CHUNK) {
        acked.extend(locked_rows(conn, chunk).await?);
    }
    for chunk in by_message.chunks(IN_CHUNK) {
        acked.extend(locked_rows(conn, chunk).await?);
    }
    // One DELETE per chunk of removed rows, grouped by session.
    let mut groups: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (session, e) in &acked {
        groups.entry(*session).or_default().push(e.seq);
    }
    let rows: Vec<(i64, i64)> = groups
        .iter()
        .flat_map(|(s, seqs)| seqs.iter().map(move |q| (*s, *q)))
        .collect();
    for chunk in rows.chunks(IN_CHUNK) {
        let mut per: BTreeMap<i64, usize> = BTreeMap::new();
        for (s, _) in chunk {
            *per.entry(*s).or_default() += 1;
        }
        let cond: Vec<String> = per
            .values()
            .map(|n| format!("(session_id = ? AND seq IN ({}))", marks(*n)))
            .collect();
        let sql = format!("DELETE FROM queue WHERE {}", cond.join(" OR "));
        let mut q = sqlx::query(&sql);
        let mut last = None;
        for (s, seq) in chunk {
            if last != Some(*s) {
                q = q.bind(*s);
                last = Some(*s);
            }
            q = q.bind(*seq);
        }
        q.execute(&mut *conn).await?;
    }
    for &i in owner.values() {
        out[i] = Some(Ok(Resp::Acked(Vec::new())));
    }
    for (session, entry) in acked {
        let slot = owner
            .get(&session)
            .and_then(|&i| out.get_mut(i))
            .ok_or_else(|| StoreError::Backend("ack read a row of another session".into()))?;
        if let Some(Ok(Resp::Acked(entries))) = slot {
            entries.push(entry);
        }
    }
    for &i in owner.values() {
        if let Some(Ok(Resp::Acked(entries))) = &mut out[i] {
            entries.sort_by_key(|e| e.seq);
        }
    }
    Ok(())
}

/// Reads and locks the rows the acks of `chunk` remove (each of its own session); all by seq
/// (primary key) or all by message (`queue_message`), so the statement is index range reads.
async fn locked_rows(
    conn: &mut MySqlConnection,
    chunk: &[(i64, AckSelector, Option<Vec<u8>>)],
) -> TxResult<Vec<Acked>> {
    let cond: Vec<&str> = chunk
        .iter()
        .map(|(_, sel, _)| match sel {
            AckSelector::UpTo(_) => "(session_id = ? AND seq <= ?)",
            AckSelector::Seq(_) => "(session_id = ? AND seq = ?)",
            AckSelector::Message(_) => "(message_id = ? AND session_id = ?)",
        })
        .collect();
    let sql = format!(
        "SELECT session_id, seq, message_id, self_copy FROM queue WHERE {} FOR UPDATE",
        cond.join(" OR ")
    );
    let mut q = sqlx::query(&sql);
    for (session, sel, blob) in chunk {
        q = match sel {
            AckSelector::UpTo(n) | AckSelector::Seq(n) => q.bind(*session).bind(*n),
            AckSelector::Message(_) => q.bind(blob.as_deref()).bind(*session),
        };
    }
    let rows = q.fetch_all(&mut *conn).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let message: Option<Vec<u8>> = r.try_get("message_id")?;
        out.push((
            r.try_get("session_id")?,
            AckedEntry {
                seq: r.try_get("seq")?,
                message_id: message.map(|_| id_of(r, "message_id")).transpose()?,
                self_copy: r.try_get("self_copy")?,
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
#[path = "mysql_writer_tests.rs"]
mod tests;
