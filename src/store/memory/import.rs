//! [`ImportStore`] of the memory backend.

use async_trait::async_trait;

use super::{lock, MemoryStore};
use crate::model::{ChatMember, ChatRecord, ChatRole, UserId, UserRecord};
use crate::store::{ImportDone, ImportOutcome, ImportStore, ImportedChat, StoreResult};

#[async_trait]
impl ImportStore for MemoryStore {
    async fn import_user(&self, user: &UserRecord) -> StoreResult<ImportOutcome> {
        let mut u = lock(&self.users);
        if u.imported.contains(&user.id) {
            return Ok(ImportOutcome::AlreadyImported);
        }
        if u.by_id.contains_key(&user.id) {
            return Ok(ImportOutcome::Conflict("uid"));
        }
        if u.retired.contains(&user.id) {
            return Ok(ImportOutcome::Conflict("retired"));
        }
        if u.by_phone.contains_key(&user.phone_index) {
            return Ok(ImportOutcome::Conflict("phone"));
        }
        u.by_phone.insert(user.phone_index.clone(), user.id);
        u.by_id.insert(user.id, user.clone());
        u.imported.insert(user.id);
        Ok(ImportOutcome::Created)
    }

    async fn import_chat(&self, chat: &ImportedChat) -> StoreResult<ImportOutcome> {
        let mut c = lock(&self.chats);
        if c.imported.contains(&chat.id) {
            return Ok(ImportOutcome::AlreadyImported);
        }
        if c.by_id.contains_key(&chat.id) {
            return Ok(ImportOutcome::Conflict("chat"));
        }
        if let Some((_, index)) = &chat.code {
            if c.by_code.contains_key(index) {
                return Ok(ImportOutcome::Conflict("invite"));
            }
            c.by_code.insert(index.clone(), chat.id);
        }
        c.by_id.insert(
            chat.id,
            ChatRecord {
                id: chat.id,
                kind: chat.kind,
                name: chat.sealed_name.clone(),
                owner: chat.owner,
                created_at: chat.created_at,
                is_public: chat.is_public,
                invite_code: chat.code.as_ref().map(|(sealed, _)| sealed.clone()),
                slow_mode_secs: chat.slow_mode_secs,
            },
        );
        c.insert_member(
            chat.id,
            ChatMember {
                user: chat.owner,
                role: ChatRole::Owner,
                joined_at: chat.created_at,
            },
        );
        c.next_id = c.next_id.max(chat.id);
        c.imported.insert(chat.id);
        Ok(ImportOutcome::Created)
    }

    async fn reserve_chat_ids(&self, through: i64) -> StoreResult<()> {
        let mut c = lock(&self.chats);
        c.next_id = c.next_id.max(through);
        Ok(())
    }

    async fn is_imported_user(&self, user: UserId) -> StoreResult<bool> {
        Ok(lock(&self.users).imported.contains(&user))
    }

    async fn replace_password_hash(&self, user: UserId, old: &str, new: &str) -> StoreResult<bool> {
        let mut users = lock(&self.users);
        match users.by_id.get_mut(&user) {
            Some(u) if u.password_hash == old => {
                u.password_hash = new.to_owned();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn import_done(&self) -> StoreResult<ImportDone> {
        let (graph_users, token_users) = {
            let u = lock(&self.users);
            (u.import_graph_done.clone(), u.import_tokens_done.clone())
        };
        Ok(ImportDone {
            graph_users,
            token_users,
            member_chats: lock(&self.chats).import_members_done.clone(),
        })
    }

    async fn mark_import_done(
        &self,
        users: &[UserId],
        tokens: bool,
        chats: &[i64],
    ) -> StoreResult<()> {
        {
            let mut u = lock(&self.users);
            for user in users {
                if u.imported.contains(user) {
                    u.import_graph_done.insert(*user);
                    if tokens {
                        u.import_tokens_done.insert(*user);
                    }
                }
            }
        }
        let mut c = lock(&self.chats);
        for chat in chats {
            if c.imported.contains(chat) {
                c.import_members_done.insert(*chat);
            }
        }
        Ok(())
    }
}
