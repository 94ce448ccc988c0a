//! [`EraseStore`] of the memory backend. The erase holds the locks of users, sessions, contacts
//! and chats together (always in that order; every other operation holds at most one of them),
//! so no other call sees it half done.

use async_trait::async_trait;

use super::{lock, MemoryStore};
use crate::model::{Session, SessionId, UserId};
use crate::store::{Contact, ContactState, EraseStore, ErasedAccount, StoreResult};

/// Accepted first, then pending; each by the other user's uid.
fn sort_relationships(v: &mut [Contact], user: UserId) {
    v.sort_by_key(|c| {
        let other = if c.requester == user {
            c.target
        } else {
            c.requester
        };
        (c.state != ContactState::Accepted, other)
    });
}

#[async_trait]
impl EraseStore for MemoryStore {
    async fn erase_user(&self, user: UserId) -> StoreResult<Option<ErasedAccount>> {
        let mut users = lock(&self.users);
        let Some(record) = users.by_id.remove(&user) else {
            return Ok(None);
        };
        users.by_phone.remove(&record.phone_index);
        users.secret_keys.remove(&user);
        users.settings.remove(&user);
        users.avatars.remove(&user);
        users.retired.insert(user);
        users.imported.remove(&user);
        users.import_graph_done.remove(&user);
        users.import_tokens_done.remove(&user);
        self.erase_schedules(user);

        let mut st = lock(&self.sessions);
        let mut sessions: Vec<SessionId> = st
            .by_id
            .values()
            .filter(|s| s.user == user)
            .map(|s| s.id)
            .collect();
        sessions.sort();
        let mut active_sessions = st.by_user.remove(&user).unwrap_or_default();
        active_sessions.sort();
        st.active.retain(|(u, _), _| *u != user);
        for id in &sessions {
            st.by_id.remove(id);
            st.push.remove(id);
        }

        let mut contacts = lock(&self.contacts);
        let mut mine = Vec::new();
        contacts.retain(|_, c| {
            let involved = c.requester == user || c.target == user;
            if involved {
                mine.push(c.clone());
            }
            !involved
        });
        sort_relationships(&mut mine, user);

        let chats = lock(&self.chats).erase_user(user);
        for id in &sessions {
            self.messages.queues.remove(id);
        }
        Ok(Some(ErasedAccount {
            active_sessions,
            sessions,
            contacts: mine,
            chats,
        }))
    }

    async fn relationships_of(&self, user: UserId, limit: u64) -> StoreResult<(Vec<Contact>, u64)> {
        let c = lock(&self.contacts);
        let mut mine: Vec<Contact> = c
            .values()
            .filter(|x| x.requester == user || x.target == user)
            .cloned()
            .collect();
        sort_relationships(&mut mine, user);
        let total = mine.len() as u64;
        mine.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok((mine, total))
    }

    async fn sessions_ever(&self, user: UserId, limit: u64) -> StoreResult<(Vec<Session>, u64)> {
        let st = lock(&self.sessions);
        let mut all: Vec<Session> = st
            .by_id
            .values()
            .filter(|s| s.user == user)
            .cloned()
            .collect();
        all.sort_by_key(|s| std::cmp::Reverse(s.id));
        let total = all.len() as u64;
        all.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok((all, total))
    }

    async fn queued_entries(&self, sessions: &[SessionId]) -> StoreResult<u64> {
        let distinct: std::collections::BTreeSet<SessionId> = sessions.iter().copied().collect();
        Ok(distinct
            .iter()
            .filter_map(|id| self.messages.queues.get(id).map(|q| q.entries.len() as u64))
            .sum())
    }
}
