//! Read caches for the per-message lookups (active sessions of a user, accepted contact pairs,
//! members of a chat), for facts that never change once written (a chat's kind; the author and
//! chat of a recently sent chat message), and for the author of each DM sent through this node
//! until its first acknowledgement, so acknowledgements cost no store read.
//!
//! Every change to sessions and contacts goes through the services of this node, which
//! invalidate the entries they touch, so the caches never serve a stale answer on one node.
//! With several nodes the invalidations also travel on the bus (`cluster.rs`), but the bus is
//! lossy (a full publish queue, a lagging subscriber, Redis unreachable), so there every
//! authorization fact (sessions, contact pairs, chat members) also expires [`CACHE_TTL`] after
//! it was read from the store, and a detected loss of notes or a bus reconnect clears them
//! all ([`Core::flush_caches`]): a change made through another node takes effect here within
//! [`CACHE_TTL`] whatever happens to the bus.
//!
//! A fill races with an invalidation: the filler notes a generation before reading the store,
//! inserts, then re-checks the generation and removes its entry if an invalidation happened in
//! between; the invalidator bumps the generation and then removes. Either way no stale entry
//! survives.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use super::cluster::{Invalidate, Note};
use super::{Core, Result};
use crate::model::{ChatKind, MessageId, SessionId, Timestamp, UserId};
use crate::store::ContactState;

/// Entries kept before a cache is cleared wholesale (a crude but bounded policy).
const MAX_ENTRIES: usize = 200_000;

/// With several nodes: how long an authorization fact read from the store is trusted without
/// a note from the bus. Sockets re-check their session every [`SESSION_RECHECK`], so a session
/// revoked through another node closes its sockets here within
/// `CACHE_TTL + SESSION_RECHECK` (2 s), through any failure of the bus.
pub(crate) const CACHE_TTL: Duration = Duration::from_millis(1500);
/// With several nodes: how often an open socket re-checks that its session is still active.
pub(crate) const SESSION_RECHECK: Duration = Duration::from_millis(500);

/// One cached fact and when it was read from the store.
#[derive(Debug)]
struct Entry<T> {
    value: T,
    read_at: Instant,
}

/// The caches held by [`Core`].
#[derive(Debug, Default)]
pub(crate) struct ReadCache {
    /// How long an entry is served; `None` (one node) keeps it until it is invalidated.
    ttl: Option<Duration>,
    sessions: DashMap<UserId, Entry<Arc<[SessionId]>>>,
    sessions_gen: AtomicU64,
    contacts: DashMap<(UserId, UserId), Entry<bool>>,
    contacts_gen: AtomicU64,
    chat_members: DashMap<i64, Entry<Arc<[UserId]>>>,
    chat_members_gen: AtomicU64,
    /// Immutable: a chat's kind never changes.
    chat_kinds: DashMap<i64, ChatKind>,
    /// Messages stored through this node, for the acknowledgements that follow: chat messages
    /// (immutable) and DMs no recipient device has acknowledged yet.
    recent_messages: DashMap<MessageId, RecentMessage>,
}

/// What an acknowledgement needs to know about a message this node stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecentMessage {
    /// A chat message: kept until evicted (every member acknowledges it).
    Chat(ChatMessageMeta),
    /// A DM that is not `delivered` yet: its author. The first acknowledgement claims it.
    Dm {
        /// The author.
        from: UserId,
    },
    /// A DM whose `delivered` this node already sent: later acknowledgements (another device
    /// of the recipient, a read) must not send another, even before the store's flag is
    /// written.
    DmDelivered,
}

/// What [`Core::claim_undelivered_dm`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DmClaim {
    /// This caller claimed the receipt: send `delivered` to this author.
    First(UserId),
    /// Another acknowledgement on this node already sent it.
    Claimed,
    /// Not a DM this node stored (or it was evicted): ask the store.
    Unknown,
}

/// What an acknowledgement of a chat message needs to know about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChatMessageMeta {
    /// The author.
    pub from: UserId,
    /// The chat.
    pub chat_id: i64,
    /// The chat's kind (channels send no `delivered`).
    pub kind: ChatKind,
}

impl ReadCache {
    /// Caches whose authorization facts expire `ttl` after they were read (several nodes), or
    /// never (`None`: one node, where every change invalidates them).
    pub(crate) fn new(ttl: Option<Duration>) -> Self {
        Self {
            ttl,
            ..Self::default()
        }
    }

    /// The value of a fresh entry.
    fn fresh<T: Clone>(&self, entry: Option<impl std::ops::Deref<Target = Entry<T>>>) -> Option<T> {
        let e = entry?;
        match self.ttl {
            Some(ttl) if e.read_at.elapsed() >= ttl => None,
            _ => Some(e.value.clone()),
        }
    }
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
        let c = &self.cache;
        if let Some(ids) = c.fresh(c.sessions.get(&user)) {
            return Ok(ids);
        }
        let gen = c.sessions_gen.load(Ordering::SeqCst);
        let read_at = Instant::now();
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
        c.sessions.insert(
            user,
            Entry {
                value: ids.clone(),
                read_at,
            },
        );
        if c.sessions_gen.load(Ordering::SeqCst) != gen {
            c.sessions.remove(&user);
        }
        Ok(ids)
    }

    /// Forget `user`'s sessions (after a login, revocation or logout).
    pub(crate) fn sessions_changed(&self, user: UserId) {
        self.forget_sessions(user);
        self.tell_cluster(|| Note::Invalidate(Invalidate::Sessions(user)));
    }

    /// [`Self::sessions_changed`] on this node only (a note from another node).
    pub(crate) fn forget_sessions(&self, user: UserId) {
        self.cache.sessions_gen.fetch_add(1, Ordering::SeqCst);
        self.cache.sessions.remove(&user);
    }

    /// True when `a` and `b` are accepted contacts.
    pub(crate) async fn are_contacts(&self, a: UserId, b: UserId) -> Result<bool> {
        let key = pair(a, b);
        let c = &self.cache;
        if let Some(v) = c.fresh(c.contacts.get(&key)) {
            return Ok(v);
        }
        let gen = c.contacts_gen.load(Ordering::SeqCst);
        let read_at = Instant::now();
        let accepted = self
            .store
            .relationship(a, b)
            .await?
            .is_some_and(|r| r.state == ContactState::Accepted);
        if c.contacts.len() >= MAX_ENTRIES {
            c.contacts.clear();
        }
        c.contacts.insert(
            key,
            Entry {
                value: accepted,
                read_at,
            },
        );
        if c.contacts_gen.load(Ordering::SeqCst) != gen {
            c.contacts.remove(&key);
        }
        Ok(accepted)
    }

    /// Every member of a chat (the fan-out list of chat messages).
    pub(crate) async fn chat_member_ids(&self, chat: i64) -> Result<Arc<[UserId]>> {
        let c = &self.cache;
        if let Some(ids) = c.fresh(c.chat_members.get(&chat)) {
            return Ok(ids);
        }
        let gen = c.chat_members_gen.load(Ordering::SeqCst);
        let read_at = Instant::now();
        let ids: Arc<[UserId]> = self.store.member_ids(chat).await?.into();
        if c.chat_members.len() >= MAX_ENTRIES {
            c.chat_members.clear();
        }
        c.chat_members.insert(
            chat,
            Entry {
                value: ids.clone(),
                read_at,
            },
        );
        if c.chat_members_gen.load(Ordering::SeqCst) != gen {
            c.chat_members.remove(&chat);
        }
        Ok(ids)
    }

    /// A chat's kind; `None` for an unknown chat. Kinds never change, so entries are never
    /// invalidated.
    pub(crate) async fn chat_kind(&self, chat: i64) -> Result<Option<ChatKind>> {
        if let Some(kind) = self.cache.chat_kinds.get(&chat) {
            return Ok(Some(*kind));
        }
        let Some(record) = self.store.chat(chat).await? else {
            return Ok(None);
        };
        self.remember_chat_kind(chat, record.kind);
        Ok(Some(record.kind))
    }

    /// Records a chat's kind read elsewhere (it never changes).
    pub(crate) fn remember_chat_kind(&self, chat: i64, kind: ChatKind) {
        let kinds = &self.cache.chat_kinds;
        if kinds.len() >= MAX_ENTRIES {
            kinds.clear();
        }
        kinds.insert(chat, kind);
    }

    /// Records a message just stored, for the acknowledgements that follow.
    pub(crate) fn remember_message(&self, id: MessageId, recent: RecentMessage) {
        let map = &self.cache.recent_messages;
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(id, recent);
    }

    /// A recently sent chat message's author, chat and kind, when this node still knows them.
    pub(crate) fn recent_chat_message(&self, id: MessageId) -> Option<ChatMessageMeta> {
        match self.cache.recent_messages.get(&id).as_deref() {
            Some(RecentMessage::Chat(meta)) => Some(*meta),
            _ => None,
        }
    }

    /// Claims the `delivered` receipt of a DM this node stored: the first caller gets its
    /// author, later ones (another device of the recipient, a read) learn it was sent, even
    /// while the store's `delivered` flag is still being written.
    pub(crate) fn claim_undelivered_dm(&self, id: MessageId) -> DmClaim {
        let Some(mut recent) = self.cache.recent_messages.get_mut(&id) else {
            return DmClaim::Unknown;
        };
        match *recent {
            RecentMessage::Dm { from } => {
                *recent = RecentMessage::DmDelivered;
                DmClaim::First(from)
            }
            RecentMessage::DmDelivered => DmClaim::Claimed,
            RecentMessage::Chat(_) => DmClaim::Unknown,
        }
    }

    /// Gives back a claim of [`Self::claim_undelivered_dm`] whose receipt was not written (a
    /// failed store write): the acknowledgement that comes again claims it anew.
    pub(crate) fn unclaim_dm(&self, id: MessageId, from: UserId) {
        if let Some(mut recent) = self.cache.recent_messages.get_mut(&id) {
            if *recent == RecentMessage::DmDelivered {
                *recent = RecentMessage::Dm { from };
            }
        }
    }

    /// Waits, after a login wrote a session at `now`, until every node's cached session list of
    /// its user is one read after the write, when the session is new (`created_at` is `now`'s)
    /// and there are several nodes. Another node may hold the list read just before the new
    /// device existed (its bus note can be lost); answering the login after that entry expired
    /// means no message sent after the login skips the new device's queue.
    pub(crate) async fn new_session_visible(&self, created_at: Timestamp, now: Timestamp) {
        if self.cluster.is_some() && created_at.millis() >= now.millis() - 1000 {
            tokio::time::sleep(CACHE_TTL).await;
        }
    }

    /// True while `session` of `user` is active, as the sessions cache knows it (at most
    /// [`CACHE_TTL`] old with several nodes): what an open socket re-checks.
    pub(crate) async fn session_alive(&self, user: UserId, session: SessionId) -> Result<bool> {
        Ok(self.session_ids(user).await?.contains(&session))
    }

    /// Forgets every cached authorization fact (sessions, contact pairs, chat members): bus
    /// notes may have been lost (a gap in a node's note counter, a bus reconnect).
    pub(crate) fn flush_caches(&self) {
        let c = &self.cache;
        c.sessions_gen.fetch_add(1, Ordering::SeqCst);
        c.contacts_gen.fetch_add(1, Ordering::SeqCst);
        c.chat_members_gen.fetch_add(1, Ordering::SeqCst);
        c.sessions.clear();
        c.contacts.clear();
        c.chat_members.clear();
    }

    /// Forget a chat's member list (after any membership change).
    pub(crate) fn chat_members_changed(&self, chat: i64) {
        self.forget_chat_members(chat);
        self.tell_cluster(|| Note::Invalidate(Invalidate::ChatMembers(chat)));
    }

    /// [`Self::chat_members_changed`] on this node only.
    pub(crate) fn forget_chat_members(&self, chat: i64) {
        self.cache.chat_members_gen.fetch_add(1, Ordering::SeqCst);
        self.cache.chat_members.remove(&chat);
    }

    /// Forget the pair's relationship (after any contact change).
    pub(crate) fn contacts_changed(&self, a: UserId, b: UserId) {
        self.forget_contacts(a, b);
        self.tell_cluster(|| Note::Invalidate(Invalidate::Contacts(a, b)));
    }

    /// [`Self::contacts_changed`] on this node only.
    pub(crate) fn forget_contacts(&self, a: UserId, b: UserId) {
        self.cache.contacts_gen.fetch_add(1, Ordering::SeqCst);
        self.cache.contacts.remove(&pair(a, b));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{DmClaim, RecentMessage};
    use crate::crypto::{DataKeys, JwtKey, StaticKeys};
    use crate::model::{MessageId, UserId};
    use crate::{Melo, MemoryStore};

    /// Two devices of a DM's recipient acknowledge it at once: only the first claim sends
    /// `delivered`, whether or not the store's flag is written yet (a test run once saw the
    /// second device's acknowledgement read the flag before the first one's write).
    #[tokio::test]
    async fn a_dm_receipt_is_claimed_once() {
        let keys = StaticKeys::new(JwtKey::generate(0).expect("key"), DataKeys::generate());
        let melo = Melo::builder(Arc::new(MemoryStore::new()), Arc::new(keys))
            .build()
            .expect("build");
        let core = melo.services().core();
        let author = UserId::new(12_345_678).expect("uid");
        let id = MessageId::new();
        core.remember_message(id, RecentMessage::Dm { from: author });
        assert_eq!(core.claim_undelivered_dm(id), DmClaim::First(author));
        assert_eq!(core.claim_undelivered_dm(id), DmClaim::Claimed);
        assert_eq!(core.claim_undelivered_dm(id), DmClaim::Claimed);
        // A claim whose write failed is given back, and claimed once more.
        core.unclaim_dm(id, author);
        assert_eq!(core.claim_undelivered_dm(id), DmClaim::First(author));
        assert_eq!(core.claim_undelivered_dm(id), DmClaim::Claimed);
        assert_eq!(
            core.claim_undelivered_dm(MessageId::new()),
            DmClaim::Unknown
        );
    }
}
