//! [`ScheduleStore`] of the memory backend: one map under one lock, so every operation is
//! atomic.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{lock, MemoryStore};
use crate::model::{Timestamp, UserId};
use crate::store::{
    Claim, ScheduleId, ScheduleOutcome, ScheduleStore, ScheduledMessage, StoreError, StoreResult,
};

/// One row: the message and its claim (token, lease end). A deferred row has no token and a
/// lease end that says when it becomes claimable again.
#[derive(Debug)]
pub(super) struct Row {
    msg: ScheduledMessage,
    token: Option<u64>,
    until: Option<Timestamp>,
}

/// Scheduled messages of [`MemoryStore`], by id.
pub(super) type Schedules = BTreeMap<ScheduleId, Row>;

impl Row {
    fn free_at(&self, now: Timestamp) -> bool {
        self.until.is_none_or(|u| u <= now)
    }
}

impl MemoryStore {
    /// Deletes every schedule of `owner` (account erasure).
    pub(super) fn erase_schedules(&self, owner: UserId) {
        lock(&self.schedules).retain(|_, r| r.msg.owner != owner);
    }
}

#[async_trait]
impl ScheduleStore for MemoryStore {
    async fn create_schedule(
        &self,
        s: &ScheduledMessage,
        max_pending: u64,
    ) -> StoreResult<ScheduleOutcome> {
        // Users before schedules (the erase takes them in this order too).
        let users = lock(&self.users);
        if !users.by_id.contains_key(&s.owner) {
            return Ok(ScheduleOutcome::NoUser);
        }
        let mut all = lock(&self.schedules);
        if let Some(cid) = &s.client_id {
            if let Some(r) = all
                .values()
                .find(|r| r.msg.session == s.session && r.msg.client_id.as_ref() == Some(cid))
            {
                return Ok(ScheduleOutcome::Duplicate(r.msg.id));
            }
        }
        let mine = all.values().filter(|r| r.msg.owner == s.owner);
        let (count, earliest) = mine.fold((0u64, None::<Timestamp>), |(n, e), r| {
            (n + 1, Some(e.map_or(r.msg.due_at, |e| e.min(r.msg.due_at))))
        });
        if count >= max_pending {
            return Ok(ScheduleOutcome::Full(earliest.unwrap_or(s.due_at)));
        }
        if all.contains_key(&s.id) {
            return Err(StoreError::Conflict("schedule_id"));
        }
        all.insert(
            s.id,
            Row {
                msg: s.clone(),
                token: None,
                until: None,
            },
        );
        Ok(ScheduleOutcome::Created)
    }

    async fn schedules_of(
        &self,
        owner: UserId,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(Vec<ScheduledMessage>, u64)> {
        let all = lock(&self.schedules);
        let mut mine: Vec<&ScheduledMessage> = all
            .values()
            .map(|r| &r.msg)
            .filter(|m| m.owner == owner)
            .collect();
        mine.sort_by_key(|m| (m.due_at, m.id));
        let total = mine.len() as u64;
        let page = mine
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .cloned()
            .collect();
        Ok((page, total))
    }

    async fn cancel_schedule(
        &self,
        owner: UserId,
        id: ScheduleId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let mut all = lock(&self.schedules);
        match all.get(&id) {
            Some(r) if r.msg.owner == owner && (r.token.is_none() || r.free_at(now)) => {
                all.remove(&id);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn claim_due(&self, claim: Claim, limit: u64) -> StoreResult<Vec<ScheduledMessage>> {
        let mut all = lock(&self.schedules);
        let mut due: Vec<(Timestamp, ScheduleId)> = all
            .values()
            .filter(|r| r.msg.due_at <= claim.now && r.free_at(claim.now))
            .map(|r| (r.msg.due_at, r.msg.id))
            .collect();
        due.sort();
        due.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let mut out = Vec::with_capacity(due.len());
        for (_, id) in due {
            if let Some(r) = all.get_mut(&id) {
                r.token = Some(claim.token);
                r.until = Some(claim.until);
                out.push(r.msg.clone());
            }
        }
        Ok(out)
    }

    async fn finish_schedule(&self, id: ScheduleId, token: u64) -> StoreResult<bool> {
        let mut all = lock(&self.schedules);
        if all.get(&id).is_some_and(|r| r.token == Some(token)) {
            all.remove(&id);
            return Ok(true);
        }
        Ok(false)
    }

    async fn defer_schedule(
        &self,
        id: ScheduleId,
        token: u64,
        not_before: Timestamp,
    ) -> StoreResult<bool> {
        let mut all = lock(&self.schedules);
        match all.get_mut(&id) {
            Some(r) if r.token == Some(token) => {
                r.token = None;
                r.until = Some(not_before);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn next_due_after(&self, after: Timestamp) -> StoreResult<Option<Timestamp>> {
        Ok(lock(&self.schedules)
            .values()
            .map(|r| r.msg.due_at)
            .filter(|d| *d > after)
            .min())
    }
}
