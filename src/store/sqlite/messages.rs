//! [`MessageStore`] of [`SqliteStore`]: reading messages, history pages under a byte budget,
//! and management (edit, delete, pin, react). Message ids are 16-byte big-endian BLOBs, so
//! `ORDER BY id` is time order.

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection};

use super::db::be;
use super::rows::{all, exec, id_blob, one};
use super::SqliteStore;
use crate::model::{Message, MessageId, Timestamp, UserId};
use crate::store::sql::rows::{self as dec, clamp, pair, Cells, MESSAGE_COLS};
use crate::store::{HistoryPageSpec, HistoryRows, MessageStore, StoreResult};

/// Fills the `reactions` of `m`, in the order users reacted (`rowid`).
pub(super) fn load_reactions(c: &Connection, m: &mut Message) -> StoreResult<()> {
    let rows = all(
        c,
        "SELECT uid, reaction FROM reactions WHERE message_id = ?1 ORDER BY rowid",
        [id_blob(m.id)],
        |r| Ok((r.uid("uid")?, r.text("reaction")?)),
    )?;
    for (user, reaction) in rows {
        m.reactions.entry(reaction).or_default().push(user);
    }
    Ok(())
}

/// One history page, newest first: `filter` selects the conversation over `m` with `?1..?k`
/// bound to `keys`. Rows are stepped one at a time and the read stops at the byte budget, so a
/// page of large messages is never read past it. Two statement shapes rather than
/// `(? IS NULL OR id < ?)`, which would hide the cursor range from the index.
fn history(
    c: &Connection,
    filter: &str,
    keys: &[i64],
    before: Option<MessageId>,
    page: HistoryPageSpec,
) -> StoreResult<HistoryRows> {
    let k = keys.len();
    let cursor = match before {
        Some(_) => format!("AND m.id < ?{}", k + 3),
        None => String::new(),
    };
    let sql = format!(
        "SELECT {MESSAGE_COLS} FROM messages m WHERE {filter} {cursor} \
         ORDER BY m.id DESC LIMIT ?{} OFFSET ?{}",
        k + 1,
        k + 2
    );
    let mut st = c.prepare_cached(&sql).map_err(be)?;
    let mut args: Vec<Value> = keys.iter().map(|n| Value::Integer(*n)).collect();
    args.push(Value::Integer(clamp(page.take)));
    args.push(Value::Integer(clamp(page.skip)));
    if let Some(b) = before {
        args.push(Value::Blob(id_blob(b).to_vec()));
    }
    let mut rows = st.query(params_from_iter(args)).map_err(be)?;
    let mut out = HistoryRows::default();
    let mut bytes = 0;
    while let Some(r) = rows.next().map_err(be)? {
        let m = dec::message(r)?;
        bytes += m.content_bytes();
        if bytes > page.max_bytes && !out.messages.is_empty() {
            out.cut = true;
            break;
        }
        out.messages.push(m);
    }
    drop(rows);
    for m in &mut out.messages {
        load_reactions(c, m)?;
    }
    Ok(out)
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn message(&self, id: MessageId) -> StoreResult<Option<Message>> {
        self.db
            .read(move |c| {
                let m = one(
                    c,
                    &format!("SELECT {MESSAGE_COLS} FROM messages m WHERE m.id = ?1"),
                    [id_blob(id)],
                    |r| dec::message(r),
                )?;
                m.map(|mut m| load_reactions(c, &mut m).map(|()| m))
                    .transpose()
            })
            .await
    }

    async fn dm_history(
        &self,
        a: UserId,
        b: UserId,
        before: Option<MessageId>,
        page: HistoryPageSpec,
    ) -> StoreResult<HistoryRows> {
        let (lo, hi) = pair(a, b);
        self.db
            .read(move |c| history(c, "m.dm_lo = ?1 AND m.dm_hi = ?2", &[lo, hi], before, page))
            .await
    }

    async fn dm_count(&self, a: UserId, b: UserId) -> StoreResult<u64> {
        let (lo, hi) = pair(a, b);
        self.db
            .read(move |c| {
                let n = one(
                    c,
                    "SELECT COUNT(*) AS n FROM messages WHERE dm_lo = ?1 AND dm_hi = ?2",
                    [lo, hi],
                    |r| r.int("n"),
                )?;
                Ok(n.unwrap_or(0).max(0) as u64)
            })
            .await
    }

    async fn chat_history(
        &self,
        chat_id: i64,
        before: Option<MessageId>,
        page: HistoryPageSpec,
    ) -> StoreResult<HistoryRows> {
        self.db
            .read(move |c| history(c, "m.chat_id = ?1", &[chat_id], before, page))
            .await
    }

    async fn chat_count(&self, chat_id: i64) -> StoreResult<u64> {
        self.db
            .read(move |c| {
                let n = one(
                    c,
                    "SELECT COUNT(*) AS n FROM messages WHERE chat_id = ?1",
                    [chat_id],
                    |r| r.int("n"),
                )?;
                Ok(n.unwrap_or(0).max(0) as u64)
            })
            .await
    }

    async fn edit_message(&self, id: MessageId, payload: &str, at: Timestamp) -> StoreResult<bool> {
        let payload = payload.to_owned();
        self.db
            .write(move |t| {
                let n = exec(
                    t,
                    "UPDATE messages SET payload = ?1, edited_at = ?2 WHERE id = ?3 AND deleted = 0",
                    params![payload, at.millis(), id_blob(id)],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn delete_message(&self, id: MessageId) -> StoreResult<bool> {
        self.db
            .write(move |t| {
                let n = exec(
                    t,
                    "UPDATE messages SET deleted = 1, payload = '', signature = NULL WHERE id = ?1",
                    [id_blob(id)],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn set_pinned(&self, id: MessageId, pinned: bool) -> StoreResult<bool> {
        self.db
            .write(move |t| {
                let n = exec(
                    t,
                    "UPDATE messages SET pinned = ?1 WHERE id = ?2",
                    params![pinned, id_blob(id)],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn set_reaction(
        &self,
        id: MessageId,
        user: UserId,
        reaction: Option<&str>,
    ) -> StoreResult<bool> {
        let reaction = reaction.map(str::to_owned);
        self.db
            .write(move |t| {
                let id = id_blob(id);
                if one(t, "SELECT 1 AS x FROM messages WHERE id = ?1", [id], |_| Ok(()))?.is_none()
                {
                    return Ok(false);
                }
                let me = dec::uid(user);
                // A changed reaction is deleted and inserted again (a new, larger rowid: the
                // user moves to the end of the new emoji's list); the same one again stays.
                exec(
                    t,
                    "DELETE FROM reactions WHERE message_id = ?1 AND uid = ?2 AND reaction IS NOT ?3",
                    params![id, me, reaction],
                )?;
                if let Some(reaction) = reaction {
                    exec(
                        t,
                        "INSERT INTO reactions (message_id, uid, reaction, at) \
                         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (message_id, uid) DO NOTHING",
                        params![id, me, reaction, Timestamp::now().millis()],
                    )?;
                }
                Ok(true)
            })
            .await
    }
}
