//! [`ChatStore`] of the memory backend: one lock over chats, memberships and invites.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;

use super::lock;
use crate::model::{ChatKind, ChatMember, ChatRecord, ChatRole, InviteRecord, Timestamp, UserId};
use crate::store::{ChatStore, ErasedMembership, StoreError, StoreResult};

/// Chat state of [`super::MemoryStore`].
#[derive(Debug, Default)]
pub(super) struct Chats {
    pub(super) next_id: i64,
    /// Ids of the chats an import created (kept after the chat is deleted).
    pub(super) imported: std::collections::HashSet<i64>,
    /// Of those, the chats whose members an import has imported.
    pub(super) import_members_done: std::collections::HashSet<i64>,
    pub(super) by_id: HashMap<i64, ChatRecord>,
    /// Members per chat.
    pub(super) members: HashMap<i64, BTreeMap<UserId, ChatMember>>,
    /// Chats per member (index for `chats_of` and `share_chat`).
    by_user: HashMap<UserId, BTreeSet<i64>>,
    /// Permanent codes: blind index → chat.
    pub(super) by_code: HashMap<Vec<u8>, i64>,
    /// Temporary invites by blind index.
    pub(super) invites: HashMap<Vec<u8>, InviteRecord>,
    /// Read markers by (user, chat) (under this lock, so a membership and its marker go
    /// together).
    pub(super) read_markers: HashMap<(UserId, i64), crate::store::ReadMarker>,
}

impl Chats {
    pub(super) fn insert_member(&mut self, chat: i64, m: ChatMember) {
        self.by_user.entry(m.user).or_default().insert(chat);
        self.members.entry(chat).or_default().insert(m.user, m);
    }

    /// The chat part of [`crate::store::EraseStore::erase_user`]: every membership of `user`
    /// goes, an owned chat passes to its oldest admin (else oldest member), a chat left empty
    /// goes with its invites and code; so do the invites `user` created.
    pub(super) fn erase_user(&mut self, user: UserId) -> Vec<ErasedMembership> {
        let mut out = Vec::new();
        self.read_markers.retain(|(u, _), _| *u != user);
        for chat in self.by_user.remove(&user).unwrap_or_default() {
            let Some(members) = self.members.get_mut(&chat) else {
                continue;
            };
            let Some(me) = members.remove(&user) else {
                continue;
            };
            let kind = self.by_id.get(&chat).map(|c| c.kind);
            let mut done = ErasedMembership {
                chat_id: chat,
                kind: kind.unwrap_or(ChatKind::Chat),
                role: me.role,
                new_owner: None,
                deleted: false,
            };
            if members.is_empty() {
                self.members.remove(&chat);
                if let Some(record) = self.by_id.remove(&chat) {
                    if record.invite_code.is_some() {
                        self.by_code.retain(|_, c| *c != chat);
                    }
                }
                self.invites.retain(|_, inv| inv.chat_id != chat);
                done.deleted = true;
            } else if me.role == ChatRole::Owner {
                let heir = members
                    .values()
                    .filter(|m| m.role == ChatRole::Admin)
                    .min_by_key(|m| (m.joined_at, m.user))
                    .or_else(|| members.values().min_by_key(|m| (m.joined_at, m.user)))
                    .map(|m| m.user);
                if let Some(heir) = heir {
                    if let Some(m) = members.get_mut(&heir) {
                        m.role = ChatRole::Owner;
                    }
                    if let Some(record) = self.by_id.get_mut(&chat) {
                        record.owner = heir;
                    }
                    done.new_owner = Some(heir);
                }
            }
            out.push(done);
        }
        self.invites.retain(|_, inv| inv.created_by != user);
        out
    }
}

fn page<T>(all: Vec<T>, offset: u64, limit: u64) -> Vec<T> {
    all.into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .collect()
}

#[async_trait]
impl ChatStore for super::MemoryStore {
    async fn create_chat(
        &self,
        kind: ChatKind,
        sealed_name: &[u8],
        owner: UserId,
        at: Timestamp,
    ) -> StoreResult<i64> {
        let mut c = lock(&self.chats);
        c.next_id += 1;
        let id = c.next_id;
        c.by_id.insert(
            id,
            ChatRecord {
                id,
                kind,
                name: sealed_name.to_vec(),
                owner,
                created_at: at,
                is_public: false,
                invite_code: None,
                slow_mode_secs: 0,
            },
        );
        c.insert_member(
            id,
            ChatMember {
                user: owner,
                role: ChatRole::Owner,
                joined_at: at,
            },
        );
        Ok(id)
    }

    async fn chat(&self, id: i64) -> StoreResult<Option<ChatRecord>> {
        Ok(lock(&self.chats).by_id.get(&id).cloned())
    }

    async fn chats_of(
        &self,
        user: UserId,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(Vec<(ChatRecord, ChatRole)>, u64)> {
        let c = lock(&self.chats);
        let mut all: Vec<(ChatRecord, ChatRole)> = c
            .by_user
            .get(&user)
            .into_iter()
            .flatten()
            .filter_map(|id| {
                let chat = c.by_id.get(id)?;
                let role = c.members.get(id)?.get(&user)?.role;
                Some((chat.clone(), role))
            })
            .collect();
        all.sort_by_key(|(c, _)| std::cmp::Reverse((c.created_at, c.id)));
        let total = all.len() as u64;
        Ok((page(all, offset, limit), total))
    }

    async fn member(&self, chat: i64, user: UserId) -> StoreResult<Option<ChatMember>> {
        Ok(lock(&self.chats)
            .members
            .get(&chat)
            .and_then(|m| m.get(&user))
            .cloned())
    }

    async fn members(
        &self,
        chat: i64,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(Vec<ChatMember>, u64)> {
        let c = lock(&self.chats);
        let mut all: Vec<ChatMember> = c
            .members
            .get(&chat)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        all.sort_by_key(|m| (m.joined_at, m.user));
        let total = all.len() as u64;
        Ok((page(all, offset, limit), total))
    }

    async fn member_ids(&self, chat: i64) -> StoreResult<Vec<UserId>> {
        Ok(lock(&self.chats)
            .members
            .get(&chat)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default())
    }

    async fn chat_staff(&self, chat: i64) -> StoreResult<Vec<UserId>> {
        Ok(lock(&self.chats)
            .members
            .get(&chat)
            .map(|m| {
                m.values()
                    .filter(|m| m.role != ChatRole::Member)
                    .map(|m| m.user)
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn add_member(
        &self,
        chat: i64,
        user: UserId,
        role: ChatRole,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let mut c = lock(&self.chats);
        if !c.by_id.contains_key(&chat) {
            return Err(StoreError::NotFound);
        }
        if c.members.get(&chat).is_some_and(|m| m.contains_key(&user)) {
            return Ok(false);
        }
        c.insert_member(
            chat,
            ChatMember {
                user,
                role,
                joined_at: at,
            },
        );
        Ok(true)
    }

    async fn remove_member(&self, chat: i64, user: UserId) -> StoreResult<bool> {
        let mut c = lock(&self.chats);
        let removed = c
            .members
            .get_mut(&chat)
            .and_then(|m| m.remove(&user))
            .is_some();
        if removed {
            c.read_markers.remove(&(user, chat));
            if let Some(chats) = c.by_user.get_mut(&user) {
                chats.remove(&chat);
                if chats.is_empty() {
                    c.by_user.remove(&user);
                }
            }
        }
        Ok(removed)
    }

    async fn set_role(&self, chat: i64, user: UserId, role: ChatRole) -> StoreResult<bool> {
        let mut c = lock(&self.chats);
        match c.members.get_mut(&chat).and_then(|m| m.get_mut(&user)) {
            Some(m) => {
                m.role = role;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn set_public(
        &self,
        chat: i64,
        public: bool,
        new_code: Option<(&[u8], &[u8])>,
    ) -> StoreResult<Option<Vec<u8>>> {
        let mut guard = lock(&self.chats);
        let c = &mut *guard;
        let Some(record) = c.by_id.get_mut(&chat) else {
            return Err(StoreError::NotFound);
        };
        match new_code {
            Some((sealed, index)) if record.invite_code.is_none() => {
                if c.by_code.contains_key(index) {
                    return Err(StoreError::Conflict("invite"));
                }
                c.by_code.insert(index.to_vec(), chat);
                record.invite_code = Some(sealed.to_vec());
            }
            _ => {}
        }
        record.is_public = public;
        Ok(record.invite_code.clone())
    }

    async fn chat_by_code_index(&self, index: &[u8]) -> StoreResult<Option<ChatRecord>> {
        let c = lock(&self.chats);
        Ok(c.by_code.get(index).and_then(|id| c.by_id.get(id)).cloned())
    }

    async fn set_slow_mode(&self, chat: i64, secs: u32) -> StoreResult<bool> {
        match lock(&self.chats).by_id.get_mut(&chat) {
            Some(record) => {
                record.slow_mode_secs = secs;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn set_chat_name(&self, chat: i64, sealed_name: &[u8]) -> StoreResult<bool> {
        match lock(&self.chats).by_id.get_mut(&chat) {
            Some(record) => {
                record.name = sealed_name.to_vec();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn create_invite(&self, index: &[u8], invite: &InviteRecord) -> StoreResult<()> {
        let mut c = lock(&self.chats);
        if c.invites.contains_key(index) {
            return Err(StoreError::Conflict("invite"));
        }
        c.invites.insert(index.to_vec(), invite.clone());
        Ok(())
    }

    async fn invite(&self, index: &[u8]) -> StoreResult<Option<InviteRecord>> {
        Ok(lock(&self.chats).invites.get(index).cloned())
    }

    async fn purge_invites(&self, now: Timestamp) -> StoreResult<u64> {
        let mut c = lock(&self.chats);
        let before = c.invites.len();
        c.invites.retain(|_, inv| inv.expires_at > now);
        Ok((before - c.invites.len()) as u64)
    }

    async fn share_chat(&self, a: UserId, b: UserId) -> StoreResult<bool> {
        let c = lock(&self.chats);
        let (Some(x), Some(y)) = (c.by_user.get(&a), c.by_user.get(&b)) else {
            return Ok(false);
        };
        let (small, large) = if x.len() <= y.len() { (x, y) } else { (y, x) };
        Ok(small.iter().any(|id| large.contains(id)))
    }
}
