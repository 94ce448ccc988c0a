//! Message management (edit, delete, pin, react), chat history and reaction loading of
//! [`SqliteStore`] (schema: `0006_message_mgmt.sql`). The [`MessageStore`](crate::store::MessageStore)
//! impl in `sqlite_messages.rs` delegates here.
//!
//! These writes are rare, so they run as ordinary statements on the writer pool rather than
//! through the group-commit writer.

use std::collections::HashMap;

use sqlx::Row;

use super::messages::{clamp, hex, id_blob, id_of, json, message_from_row, MSG_COLS};
use super::{be, uid_of, SqliteStore};
use crate::model::{Message, MessageId, QueueItem, QueuedEntry, Timestamp, UserId};
use crate::store::StoreResult;

/// Reactions of the messages listed in `?1` (a JSON array of hex ids), in reacting order.
const REACTIONS: &str = "SELECT message_id, uid, reaction FROM reactions \
     WHERE message_id IN (SELECT unhex(value) FROM json_each(?1)) ORDER BY rowid";

impl SqliteStore {
    /// Fills the `reactions` of `msgs` with one query.
    pub(super) async fn load_reactions(&self, msgs: &mut [Message]) -> StoreResult<()> {
        self.fill_reactions(msgs.iter_mut().collect()).await
    }

    /// Fills the `reactions` of the messages of a queue page with one query.
    pub(super) async fn queue_reactions(&self, entries: &mut [QueuedEntry]) -> StoreResult<()> {
        let msgs = entries
            .iter_mut()
            .filter_map(|e| match &mut e.item {
                QueueItem::Message { message, .. } => Some(message),
                _ => None,
            })
            .collect();
        self.fill_reactions(msgs).await
    }

    async fn fill_reactions(&self, mut msgs: Vec<&mut Message>) -> StoreResult<()> {
        if msgs.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = msgs.iter().map(|m| hex(&id_blob(m.id))).collect();
        let rows = sqlx::query(REACTIONS)
            .bind(json(&ids)?)
            .fetch_all(&self.pool)
            .await
            .map_err(be)?;
        if rows.is_empty() {
            return Ok(());
        }
        // A message may appear more than once (a queue page never repeats one, but be safe).
        let mut index: HashMap<MessageId, Vec<usize>> = HashMap::new();
        for (i, m) in msgs.iter().enumerate() {
            index.entry(m.id).or_default().push(i);
        }
        for row in &rows {
            let id = id_of(row, "message_id")?;
            let reaction: String = row.try_get("reaction").map_err(be)?;
            let user = uid_of(row, "uid")?;
            for &i in index.get(&id).into_iter().flatten() {
                msgs[i]
                    .reactions
                    .entry(reaction.clone())
                    .or_default()
                    .push(user);
            }
        }
        Ok(())
    }

    /// See [`MessageStore::chat_history`](crate::store::MessageStore::chat_history).
    pub(super) async fn chat_history_page(
        &self,
        chat_id: i64,
        before: Option<MessageId>,
        skip: u64,
        take: u64,
    ) -> StoreResult<Vec<Message>> {
        self.history_rows("m.chat_id = ?1", &[chat_id], before, skip, take)
            .await
    }

    /// One page of a conversation, newest first: `filter` selects it over `m` with `?1..?k`
    /// bound to `keys`. Two statement shapes rather than `(? IS NULL OR id < ?)`, which would
    /// hide the cursor range from the index.
    pub(super) async fn history_rows(
        &self,
        filter: &str,
        keys: &[i64],
        before: Option<MessageId>,
        skip: u64,
        take: u64,
    ) -> StoreResult<Vec<Message>> {
        let k = keys.len();
        let cursor = if before.is_some() {
            format!("AND m.id < ?{}", k + 3)
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT {MSG_COLS} FROM messages m WHERE {filter} {cursor} \
             ORDER BY m.id DESC LIMIT ?{} OFFSET ?{}",
            k + 1,
            k + 2
        );
        let mut query = sqlx::query(&sql);
        for key in keys {
            query = query.bind(*key);
        }
        query = query.bind(clamp(take)).bind(clamp(skip));
        if let Some(before) = before {
            query = query.bind(id_blob(before));
        }
        let rows = query.fetch_all(&self.pool).await.map_err(be)?;
        let mut msgs = rows
            .iter()
            .map(message_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        self.load_reactions(&mut msgs).await?;
        Ok(msgs)
    }

    /// See [`MessageStore::chat_count`](crate::store::MessageStore::chat_count).
    pub(super) async fn chat_total(&self, chat_id: i64) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE chat_id = ?")
            .bind(chat_id)
            .fetch_one(&self.pool)
            .await
            .map_err(be)?;
        Ok(n.max(0) as u64)
    }

    /// See [`MessageStore::edit_message`](crate::store::MessageStore::edit_message).
    pub(super) async fn edit(
        &self,
        id: MessageId,
        payload: &str,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE messages SET payload = ?, edited_at = ? WHERE id = ? AND deleted = 0",
        )
        .bind(payload)
        .bind(at.millis())
        .bind(id_blob(id))
        .execute(&self.writer)
        .await
        .map_err(be)?;
        Ok(r.rows_affected() == 1)
    }

    /// See [`MessageStore::delete_message`](crate::store::MessageStore::delete_message).
    pub(super) async fn delete(&self, id: MessageId) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE messages SET deleted = 1, payload = '', signature = NULL WHERE id = ?",
        )
        .bind(id_blob(id))
        .execute(&self.writer)
        .await
        .map_err(be)?;
        Ok(r.rows_affected() == 1)
    }

    /// See [`MessageStore::set_pinned`](crate::store::MessageStore::set_pinned).
    pub(super) async fn pin(&self, id: MessageId, pinned: bool) -> StoreResult<bool> {
        let r = sqlx::query("UPDATE messages SET pinned = ? WHERE id = ?")
            .bind(pinned)
            .bind(id_blob(id))
            .execute(&self.writer)
            .await
            .map_err(be)?;
        Ok(r.rows_affected() == 1)
    }

    /// See [`MessageStore::set_reaction`](crate::store::MessageStore::set_reaction).
    pub(super) async fn react(
        &self,
        id: MessageId,
        user: UserId,
        reaction: Option<&str>,
    ) -> StoreResult<bool> {
        let id = id_blob(id);
        let uid = i64::from(user.get());
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(be)?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM messages WHERE id = ?")
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(be)?;
        if exists.is_none() {
            tx.rollback().await.map_err(be)?;
            return Ok(false);
        }
        // A changed reaction is deleted and inserted again (a new, larger rowid: the user moves
        // to the end of the new emoji's list); the same one again stays where it is.
        sqlx::query(
            "DELETE FROM reactions WHERE message_id = ?1 AND uid = ?2 AND reaction IS NOT ?3",
        )
        .bind(&id)
        .bind(uid)
        .bind(reaction)
        .execute(&mut *tx)
        .await
        .map_err(be)?;
        if let Some(reaction) = reaction {
            sqlx::query(
                "INSERT INTO reactions (message_id, uid, reaction, at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (message_id, uid) DO NOTHING",
            )
            .bind(&id)
            .bind(uid)
            .bind(reaction)
            .bind(Timestamp::now().millis())
            .execute(&mut *tx)
            .await
            .map_err(be)?;
        }
        tx.commit().await.map_err(be)?;
        Ok(true)
    }
}
