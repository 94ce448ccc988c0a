//! The hot writes of [`SqliteStore`](super::SqliteStore) (messages with their queue entries,
//! receipts and events, acknowledgements), group-committed by the writer thread of `db.rs`.
//!
//! All operations of a batch were pending at the same time, so any order among them is a
//! valid linearization; they run in arrival order, one prepared statement per row. Per-batch
//! state: each session's next seq is read once (`queue_seq`) and written back once at the end.
//!
//! Outcomes decided per operation (`Duplicate` for a repeated `client_id`, `Conflict` for a
//! taken message id) are answered to that operation alone: SQLite fails only the statement,
//! and nothing of the operation was written before it. Any other failure rolls the batch back
//! and runs each operation again in a transaction of its own, so only the operation that fails
//! gets the error.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use super::db::{be, unique_violation};
use super::rows::id_blob;
use crate::model::{Acks, NewEntry, NewMessage, QueueTarget, SessionId, StoreOutcome, Timestamp};
use crate::store::{StoreError, StoreResult};

/// A hot write.
#[derive(Debug)]
pub(super) enum Hot {
    Store(NewMessage, Vec<QueueTarget>),
    Enqueue(Vec<(SessionId, NewEntry)>),
    Ack(SessionId, Acks),
}

/// Its answer.
#[derive(Debug)]
pub(super) enum HotAnswer {
    Store(StoreOutcome),
    Seqs(Vec<i64>),
}

type Reply = oneshot::Sender<StoreResult<HotAnswer>>;

/// Each session's last seq as this batch leaves it.
#[derive(Default)]
struct Seqs(HashMap<i64, i64>);

impl Seqs {
    fn next(&mut self, tx: &Transaction<'_>, session: i64) -> StoreResult<i64> {
        let last = match self.0.get(&session) {
            Some(n) => *n,
            None => tx
                .prepare_cached("SELECT last_seq FROM queue_seq WHERE session_id = ?1")
                .map_err(be)?
                .query_row([session], |r| r.get(0))
                .optional()
                .map_err(be)?
                .unwrap_or(0),
        };
        self.0.insert(session, last + 1);
        Ok(last + 1)
    }

    fn save(&self, tx: &Transaction<'_>) -> StoreResult<()> {
        let mut put = tx
            .prepare_cached(
                "INSERT INTO queue_seq (session_id, last_seq) VALUES (?1, ?2) \
                 ON CONFLICT(session_id) DO UPDATE SET last_seq = excluded.last_seq",
            )
            .map_err(be)?;
        for (session, last) in &self.0 {
            put.execute([session, last]).map_err(be)?;
        }
        Ok(())
    }
}

/// Runs the batch `ops` and answers each caller (see the module docs).
pub(super) fn commit(conn: &mut Connection, ops: &mut Vec<(Hot, Reply)>) {
    match run(conn, ops.iter().map(|(op, _)| op)) {
        Ok(answers) => {
            for ((_, reply), answer) in ops.drain(..).zip(answers) {
                // The caller may have gone away; the write stands regardless.
                let _ = reply.send(answer);
            }
        }
        Err(e) if ops.len() == 1 => {
            if let Some((_, reply)) = ops.pop() {
                let _ = reply.send(Err(e));
            }
        }
        Err(_) => {
            for (op, reply) in ops.drain(..) {
                let answer = run(conn, std::iter::once(&op))
                    .and_then(|mut a| a.pop().unwrap_or_else(|| Err(mismatch())));
                let _ = reply.send(answer);
            }
        }
    }
}

fn mismatch() -> StoreError {
    StoreError::Backend("sqlite batch answered the wrong number of operations".into())
}

/// Runs `ops` in one IMMEDIATE transaction: the per-operation answers, once committed.
fn run<'a>(
    conn: &mut Connection,
    ops: impl Iterator<Item = &'a Hot>,
) -> StoreResult<Vec<StoreResult<HotAnswer>>> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(be)?;
    let now = Timestamp::now().millis();
    let mut seqs = Seqs::default();
    let mut answers = Vec::new();
    for op in ops {
        answers.push(match op {
            Hot::Store(msg, targets) => store(&tx, &mut seqs, msg, targets, now)?,
            Hot::Enqueue(entries) => Ok(HotAnswer::Seqs(append(&tx, &mut seqs, entries, now)?)),
            Hot::Ack(session, acks) => {
                Ok(HotAnswer::Seqs(ack(&tx, &mut seqs, *session, acks, now)?))
            }
        });
    }
    seqs.save(&tx)?;
    tx.commit().map_err(be)?;
    Ok(answers)
}

/// `store_message`: the inner `Result` is this operation's own outcome.
fn store(
    tx: &Transaction<'_>,
    seqs: &mut Seqs,
    msg: &NewMessage,
    targets: &[QueueTarget],
    now: i64,
) -> StoreResult<StoreResult<HotAnswer>> {
    let session = msg.sender_session.0;
    if let Some(cid) = &msg.client_id {
        let first: Option<Vec<u8>> = tx
            .prepare_cached("SELECT id FROM messages WHERE sender_session = ?1 AND client_id = ?2")
            .map_err(be)?
            .query_row(params![session, cid], |r| r.get(0))
            .optional()
            .map_err(be)?;
        if let Some(first) = first {
            let id = super::rows::id_from(&first)?;
            return Ok(Ok(HotAnswer::Store(StoreOutcome::Duplicate(id))));
        }
    }
    let m = &msg.message;
    let id = id_blob(m.id);
    let inserted = tx
        .prepare_cached(
            "INSERT INTO messages (id, from_uid, to_uid, chat_id, payload, signature, created_at, \
             sender_session, client_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .map_err(be)?
        .execute(params![
            id,
            m.from.get(),
            m.to.map(|u| u.get()),
            m.chat_id,
            m.payload,
            m.signature,
            m.created_at.millis(),
            session,
            msg.client_id,
        ]);
    match inserted {
        Ok(_) => {}
        // Only the statement failed: the batch goes on.
        Err(e) if unique_violation(&e).is_some() => {
            return Ok(Err(StoreError::Conflict("message_id")));
        }
        Err(e) => return Err(be(e)),
    }
    let mut put = tx
        .prepare_cached(
            "INSERT INTO queue (session_id, seq, message_id, self_copy, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(be)?;
    let mut out = Vec::with_capacity(targets.len());
    for t in targets {
        let seq = seqs.next(tx, t.session.0)?;
        put.execute(params![t.session.0, seq, id, t.self_copy, now])
            .map_err(be)?;
        out.push(seq);
    }
    Ok(Ok(HotAnswer::Store(StoreOutcome::Stored(out))))
}

/// Appends events and receipts; their seqs in order.
fn append(
    tx: &Transaction<'_>,
    seqs: &mut Seqs,
    entries: &[(SessionId, NewEntry)],
    now: i64,
) -> StoreResult<Vec<i64>> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let mut event = tx
        .prepare_cached(
            "INSERT INTO queue (session_id, seq, event, created_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(be)?;
    let mut status = tx
        .prepare_cached(
            "INSERT INTO queue (session_id, seq, status, created_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(be)?;
    let mut out = Vec::with_capacity(entries.len());
    for (session, entry) in entries {
        let seq = seqs.next(tx, session.0)?;
        let stmt = match entry {
            NewEntry::Event(_) => &mut event,
            NewEntry::Status(_) => &mut status,
        };
        stmt.execute(params![session.0, seq, entry.body().as_ref(), now])
            .map_err(be)?;
        out.push(seq);
    }
    Ok(out)
}

/// An acknowledgement with its receipts and delivered flags.
fn ack(
    tx: &Transaction<'_>,
    seqs: &mut Seqs,
    session: SessionId,
    acks: &Acks,
    now: i64,
) -> StoreResult<Vec<i64>> {
    let out = append(tx, seqs, &acks.receipts, now)?;
    if !acks.delivered.is_empty() {
        let mut flag = tx
            .prepare_cached("UPDATE messages SET delivered = 1 WHERE id = ?1 AND delivered = 0")
            .map_err(be)?;
        for id in &acks.delivered {
            flag.execute([id_blob(*id)]).map_err(be)?;
        }
    }
    if acks.upto > 0 {
        tx.prepare_cached("DELETE FROM queue WHERE session_id = ?1 AND seq <= ?2")
            .map_err(be)?
            .execute([session.0, acks.upto])
            .map_err(be)?;
    }
    if !acks.seqs.is_empty() {
        let mut one = tx
            .prepare_cached("DELETE FROM queue WHERE session_id = ?1 AND seq = ?2")
            .map_err(be)?;
        for seq in &acks.seqs {
            one.execute([session.0, *seq]).map_err(be)?;
        }
    }
    Ok(out)
}
