//! Read caches for the per-message lookups (active sessions of a user, accepted contact pairs,
//! members of a chat).
//!
//! Every change to sessions and contacts goes through the services of this node, which
//! invalidate the entries they touch, so the caches never serve a stale answer on one node.
//! With several nodes (not supported yet) the invalidations must travel on the bus.
//!
//! A fill races with an invalidation: the filler notes a generation before reading the store,
//! inserts, then re-checks the generation and removes its entry if an invalidation happened in
//! between; the invalidator bumps the generation and then removes. Either way no stale entry
//! survives.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use super::{Core, Result};
use crate::model::{SessionId, UserId};
use crate::store::ContactState;

/// Entries kept before a cache is cleared wholesale (a crude but bounded policy).
const MAX_ENTRIES: usize = 200_000;

/// The caches held by [`Core`].
#[derive(Debug, Default)]
pub struct ReadCache {
    sessions: DashMap<UserId, Arc<[SessionId]>>,
    sessions_gen: AtomicU64,
    contacts: DashMap<(UserId, UserId), bool>,
    contacts_gen: AtomicU64,
    chat_members: DashMap<i64, Arc<[UserId]>>,
    chat_members_gen: AtomicU64,
}

fn pair(a: UserId, b: UserId) -> (UserId, UserId) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

impl Core {
    /// Active session ids of `user`.
    pub(crate) async fn session_ids(&self, user: UserId) -> Result<Arc<[SessionId]>> {
        if let Some(ids) = self.cache.sessions.get(&user) {
            return Ok(ids.clone());
        }
        let c = &self.cache;
        let gen = c.sessions_gen.load(Ordering::SeqCst);
        let ids: Arc<[SessionId]> = self
            .store
            .sessions_of(user)
            .await?
            .iter()
            .map(|s| s.id)
            .collect();
        if c.sessions.len() >= MAX_ENTRIES {
            c.sessions.clear();
        }
        c.sessions.insert(user, ids.clone());
        if c.sessions_gen.load(Ordering::SeqCst) != gen {
            c.sessions.remove(&user);
        }
        Ok(ids)
    }

    /// Forget `user`'s sessions (after a login, revocation or logout).
    pub(crate) fn sessions_changed(&self, user: UserId) {
        self.cache.sessions_gen.fetch_add(1, Ordering::SeqCst);
        self.cache.sessions.remove(&user);
    }

    /// True when `a` and `b` are accepted contacts.
    pub(crate) async fn are_contacts(&self, a: UserId, b: UserId) -> Result<bool> {
        let key = pair(a, b);
        if let Some(v) = self.cache.contacts.get(&key) {
            return Ok(*v);
        }
        let c = &self.cache;
        let gen = c.contacts_gen.load(Ordering::SeqCst);
        let accepted = self
            .store
            .relationship(a, b)
            .await?
            .is_some_and(|r| r.state == ContactState::Accepted);
        if c.contacts.len() >= MAX_ENTRIES {
            c.contacts.clear();
        }
        c.contacts.insert(key, accepted);
        if c.contacts_gen.load(Ordering::SeqCst) != gen {
            c.contacts.remove(&key);
        }
        Ok(accepted)
    }

    /// Every member of a chat (the fan-out list of chat messages).
    pub(crate) async fn chat_member_ids(&self, chat: i64) -> Result<Arc<[UserId]>> {
        if let Some(ids) = self.cache.chat_members.get(&chat) {
            return Ok(ids.clone());
        }
        let c = &self.cache;
        let gen = c.chat_members_gen.load(Ordering::SeqCst);
        let ids: Arc<[UserId]> = self.store.member_ids(chat).await?.into();
        if c.chat_members.len() >= MAX_ENTRIES {
            c.chat_members.clear();
        }
        c.chat_members.insert(chat, ids.clone());
        if c.chat_members_gen.load(Ordering::SeqCst) != gen {
            c.chat_members.remove(&chat);
        }
        Ok(ids)
    }

    /// Forget a chat's member list (after any membership change).
    pub(crate) fn chat_members_changed(&self, chat: i64) {
        self.cache.chat_members_gen.fetch_add(1, Ordering::SeqCst);
        self.cache.chat_members.remove(&chat);
    }

    /// Forget the pair's relationship (after any contact change).
    pub(crate) fn contacts_changed(&self, a: UserId, b: UserId) {
        self.cache.contacts_gen.fetch_add(1, Ordering::SeqCst);
        self.cache.contacts.remove(&pair(a, b));
    }
}
