//! [`MessageStore`] and [`QueueStore`] of [`MysqlStore`].
//!
//! Message ids are `BINARY(16)` big-endian, so `ORDER BY id` is time order. Multi-row writes run
//! in one transaction. Seqs: each session's counter row in `queue_seq` is bumped with
//! `INSERT … ON DUPLICATE KEY UPDATE` (which keeps the row locked until COMMIT) and read back
//! with `SELECT … FOR UPDATE`, so appends to one session are serialized and their seqs are
//! gap-free and increasing; counters are touched in ascending session order so concurrent
//! fan-outs lock them in one order. Acks read the entries they remove with `FOR UPDATE` and
//! delete exactly those (MySQL has no `DELETE … RETURNING`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::mysql::MySqlRow;
use sqlx::{MySqlConnection, Row};

use super::{be, clamp, marks, opt_text_of, pair, text_of, uid_of, MysqlStore, TxResult};
use crate::model::{
    AckSelector, AckedEntry, Gap, Message, MessageId, NewMessage, QueueItem, QueueTarget,
    QueuedEntry, SessionId, StoreOutcome, Timestamp, UserId,
};
use crate::store::{MessageStore, QueueStore, StoreError, StoreResult};

pub(super) const MSG_COLS: &str = "m.id, m.from_uid, m.to_uid, m.chat_id, m.payload, \
     m.signature, m.created_at, m.delivered, m.is_read, m.edited_at, m.deleted, m.pinned";

/// Queue rows per INSERT statement (6 parameters each).
const INSERT_CHUNK: usize = 1000;
/// Values per `IN (…)` list.
const IN_CHUNK: usize = 500;

pub(super) fn id_blob(id: MessageId) -> Vec<u8> {
    id.as_u128().to_be_bytes().to_vec()
}

pub(super) fn id_of(row: &MySqlRow, col: &str) -> StoreResult<MessageId> {
    let b: Vec<u8> = row.try_get(col).map_err(be)?;
    <[u8; 16]>::try_from(b.as_slice())
        .map(|a| MessageId::from_u128(u128::from_be_bytes(a)))
        .map_err(|_| StoreError::Backend(format!("corrupt message id in column {col}").into()))
}

fn opt_uid_of(row: &MySqlRow, col: &str) -> StoreResult<Option<UserId>> {
    let n: Option<i64> = row.try_get(col).map_err(be)?;
    n.map(|_| uid_of(row, col)).transpose()
}

/// A message from the columns of [`MSG_COLS`], without its reactions (see `load_reactions`).
pub(super) fn message_from_row(row: &MySqlRow) -> StoreResult<Message> {
    let edited_at: Option<i64> = row.try_get("edited_at").map_err(be)?;
    Ok(Message {
        id: id_of(row, "id")?,
        from: uid_of(row, "from_uid")?,
        to: opt_uid_of(row, "to_uid")?,
        chat_id: row.try_get("chat_id").map_err(be)?,
        payload: text_of(row, "payload")?,
        signature: opt_text_of(row, "signature")?,
        created_at: Timestamp::from_millis(row.try_get("created_at").map_err(be)?),
        delivered: row.try_get("delivered").map_err(be)?,
        read: row.try_get("is_read").map_err(be)?,
        edited_at: edited_at.map(Timestamp::from_millis),
        deleted: row.try_get("deleted").map_err(be)?,
        pinned: row.try_get("pinned").map_err(be)?,
        reactions: Default::default(),
    })
}

fn gap_from_row(row: &MySqlRow, from_seq: i64) -> StoreResult<Gap> {
    let count: i64 = row.try_get("gap_count").map_err(be)?;
    Ok(Gap {
        from_seq,
        count: count.max(0) as u64,
        overflow: row.try_get("gap_overflow").map_err(be)?,
        at: Timestamp::from_millis(row.try_get("gap_at").map_err(be)?),
    })
}

/// One queue entry to append: its session, self-copy flag, message id or event.
pub(super) struct Slot<'a> {
    session: i64,
    self_copy: bool,
    message: Option<&'a [u8]>,
    event: Option<&'a [u8]>,
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

impl MysqlStore {
    /// One run of [`MessageStore::store_message`].
    async fn store_tx(&self, msg: &NewMessage, targets: &[QueueTarget]) -> TxResult<StoreOutcome> {
        let mut tx = self.pool.begin().await?;
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

    /// One run of [`MessageStore::mark_delivered`].
    async fn delivered_tx(&self, ids: &[MessageId]) -> TxResult<Vec<MessageId>> {
        let mut tx = self.pool.begin().await?;
        let mut flipped = std::collections::HashSet::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let list = marks(chunk.len());
            let sql = format!(
                "SELECT id FROM messages WHERE id IN ({list}) AND delivered = 0 FOR UPDATE"
            );
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

    /// One run of [`QueueStore::ack`].
    async fn ack_tx(&self, session: SessionId, sel: AckSelector) -> TxResult<Vec<AckedEntry>> {
        let mut tx = self.pool.begin().await?;
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
        let rows = query.fetch_all(&mut *tx).await?;
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
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(acked)
    }

    /// One run of [`QueueStore::enqueue_events`].
    async fn enqueue_tx(&self, events: &[(SessionId, Bytes)]) -> TxResult<Vec<i64>> {
        let mut tx = self.pool.begin().await?;
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
}

#[async_trait]
impl MessageStore for MysqlStore {
    async fn store_message(
        &self,
        msg: &NewMessage,
        targets: &[QueueTarget],
    ) -> StoreResult<StoreOutcome> {
        self.retry(move || self.store_tx(msg, targets)).await
    }

    async fn message(&self, id: MessageId) -> StoreResult<Option<Message>> {
        let row = sqlx::query(&format!("SELECT {MSG_COLS} FROM messages m WHERE m.id = ?"))
            .bind(id_blob(id))
            .fetch_optional(&self.pool)
            .await
            .map_err(be)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut msg = [message_from_row(&row)?];
        self.load_reactions(&mut msg).await?;
        let [msg] = msg;
        Ok(Some(msg))
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
        self.history_rows("m.dm_lo = ? AND m.dm_hi = ?", &[lo, hi], before, skip, take)
            .await
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
        self.retry(move || self.delivered_tx(ids)).await
    }

    async fn mark_read(&self, id: MessageId) -> StoreResult<(bool, bool)> {
        let id = &id_blob(id);
        self.retry(move || async move {
            let mut tx = self.pool.begin().await?;
            let row =
                sqlx::query("SELECT delivered, is_read FROM messages WHERE id = ? FOR UPDATE")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(row) = row else {
                tx.rollback().await?;
                return Ok((false, false));
            };
            let delivered: bool = row.try_get("delivered")?;
            let read: bool = row.try_get("is_read")?;
            if !(delivered && read) {
                sqlx::query("UPDATE messages SET delivered = 1, is_read = 1 WHERE id = ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok((!delivered, !read))
        })
        .await
    }

    async fn chat_history(
        &self,
        chat_id: i64,
        before: Option<MessageId>,
        skip: u64,
        take: u64,
    ) -> StoreResult<Vec<Message>> {
        self.history_rows("m.chat_id = ?", &[chat_id], before, skip, take)
            .await
    }

    async fn chat_count(&self, chat_id: i64) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE chat_id = ?")
            .bind(chat_id)
            .fetch_one(&self.pool)
            .await
            .map_err(be)?;
        Ok(n.max(0) as u64)
    }

    async fn edit_message(&self, id: MessageId, payload: &str, at: Timestamp) -> StoreResult<bool> {
        self.edit(id, payload, at).await
    }

    async fn delete_message(&self, id: MessageId) -> StoreResult<bool> {
        self.delete(id).await
    }

    async fn set_pinned(&self, id: MessageId, pinned: bool) -> StoreResult<bool> {
        self.pin(id, pinned).await
    }

    async fn set_reaction(
        &self,
        id: MessageId,
        user: UserId,
        reaction: Option<&str>,
    ) -> StoreResult<bool> {
        self.react(id, user, reaction).await
    }
}

#[async_trait]
impl QueueStore for MysqlStore {
    async fn enqueue_events(&self, events: &[(SessionId, Bytes)]) -> StoreResult<Vec<i64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.retry(move || self.enqueue_tx(events)).await
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
            let message_found = r.try_get::<Option<Vec<u8>>, _>("id").map_err(be)?.is_some();
            let item = match (event, gap_from) {
                (Some(e), _) => QueueItem::Event(Bytes::from(e)),
                (None, Some(from_seq)) => QueueItem::Gap(gap_from_row(r, from_seq)?),
                // The purge keeps queued messages; should one be missing, its entry is skipped.
                (None, None) if !message_found => continue,
                (None, None) => QueueItem::Message {
                    message: message_from_row(r)?,
                    self_copy: r.try_get("self_copy").map_err(be)?,
                },
            };
            out.push(QueuedEntry { seq, item });
        }
        self.queue_reactions(&mut out).await?;
        Ok(out)
    }

    async fn ack(&self, session: SessionId, sel: AckSelector) -> StoreResult<Vec<AckedEntry>> {
        self.retry(move || self.ack_tx(session, sel)).await
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
        self.retry(move || async move {
            sqlx::query("DELETE FROM queue WHERE session_id = ?")
                .bind(session.0)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn trim_queues(
        &self,
        max_len: u64,
        expire_before: Timestamp,
    ) -> StoreResult<Vec<(SessionId, i64)>> {
        self.trim_all(max_len, expire_before).await
    }

    async fn purge_messages(
        &self,
        history_before: Timestamp,
        dedupe_before: Timestamp,
    ) -> StoreResult<u64> {
        self.purge(history_before, dedupe_before).await
    }
}
