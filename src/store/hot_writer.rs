//! What the group-commit writers of the SQL stores (`sqlite_writer.rs`, `mysql_writer.rs`)
//! share: the hot operations, their answers, and the handle callers use. Each backend's writer
//! task receives [`Op`]s in batches of at most [`MAX_BATCH`] and commits each batch at once.

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::model::{
    AckSelector, AckedEntry, MessageId, NewMessage, QueueTarget, SessionId, StoreOutcome,
};
use crate::store::{StoreError, StoreResult};

/// Most operations committed together.
pub(crate) const MAX_BATCH: usize = 512;

/// Operations that may wait for the writer before senders wait for room.
const QUEUE_DEPTH: usize = 4 * MAX_BATCH;

/// A hot write.
pub(crate) enum Req {
    Store(NewMessage, Vec<QueueTarget>),
    Ack(SessionId, AckSelector),
    Delivered(Vec<MessageId>),
    Enqueue(Vec<(SessionId, Bytes)>),
}

/// Its answer.
pub(crate) enum Resp {
    Store(StoreOutcome),
    Acked(Vec<AckedEntry>),
    Delivered(Vec<MessageId>),
    Seqs(Vec<i64>),
}

/// One queued operation and where its answer goes (after the COMMIT).
pub(crate) struct Op {
    pub(crate) req: Req,
    pub(crate) reply: oneshot::Sender<StoreResult<Resp>>,
}

/// The handle to a writer task; the task stops when the last handle is dropped.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Op>,
    /// The backend, for error messages.
    name: &'static str,
}

impl Writer {
    /// A handle and the receiver its writer task drains (bounded: senders wait for room).
    pub(crate) fn channel(name: &'static str) -> (Self, mpsc::Receiver<Op>) {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        (Self { tx, name }, rx)
    }

    /// Runs `req` in the next batch; returns once that batch is committed.
    async fn call(&self, req: Req) -> StoreResult<Resp> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Op { req, reply })
            .await
            .map_err(|_| StoreError::Unavailable(format!("{} writer task stopped", self.name)))?;
        answer.await.map_err(|_| {
            StoreError::Unavailable(format!("{} writer task dropped a write", self.name))
        })?
    }

    /// [`MessageStore::store_message`](crate::store::MessageStore::store_message).
    pub(crate) async fn store_message(
        &self,
        msg: &NewMessage,
        targets: &[QueueTarget],
    ) -> StoreResult<StoreOutcome> {
        match self.call(Req::Store(msg.clone(), targets.to_vec())).await? {
            Resp::Store(outcome) => Ok(outcome),
            _ => Err(mismatch()),
        }
    }

    /// [`MessageStore::mark_delivered`](crate::store::MessageStore::mark_delivered).
    pub(crate) async fn mark_delivered(&self, ids: &[MessageId]) -> StoreResult<Vec<MessageId>> {
        match self.call(Req::Delivered(ids.to_vec())).await? {
            Resp::Delivered(flipped) => Ok(flipped),
            _ => Err(mismatch()),
        }
    }

    /// [`QueueStore::enqueue_events`](crate::store::QueueStore::enqueue_events).
    pub(crate) async fn enqueue_events(
        &self,
        events: &[(SessionId, Bytes)],
    ) -> StoreResult<Vec<i64>> {
        match self.call(Req::Enqueue(events.to_vec())).await? {
            Resp::Seqs(seqs) => Ok(seqs),
            _ => Err(mismatch()),
        }
    }

    /// [`QueueStore::ack`](crate::store::QueueStore::ack).
    pub(crate) async fn ack(
        &self,
        session: SessionId,
        sel: AckSelector,
    ) -> StoreResult<Vec<AckedEntry>> {
        match self.call(Req::Ack(session, sel)).await? {
            Resp::Acked(acked) => Ok(acked),
            _ => Err(mismatch()),
        }
    }
}

/// An answer of the wrong kind (cannot happen: each request kind has its answer kind).
pub(crate) fn mismatch() -> StoreError {
    StoreError::Backend("writer answered with the wrong kind".into())
}
