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

/// The answers of a batch's operations, by position, as the batch decides them.
pub(crate) type Answers = [Option<StoreResult<Resp>>];

/// The queue entries of a batch, in operation order: those of each accepted store (one per
/// target, from `message`: the operation's index and the target) and of each `enqueue_events`
/// (from `event`), with the range each operation owns as `(operation, start, end)`.
pub(crate) fn queue_layout<'a, S>(
    reqs: &'a [Req],
    accepted: &[bool],
    mut message: impl FnMut(usize, &'a QueueTarget) -> S,
    mut event: impl FnMut(SessionId, &'a Bytes) -> S,
) -> (Vec<S>, Vec<(usize, usize, usize)>) {
    let mut slots = Vec::new();
    let mut ranges = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        let start = slots.len();
        match r {
            Req::Store(_, targets) if accepted.get(i).copied().unwrap_or(false) => {
                slots.extend(targets.iter().map(|t| message(i, t)));
            }
            Req::Enqueue(events) => slots.extend(events.iter().map(|(s, e)| event(*s, e))),
            _ => continue,
        }
        ranges.push((i, start, slots.len()));
    }
    (slots, ranges)
}

/// Answers the operations of [`queue_layout`]'s `ranges` with their seqs (`seqs` follows the
/// slots): the stores as stored, the events with their seqs.
pub(crate) fn answer_appends(
    reqs: &[Req],
    ranges: Vec<(usize, usize, usize)>,
    seqs: &[i64],
    out: &mut Answers,
) {
    for (i, start, end) in ranges {
        let mine = seqs
            .get(start..end)
            .map(<[i64]>::to_vec)
            .unwrap_or_default();
        let answer = match reqs.get(i) {
            Some(Req::Store(..)) => Resp::Store(StoreOutcome::Stored(mine)),
            _ => Resp::Seqs(mine),
        };
        if let Some(slot) = out.get_mut(i) {
            *slot = Some(Ok(answer));
        }
    }
}

/// Answers every `mark_delivered` of the batch: each id in `flipped` goes once, to the first
/// operation asking for it.
pub(crate) fn answer_delivered(
    reqs: &[Req],
    mut flipped: std::collections::HashSet<MessageId>,
    out: &mut Answers,
) {
    for (r, slot) in reqs.iter().zip(out.iter_mut()) {
        if let Req::Delivered(ids) = r {
            let mine = ids.iter().copied().filter(|id| flipped.remove(id));
            *slot = Some(Ok(Resp::Delivered(mine.collect())));
        }
    }
}
