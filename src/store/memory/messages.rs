//! [`MessageStore`] and [`QueueStore`] of the memory backend: sharded maps, no global lock.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use bytes::Bytes;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use crate::model::{
    Acks, Gap, Message, MessageId, NewEntry, NewMessage, QueueItem, QueueTarget, QueuedEntry,
    SessionId, StoreOutcome, Timestamp, UserId,
};
use crate::store::{
    DeliveryStore, HistoryPageSpec, HistoryRows, MessageStore, QueueRows, QueueStore, StoreResult,
};

#[derive(Debug, Clone)]
pub(super) enum Slot {
    Message { id: MessageId, self_copy: bool },
    Event(Bytes),
    Status(Bytes),
    Gap(Gap),
}

#[derive(Debug, Default)]
pub(super) struct DeviceQueue {
    last_seq: i64,
    pub(super) entries: BTreeMap<i64, Slot>,
    /// Queue time of each entry.
    queued_at: BTreeMap<i64, Timestamp>,
}

impl DeviceQueue {
    fn remove(&mut self, seq: i64) -> Option<Slot> {
        self.queued_at.remove(&seq);
        self.entries.remove(&seq)
    }

    /// See [`QueueStore::trim_queues`]; returns the new gap's seq.
    fn trim(&mut self, max_len: u64, expire_before: Timestamp) -> Option<i64> {
        let n = self.entries.len() as u64;
        let overflow = if n > max_len { n - max_len + 1 } else { 0 };
        let expired = self
            .entries
            .iter()
            .take_while(|(seq, slot)| {
                matches!(slot, Slot::Gap(_))
                    || self.queued_at.get(seq).is_some_and(|t| *t < expire_before)
            })
            .count() as u64;
        let k = overflow.max(expired);
        let dropped: Vec<i64> = self.entries.keys().take(k as usize).copied().collect();
        let real = dropped
            .iter()
            .filter(|s| !matches!(self.entries.get(s), Some(Slot::Gap(_))))
            .count();
        if real == 0 {
            return None;
        }
        let last = *dropped.last()?;
        let mut gap = Gap {
            from_seq: dropped[0],
            count: 0,
            overflow: overflow > 0,
            at: Timestamp::now(),
        };
        for seq in &dropped {
            match self.remove(*seq) {
                Some(Slot::Gap(g)) => {
                    gap.from_seq = gap.from_seq.min(g.from_seq);
                    gap.count += g.count;
                }
                Some(_) => gap.count += 1,
                None => {}
            }
        }
        self.entries.insert(last, Slot::Gap(gap));
        self.queued_at.insert(last, gap.at);
        Some(last)
    }
}

/// Message and queue state of [`super::MemoryStore`].
#[derive(Debug, Default)]
pub(super) struct MessageMaps {
    pub(super) messages: DashMap<MessageId, Message>,
    dm_index: DashMap<(UserId, UserId), BTreeSet<MessageId>>,
    /// Message ids per chat (`chat_history`).
    pub(super) chat_index: DashMap<i64, BTreeSet<MessageId>>,
    client_ids: DashMap<(SessionId, String), MessageId>,
    pub(super) queues: DashMap<SessionId, DeviceQueue>,
}

fn pair(a: UserId, b: UserId) -> (UserId, UserId) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

impl MessageMaps {
    fn push(&self, session: SessionId, slot: Slot) -> i64 {
        let mut q = self.queues.entry(session).or_default();
        q.last_seq += 1;
        let seq = q.last_seq;
        q.entries.insert(seq, slot);
        q.queued_at.insert(seq, Timestamp::now());
        seq
    }
}

#[async_trait]
impl MessageStore for super::MemoryStore {
    async fn message(&self, id: MessageId) -> StoreResult<Option<Message>> {
        Ok(self.messages.messages.get(&id).map(|m| m.clone()))
    }

    async fn dm_history(
        &self,
        a: UserId,
        b: UserId,
        before: Option<MessageId>,
        page: HistoryPageSpec,
    ) -> StoreResult<HistoryRows> {
        Ok(match self.messages.dm_index.get(&pair(a, b)) {
            None => HistoryRows::default(),
            Some(set) => self.messages.history_page(&set, before, page),
        })
    }

    async fn dm_count(&self, a: UserId, b: UserId) -> StoreResult<u64> {
        Ok(self
            .messages
            .dm_index
            .get(&pair(a, b))
            .map_or(0, |s| s.len() as u64))
    }

    async fn chat_history(
        &self,
        chat_id: i64,
        before: Option<MessageId>,
        page: HistoryPageSpec,
    ) -> StoreResult<HistoryRows> {
        Ok(self.messages.chat_history(chat_id, before, page))
    }

    async fn chat_count(&self, chat_id: i64) -> StoreResult<u64> {
        Ok(self
            .messages
            .chat_index
            .get(&chat_id)
            .map_or(0, |s| s.len() as u64))
    }

    async fn edit_message(&self, id: MessageId, payload: &str, at: Timestamp) -> StoreResult<bool> {
        Ok(self.messages.edit(id, payload, at))
    }

    async fn delete_message(&self, id: MessageId) -> StoreResult<bool> {
        Ok(self.messages.delete(id))
    }

    async fn set_pinned(&self, id: MessageId, pinned: bool) -> StoreResult<bool> {
        Ok(self.messages.pin(id, pinned))
    }

    async fn set_reaction(
        &self,
        id: MessageId,
        user: UserId,
        reaction: Option<&str>,
    ) -> StoreResult<bool> {
        Ok(self.messages.react(id, user, reaction))
    }
}

#[async_trait]
impl DeliveryStore for super::MemoryStore {
    async fn store_message(
        &self,
        msg: &NewMessage,
        targets: &[QueueTarget],
    ) -> StoreResult<StoreOutcome> {
        let m = &self.messages;
        let id = msg.message.id;
        // The message exists before its client_id is claimed, so a concurrent duplicate always
        // finds the original message.
        let mut message = msg.message.clone();
        message.edited_at = None;
        message.deleted = false;
        message.pinned = false;
        message.reactions.clear();
        m.messages.insert(id, message);
        if let Some(cid) = &msg.client_id {
            match m.client_ids.entry((msg.sender_session, cid.clone())) {
                Entry::Occupied(e) => {
                    let first = *e.get();
                    drop(e);
                    m.messages.remove(&id);
                    return Ok(StoreOutcome::Duplicate(first));
                }
                Entry::Vacant(v) => {
                    v.insert(id);
                }
            }
        }
        if let Some(to) = msg.message.to {
            m.dm_index
                .entry(pair(msg.message.from, to))
                .or_default()
                .insert(id);
        }
        if let Some(chat) = msg.message.chat_id {
            m.chat_index.entry(chat).or_default().insert(id);
        }
        let seqs = targets
            .iter()
            .map(|t| {
                m.push(
                    t.session,
                    Slot::Message {
                        id,
                        self_copy: t.self_copy,
                    },
                )
            })
            .collect();
        Ok(StoreOutcome::Stored(seqs))
    }

    async fn mark_read(&self, id: MessageId) -> StoreResult<(bool, bool)> {
        Ok(match self.messages.messages.get_mut(&id) {
            Some(mut m) => {
                let d = !m.delivered;
                let r = !m.read;
                m.delivered = true;
                m.read = true;
                (d, r)
            }
            None => (false, false),
        })
    }

    async fn enqueue(&self, entries: &[(SessionId, NewEntry)]) -> StoreResult<Vec<i64>> {
        Ok(entries
            .iter()
            .map(|(s, e)| {
                let slot = match e {
                    NewEntry::Event(b) => Slot::Event(b.clone()),
                    NewEntry::Status(b) => Slot::Status(b.clone()),
                };
                self.messages.push(*s, slot)
            })
            .collect())
    }

    async fn queue_after(
        &self,
        session: SessionId,
        after: i64,
        upto: Option<i64>,
        limit: u64,
        max_bytes: u64,
    ) -> StoreResult<QueueRows> {
        let start = after.saturating_add(1);
        let end = upto.unwrap_or(i64::MAX);
        if start > end {
            // BTreeMap::range panics on an inverted range.
            return Ok(QueueRows::default());
        }
        let slots: Vec<(i64, Slot)> = match self.messages.queues.get(&session) {
            None => return Ok(QueueRows::default()),
            Some(q) => q
                .entries
                .range(start..=end)
                .take(usize::try_from(limit).unwrap_or(usize::MAX))
                .map(|(s, slot)| (*s, slot.clone()))
                .collect(),
        };
        let mut out = QueueRows {
            entries: Vec::with_capacity(slots.len()),
            cut: false,
        };
        let mut bytes = 0;
        for (seq, slot) in slots {
            let item = match slot {
                Slot::Event(b) => QueueItem::Event(b),
                Slot::Status(b) => QueueItem::Status(b),
                Slot::Gap(g) => QueueItem::Gap(g),
                Slot::Message { id, self_copy } => match self.messages.messages.get(&id) {
                    Some(m) => QueueItem::Message {
                        message: m.clone(),
                        self_copy,
                    },
                    None => continue,
                },
            };
            let entry = QueuedEntry { seq, item };
            bytes += entry.content_bytes();
            if bytes > max_bytes && !out.entries.is_empty() {
                out.cut = true;
                break;
            }
            out.entries.push(entry);
        }
        Ok(out)
    }

    async fn ack(&self, session: SessionId, acks: &Acks) -> StoreResult<Vec<i64>> {
        let seqs = self.enqueue(&acks.receipts).await?;
        for id in &acks.delivered {
            if let Some(mut m) = self.messages.messages.get_mut(id) {
                m.delivered = true;
            }
        }
        if let Some(mut q) = self.messages.queues.get_mut(&session) {
            let upto: Vec<i64> = q.entries.range(..=acks.upto).map(|(s, _)| *s).collect();
            for seq in upto.into_iter().chain(acks.seqs.iter().copied()) {
                q.remove(seq);
            }
        }
        Ok(seqs)
    }

    async fn last_seq(&self, session: SessionId) -> StoreResult<i64> {
        Ok(self.messages.queues.get(&session).map_or(0, |q| q.last_seq))
    }

    async fn queue_seqs(&self, session: SessionId, after: i64, upto: i64) -> StoreResult<Vec<i64>> {
        if after >= upto {
            return Ok(Vec::new());
        }
        Ok(self
            .messages
            .queues
            .get(&session)
            .map_or_else(Vec::new, |q| {
                q.entries.range(after + 1..=upto).map(|(s, _)| *s).collect()
            }))
    }
}

#[async_trait]
impl QueueStore for super::MemoryStore {
    async fn drop_queue(&self, session: SessionId) -> StoreResult<()> {
        if let Some(mut q) = self.messages.queues.get_mut(&session) {
            q.entries.clear();
            q.queued_at.clear();
        }
        Ok(())
    }

    async fn trim_queues(
        &self,
        max_len: u64,
        expire_before: Timestamp,
    ) -> StoreResult<Vec<(SessionId, i64)>> {
        let mut gaps = Vec::new();
        for mut q in self.messages.queues.iter_mut() {
            if let Some(seq) = q.trim(max_len, expire_before) {
                gaps.push((*q.key(), seq));
            }
        }
        Ok(gaps)
    }

    async fn purge_messages(
        &self,
        history_before: Timestamp,
        dedupe_before: Timestamp,
    ) -> StoreResult<u64> {
        let m = &self.messages;
        let referenced: std::collections::HashSet<MessageId> = m
            .queues
            .iter()
            .flat_map(|q| {
                q.entries
                    .values()
                    .filter_map(|s| match s {
                        Slot::Message { id, .. } => Some(*id),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let old: Vec<Message> = m
            .messages
            .iter()
            .filter(|e| e.created_at < history_before && !referenced.contains(e.key()))
            .map(|e| e.value().clone())
            .collect();
        for msg in &old {
            m.messages.remove(&msg.id);
            if let Some(to) = msg.to {
                if let Some(mut set) = m.dm_index.get_mut(&pair(msg.from, to)) {
                    set.remove(&msg.id);
                }
            }
            if let Some(chat) = msg.chat_id {
                if let Some(mut set) = m.chat_index.get_mut(&chat) {
                    set.remove(&msg.id);
                }
            }
        }
        m.client_ids.retain(|_, id| {
            m.messages
                .get(id)
                .is_some_and(|msg| msg.created_at >= dedupe_before)
        });
        Ok(old.len() as u64)
    }
}

#[cfg(test)]
#[path = "trim_props.rs"]
mod trim_props;
