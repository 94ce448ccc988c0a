//! [`AdminStore`] and [`RegistrationInviteStore`] of the memory backend.
//!
//! A memory store lives in one process, so no other process can write to it; the notes exist
//! for the same behaviour on every backend (and for tests of the services).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;

use super::{lock, MemoryStore};
use crate::model::{ChatKind, Session, SessionId, Timestamp, UserId};
use crate::store::{
    AdminStore, ContactState, RegistrationInviteStore, SessionStore, StoreCounts, StoreError,
    StoreResult,
};

/// Operator state of [`MemoryStore`].
#[derive(Debug, Default)]
pub(super) struct AdminState {
    locked: HashSet<UserId>,
    /// (note id, user, written at), ascending.
    notes: Vec<(i64, UserId, Timestamp)>,
    /// The last note id given out (ids are never reused, as on the SQL stores).
    last_note: i64,
    /// Blind index → (expires at, used).
    invites: HashMap<Vec<u8>, (Timestamp, bool)>,
}

impl MemoryStore {
    fn user_exists(&self, user: UserId) -> bool {
        lock(&self.users).by_id.contains_key(&user)
    }

    fn note(&self, user: UserId, at: Timestamp) {
        let mut a = lock(&self.admin);
        a.last_note += 1;
        let id = a.last_note;
        a.notes.push((id, user, at));
    }
}

#[async_trait]
impl AdminStore for MemoryStore {
    async fn user_locked(&self, user: UserId) -> StoreResult<Option<bool>> {
        if !self.user_exists(user) {
            return Ok(None);
        }
        Ok(Some(lock(&self.admin).locked.contains(&user)))
    }

    async fn lock_user(&self, user: UserId, at: Timestamp) -> StoreResult<Option<Vec<SessionId>>> {
        if !self.user_exists(user) {
            return Ok(None);
        }
        lock(&self.admin).locked.insert(user);
        let revoked = self.revoke_sessions_except(user, None).await?;
        if !revoked.is_empty() {
            self.note(user, at);
        }
        Ok(Some(revoked))
    }

    async fn unlock_user(&self, user: UserId) -> StoreResult<bool> {
        if !self.user_exists(user) {
            return Ok(false);
        }
        lock(&self.admin).locked.remove(&user);
        Ok(true)
    }

    async fn revoke_noted(
        &self,
        user: UserId,
        only: Option<SessionId>,
        at: Timestamp,
    ) -> StoreResult<Vec<SessionId>> {
        let revoked = match only {
            Some(id) => {
                if self.revoke_session(user, id).await? {
                    vec![id]
                } else {
                    Vec::new()
                }
            }
            None => self.revoke_sessions_except(user, None).await?,
        };
        if !revoked.is_empty() {
            self.note(user, at);
        }
        Ok(revoked)
    }

    async fn all_sessions_of(&self, user: UserId, limit: u64) -> StoreResult<Vec<Session>> {
        let st = lock(&self.sessions);
        let mut v: Vec<Session> = st
            .by_id
            .values()
            .filter(|s| s.user == user)
            .cloned()
            .collect();
        v.sort_by_key(|s| std::cmp::Reverse(s.id));
        v.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(v)
    }

    async fn revocation_notes(&self, after: i64, limit: u64) -> StoreResult<Vec<(i64, UserId)>> {
        let a = lock(&self.admin);
        Ok(a.notes
            .iter()
            .filter(|(id, _, _)| *id > after)
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|(id, user, _)| (*id, *user))
            .collect())
    }

    async fn last_revocation_note(&self) -> StoreResult<i64> {
        Ok(lock(&self.admin).notes.last().map_or(0, |(id, _, _)| *id))
    }

    async fn purge_revocation_notes(&self, before: Timestamp) -> StoreResult<u64> {
        let mut a = lock(&self.admin);
        let n = a.notes.len();
        a.notes.retain(|(_, _, at)| *at >= before);
        Ok((n - a.notes.len()) as u64)
    }

    async fn counts(&self, now: Timestamp) -> StoreResult<StoreCounts> {
        let mut c = StoreCounts::default();
        {
            let u = lock(&self.users);
            c.users = u.by_id.len() as u64;
            c.avatars = u.avatars.len() as u64;
        }
        {
            let a = lock(&self.admin);
            c.locked_users = a.locked.len() as u64;
            c.open_registration_invites = a
                .invites
                .values()
                .filter(|(expires, used)| !used && *expires > now)
                .count() as u64;
        }
        {
            let st = lock(&self.sessions);
            c.active_sessions = st.by_id.values().filter(|s| s.active).count() as u64;
            c.push_registrations = st.push.len() as u64;
        }
        for contact in lock(&self.contacts).values() {
            match contact.state {
                ContactState::Accepted => c.contacts += 1,
                ContactState::Pending => c.contact_requests += 1,
            }
        }
        {
            let chats = lock(&self.chats);
            for chat in chats.by_id.values() {
                match chat.kind {
                    ChatKind::Chat => c.chats += 1,
                    ChatKind::Channel => c.channels += 1,
                }
            }
            c.chat_members = chats.members.values().map(|m| m.len() as u64).sum();
        }
        c.messages = self.messages.messages.len() as u64;
        c.queued_entries = self
            .messages
            .queues
            .iter()
            .map(|q| q.entries.len() as u64)
            .sum();
        Ok(c)
    }
}

#[async_trait]
impl RegistrationInviteStore for MemoryStore {
    async fn create_registration_invite(
        &self,
        index: &[u8],
        expires_at: Timestamp,
    ) -> StoreResult<()> {
        let mut a = lock(&self.admin);
        if a.invites.contains_key(index) {
            return Err(StoreError::Conflict("invite"));
        }
        a.invites.insert(index.to_vec(), (expires_at, false));
        Ok(())
    }

    async fn use_registration_invite(&self, index: &[u8], now: Timestamp) -> StoreResult<bool> {
        let mut a = lock(&self.admin);
        match a.invites.get_mut(index) {
            Some((expires, used)) if !*used && *expires > now => {
                *used = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn restore_registration_invite(&self, index: &[u8]) -> StoreResult<bool> {
        let mut a = lock(&self.admin);
        match a.invites.get_mut(index) {
            Some((_, used)) if *used => {
                *used = false;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn purge_registration_invites(&self, now: Timestamp) -> StoreResult<u64> {
        let mut a = lock(&self.admin);
        let n = a.invites.len();
        a.invites.retain(|_, (expires, _)| *expires > now);
        Ok((n - a.invites.len()) as u64)
    }
}
