//! Group commit for the hot writes of [`MysqlStore`](super::MysqlStore): `store_message`,
//! `enqueue` and `ack`.
//!
//! [`WRITERS`] writer tasks per store (spawned when the store is opened, on the current tokio
//! runtime) share one bounded channel. A writer takes the first queued operation, drains
//! whatever else is queued (up to [`MAX_BATCH`]), runs them all in ONE transaction on a
//! connection of its own (taken from the pool and detached from it), and answers each caller
//! only after the COMMIT succeeded: a caller is never told about a write that is not durable.
//! While one writer waits for its COMMIT (the redo log flush), the next one already gathers and
//! runs the following batch: commits overlap instead of queueing behind each other's flush.
//!
//! All operations of a batch were pending at the same time, so any order among them is a valid
//! linearization; the batch runs them as (statements: `hot.rs`): every `store_message`
//! (duplicates and id conflicts decided first), then every queue append in operation order
//! (the stored messages' entries, the enqueued entries, the acks' receipts; seqs per session in
//! that order), then the acks' delivery flags, then the acks' removals.
//!
//! Errors: a per-operation outcome (`Duplicate`, `Conflict("message_id")`) is decided before any
//! write and answered to that operation alone. Any other failure rolls the whole batch back
//! (InnoDB rolls back the whole transaction on a deadlock or a lock wait timeout) and the batch
//! runs again, after a pause, a few times for contention ([`ATTEMPTS`]) and once for anything
//! else (a send with the same `client_id` committed by another node meanwhile); if it still
//! fails, each operation runs again as a batch of its own (with the same retries), so only the
//! operation that fails gets the error. A COMMIT whose outcome is unknown (the connection
//! broke) is answered as [`StoreError::Unavailable`] to the whole batch: running it again could
//! apply it twice.
//!
//! Several server nodes may share the database, each with its own writer: they serialize on
//! the `queue_seq` rows, which every transaction locks in ascending session order.

use sqlx::{Connection, MySqlConnection, MySqlPool};
use tokio::sync::{mpsc, oneshot};

use super::{backoff, be, hot, is_transient, TxError, ATTEMPTS};
use crate::model::{Acks, NewEntry, NewMessage, QueueTarget, SessionId, StoreOutcome};
use crate::store::{StoreError, StoreResult};

/// Most operations committed together.
pub(super) const MAX_BATCH: usize = 512;

/// Writer tasks (and connections) per store.
pub(super) const WRITERS: usize = 3;

/// Operations that may wait for the writer before senders wait for room.
const QUEUE_DEPTH: usize = 4 * MAX_BATCH;

/// A hot write.
pub(super) enum Req {
    Store(NewMessage, Vec<QueueTarget>),
    Enqueue(Vec<(SessionId, NewEntry)>),
    Ack(SessionId, Acks),
}

/// Its answer.
#[derive(Debug)]
pub(super) enum Resp {
    Store(StoreOutcome),
    /// The seqs of the entries appended (an `enqueue`'s, or an `ack`'s receipts).
    Seqs(Vec<i64>),
}

/// One queued operation and where its answer goes (after the COMMIT).
pub(super) struct Op {
    pub(super) req: Req,
    pub(super) reply: oneshot::Sender<StoreResult<Resp>>,
}

/// The handle to the writer task; the task stops when the last handle is dropped.
#[derive(Clone, Debug)]
pub(super) struct Writer {
    tx: mpsc::Sender<Op>,
}

impl Writer {
    /// Runs `req` in the next batch; returns once that batch is committed.
    async fn call(&self, req: Req) -> StoreResult<Resp> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Op { req, reply })
            .await
            .map_err(|_| StoreError::Unavailable("mysql writer task stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("mysql writer task dropped a write".into()))?
    }

    /// [`DeliveryStore::store_message`](crate::store::DeliveryStore::store_message).
    pub(super) async fn store_message(
        &self,
        msg: &NewMessage,
        targets: &[QueueTarget],
    ) -> StoreResult<StoreOutcome> {
        match self.call(Req::Store(msg.clone(), targets.to_vec())).await? {
            Resp::Store(outcome) => Ok(outcome),
            Resp::Seqs(_) => Err(mismatch()),
        }
    }

    /// [`DeliveryStore::enqueue`](crate::store::DeliveryStore::enqueue).
    pub(super) async fn enqueue(&self, entries: &[(SessionId, NewEntry)]) -> StoreResult<Vec<i64>> {
        match self.call(Req::Enqueue(entries.to_vec())).await? {
            Resp::Seqs(seqs) => Ok(seqs),
            Resp::Store(_) => Err(mismatch()),
        }
    }

    /// [`DeliveryStore::ack`](crate::store::DeliveryStore::ack).
    pub(super) async fn ack(&self, session: SessionId, acks: &Acks) -> StoreResult<Vec<i64>> {
        match self.call(Req::Ack(session, acks.clone())).await? {
            Resp::Seqs(seqs) => Ok(seqs),
            Resp::Store(_) => Err(mismatch()),
        }
    }
}

/// An answer of the wrong kind (cannot happen: each request kind has its answer kind).
fn mismatch() -> StoreError {
    StoreError::Backend("writer answered with the wrong kind".into())
}

/// Spawns the writer task on the current tokio runtime; it stops when the last handle is
/// dropped.
pub(super) fn spawn(pool: MySqlPool) -> Writer {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
    for _ in 0..WRITERS {
        tokio::spawn(run(pool.clone(), rx.clone()));
    }
    Writer { tx }
}

/// How a batch ended without being committed.
enum Failed {
    /// Rolled back: its operations may run again. The last failure.
    RolledBack(StoreError),
    /// The COMMIT was sent and its outcome is unknown.
    Unknown(StoreError),
}

/// One writer: takes the next batch (the receiver is shared with the other writers: whoever
/// holds it waits for operations, the others wait for it), commits it, answers, again.
pub(super) async fn run(
    pool: MySqlPool,
    rx: std::sync::Arc<tokio::sync::Mutex<mpsc::Receiver<Op>>>,
) {
    let mut conn: Option<MySqlConnection> = None;
    let mut ops = Vec::with_capacity(MAX_BATCH);
    loop {
        if rx.lock().await.recv_many(&mut ops, MAX_BATCH).await == 0 {
            break;
        }
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
    match hot::execute(&mut tx, reqs).await {
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
