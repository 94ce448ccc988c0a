use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    AvatarStore, Contact, ContactState, ContactStore, PushStore, SessionStore, StoreError,
    StoreHealth, StoreResult, StoredAvatar, UserStore,
};
use crate::model::{
    DeviceId, ProfileChange, Session, SessionId, SessionUpsert, Timestamp, UserId, UserRecord,
};

mod admin;
mod chats;
mod erase;
mod import;
mod manage;
mod messages;
mod read_markers;
mod schedule;
mod sealed;

/// An in-process store: every trait of [`super::Store`], nothing persisted.
///
/// For tests and embedders who persist elsewhere. Each aggregate has its own lock, held only
/// for short non-async sections.
#[derive(Debug, Default)]
pub struct MemoryStore {
    users: Mutex<Users>,
    sessions: Mutex<Sessions>,
    contacts: Mutex<BTreeMap<(UserId, UserId), Contact>>,
    messages: messages::MessageMaps,
    chats: Mutex<chats::Chats>,
    admin: Mutex<admin::AdminState>,
    schedules: Mutex<schedule::Schedules>,
}

#[derive(Debug, Default)]
pub(super) struct Users {
    pub(super) by_id: HashMap<UserId, UserRecord>,
    pub(super) by_phone: HashMap<Vec<u8>, UserId>,
    pub(super) secret_keys: HashMap<UserId, (Vec<u8>, Timestamp)>,
    pub(super) settings: HashMap<UserId, Vec<u8>>,
    pub(super) avatars: HashMap<UserId, StoredAvatar>,
    /// Uids of erased accounts: never handed out again.
    pub(super) retired: HashSet<UserId>,
    /// Uids of the users an import created (and that still exist).
    pub(super) imported: HashSet<UserId>,
    /// Of those, the users whose graph an import has imported.
    pub(super) import_graph_done: HashSet<UserId>,
    /// Of those, the users whose device tokens an import has imported.
    pub(super) import_tokens_done: HashSet<UserId>,
}

#[derive(Debug, Default)]
pub(super) struct Sessions {
    next_id: i64,
    pub(super) by_id: HashMap<SessionId, Session>,
    active: HashMap<(UserId, DeviceId), SessionId>,
    /// Active sessions per user (index for `sessions_of`, a per-message lookup).
    by_user: HashMap<UserId, Vec<SessionId>>,
    /// Sealed push registrations of active sessions (under the sessions lock, so revocation
    /// and registration cannot interleave).
    pub(super) push: HashMap<SessionId, Vec<u8>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these maps half-updated in a way that matters
    // more than refusing all further service, so recover the guard.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn pair(a: UserId, b: UserId) -> (UserId, UserId) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(&self, user: &UserRecord) -> StoreResult<()> {
        let mut u = lock(&self.users);
        if u.by_id.contains_key(&user.id) || u.retired.contains(&user.id) {
            return Err(StoreError::Conflict("uid"));
        }
        if u.by_phone.contains_key(&user.phone_index) {
            return Err(StoreError::Conflict("phone"));
        }
        u.by_phone.insert(user.phone_index.clone(), user.id);
        u.by_id.insert(user.id, user.clone());
        Ok(())
    }

    async fn user(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        Ok(lock(&self.users).by_id.get(&id).cloned())
    }

    async fn users(&self, ids: &[UserId]) -> StoreResult<Vec<UserRecord>> {
        let u = lock(&self.users);
        Ok(ids
            .iter()
            .filter_map(|id| u.by_id.get(id).cloned())
            .collect())
    }

    async fn user_by_phone_index(&self, index: &[u8]) -> StoreResult<Option<UserRecord>> {
        let u = lock(&self.users);
        Ok(u.by_phone
            .get(index)
            .and_then(|id| u.by_id.get(id))
            .cloned())
    }

    async fn update_user(&self, id: UserId, change: &ProfileChange) -> StoreResult<bool> {
        let mut u = lock(&self.users);
        let Some(user) = u.by_id.get_mut(&id) else {
            return Ok(false);
        };
        if let Some(v) = &change.name {
            user.name = v.clone();
        }
        if let Some(v) = &change.nickname {
            user.nickname = v.clone();
        }
        if let Some(v) = &change.username {
            user.username = v.clone();
        }
        if let Some(v) = &change.bio {
            user.bio = v.clone();
        }
        if let Some(v) = &change.public_key {
            user.public_key = Some(v.clone());
        }
        if let Some(v) = &change.password_hash {
            user.password_hash = v.clone();
        }
        Ok(true)
    }

    async fn put_secret_key(&self, id: UserId, sealed: &[u8], at: Timestamp) -> StoreResult<()> {
        let mut u = lock(&self.users);
        if !u.by_id.contains_key(&id) {
            return Err(StoreError::NotFound);
        }
        u.secret_keys.insert(id, (sealed.to_vec(), at));
        Ok(())
    }

    async fn secret_key(&self, id: UserId) -> StoreResult<Option<(Vec<u8>, Timestamp)>> {
        Ok(lock(&self.users).secret_keys.get(&id).cloned())
    }

    async fn put_settings(&self, id: UserId, sealed: &[u8]) -> StoreResult<()> {
        let mut u = lock(&self.users);
        if !u.by_id.contains_key(&id) {
            return Err(StoreError::NotFound);
        }
        u.settings.insert(id, sealed.to_vec());
        Ok(())
    }

    async fn settings(&self, ids: &[UserId]) -> StoreResult<Vec<(UserId, Vec<u8>)>> {
        let u = lock(&self.users);
        Ok(ids
            .iter()
            .filter_map(|id| u.settings.get(id).map(|s| (*id, s.clone())))
            .collect())
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn upsert_session(&self, s: &SessionUpsert) -> StoreResult<Session> {
        let mut st = lock(&self.sessions);
        let key = (s.user, s.device_id.clone());
        if let Some(id) = st.active.get(&key).copied() {
            if let Some(existing) = st.by_id.get_mut(&id) {
                existing.device_type = s.device_type;
                existing.device_name = s.device_name.clone();
                existing.ip = s.ip.clone();
                existing.last_activity = s.last_activity.clone();
                existing.device_token_hash = Some(s.device_token_hash.clone());
                existing.device_token_expires = Some(s.device_token_expires);
                return Ok(existing.clone());
            }
        }
        st.next_id += 1;
        let id = SessionId(st.next_id);
        let session = Session {
            id,
            user: s.user,
            device_id: s.device_id.clone(),
            device_type: s.device_type,
            device_name: s.device_name.clone(),
            ip: s.ip.clone(),
            created_at: s.now,
            last_activity: s.last_activity.clone(),
            device_token_hash: Some(s.device_token_hash.clone()),
            device_token_expires: Some(s.device_token_expires),
            active: true,
        };
        st.active.insert(key, id);
        st.by_user.entry(s.user).or_default().push(id);
        st.by_id.insert(id, session.clone());
        Ok(session)
    }

    async fn session(&self, id: SessionId) -> StoreResult<Option<Session>> {
        Ok(lock(&self.sessions).by_id.get(&id).cloned())
    }

    async fn active_session(
        &self,
        user: UserId,
        device: &DeviceId,
    ) -> StoreResult<Option<Session>> {
        let st = lock(&self.sessions);
        Ok(st
            .active
            .get(&(user, device.clone()))
            .and_then(|id| st.by_id.get(id))
            .cloned())
    }

    async fn sessions_of(&self, user: UserId) -> StoreResult<Vec<Session>> {
        let st = lock(&self.sessions);
        let mut v: Vec<Session> = st
            .by_user
            .get(&user)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| st.by_id.get(id).cloned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by_key(|s| s.id);
        Ok(v)
    }

    async fn set_device_token(
        &self,
        id: SessionId,
        token: Option<(&[u8], Timestamp)>,
    ) -> StoreResult<bool> {
        let mut st = lock(&self.sessions);
        match st.by_id.get_mut(&id) {
            Some(s) if s.active => {
                s.device_token_hash = token.map(|(h, _)| h.to_vec());
                s.device_token_expires = token.map(|(_, e)| e);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn touch_session(&self, id: SessionId, sealed_last_activity: &[u8]) -> StoreResult<()> {
        if let Some(s) = lock(&self.sessions).by_id.get_mut(&id) {
            s.last_activity = sealed_last_activity.to_vec();
        }
        Ok(())
    }

    async fn revoke_session(&self, user: UserId, id: SessionId) -> StoreResult<bool> {
        let mut st = lock(&self.sessions);
        let key = match st.by_id.get_mut(&id) {
            Some(s) if s.active && s.user == user => {
                s.active = false;
                s.device_token_hash = None;
                s.device_token_expires = None;
                (s.user, s.device_id.clone())
            }
            _ => return Ok(false),
        };
        st.active.remove(&key);
        st.push.remove(&id);
        if let Some(ids) = st.by_user.get_mut(&user) {
            ids.retain(|s| *s != id);
            if ids.is_empty() {
                st.by_user.remove(&user);
            }
        }
        Ok(true)
    }

    async fn revoke_sessions_except(
        &self,
        user: UserId,
        keep: Option<SessionId>,
    ) -> StoreResult<Vec<SessionId>> {
        let ids: Vec<SessionId> = {
            let st = lock(&self.sessions);
            st.active
                .iter()
                .filter(|((u, _), id)| *u == user && Some(**id) != keep)
                .map(|(_, id)| *id)
                .collect()
        };
        let mut revoked = Vec::with_capacity(ids.len());
        for id in ids {
            if self.revoke_session(user, id).await? {
                revoked.push(id);
            }
        }
        revoked.sort();
        Ok(revoked)
    }
}

#[async_trait]
impl PushStore for MemoryStore {
    async fn set_push(&self, user: UserId, session: SessionId, sealed: &[u8]) -> StoreResult<bool> {
        let mut st = lock(&self.sessions);
        match st.by_id.get(&session) {
            Some(s) if s.active && s.user == user => {
                st.push.insert(session, sealed.to_vec());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn push_registrations(&self, user: UserId) -> StoreResult<Vec<(SessionId, Vec<u8>)>> {
        let st = lock(&self.sessions);
        let mut v: Vec<(SessionId, Vec<u8>)> = st
            .by_user
            .get(&user)
            .map(|ids| {
                ids.iter()
                    .filter(|id| st.by_id.get(id).is_some_and(|s| s.active))
                    .filter_map(|id| st.push.get(id).map(|p| (*id, p.clone())))
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by_key(|(id, _)| *id);
        Ok(v)
    }

    async fn delete_push(&self, session: SessionId, sealed: &[u8]) -> StoreResult<bool> {
        let mut st = lock(&self.sessions);
        if st
            .push
            .get(&session)
            .is_some_and(|p| p.as_slice() == sealed)
        {
            st.push.remove(&session);
            return Ok(true);
        }
        Ok(false)
    }
}

#[async_trait]
impl ContactStore for MemoryStore {
    async fn relationship(&self, a: UserId, b: UserId) -> StoreResult<Option<Contact>> {
        Ok(lock(&self.contacts).get(&pair(a, b)).cloned())
    }

    async fn request_contact(
        &self,
        from: UserId,
        to: UserId,
        secret: bool,
        at: Timestamp,
    ) -> StoreResult<()> {
        let mut c = lock(&self.contacts);
        let key = pair(from, to);
        if c.contains_key(&key) {
            return Err(StoreError::Conflict("contact"));
        }
        c.insert(
            key,
            Contact {
                requester: from,
                target: to,
                state: ContactState::Pending,
                secret,
                requested_at: at,
            },
        );
        Ok(())
    }

    async fn accept_contact(&self, requester: UserId, target: UserId) -> StoreResult<bool> {
        let mut c = lock(&self.contacts);
        match c.get_mut(&pair(requester, target)) {
            Some(x) if x.state == ContactState::Pending && x.requester == requester => {
                x.state = ContactState::Accepted;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn remove_contact(&self, a: UserId, b: UserId) -> StoreResult<Option<Contact>> {
        Ok(lock(&self.contacts).remove(&pair(a, b)))
    }

    async fn contacts_of(
        &self,
        user: UserId,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(Vec<UserId>, u64)> {
        let c = lock(&self.contacts);
        let mut all: Vec<UserId> = c
            .values()
            .filter(|x| {
                x.state == ContactState::Accepted && (x.requester == user || x.target == user)
            })
            .map(|x| {
                if x.requester == user {
                    x.target
                } else {
                    x.requester
                }
            })
            .collect();
        all.sort();
        let total = all.len() as u64;
        let page = all
            .into_iter()
            .skip(offset as usize)
            .take(limit as usize)
            .collect();
        Ok((page, total))
    }

    async fn pending_of(&self, user: UserId) -> StoreResult<Vec<Contact>> {
        let c = lock(&self.contacts);
        let mut v: Vec<Contact> = c
            .values()
            .filter(|x| {
                x.state == ContactState::Pending && (x.requester == user || x.target == user)
            })
            .cloned()
            .collect();
        v.sort_by_key(|x| x.requested_at);
        Ok(v)
    }
}

#[async_trait]
impl AvatarStore for MemoryStore {
    async fn put_avatar(
        &self,
        user: UserId,
        mime: &str,
        sealed: &[u8],
        etag: &str,
        at: Timestamp,
    ) -> StoreResult<()> {
        let mut u = lock(&self.users);
        if !u.by_id.contains_key(&user) {
            return Err(StoreError::NotFound);
        }
        let avatar = StoredAvatar {
            mime: mime.to_owned(),
            sealed: sealed.to_vec(),
            etag: etag.to_owned(),
            updated_at: at,
        };
        u.avatars.insert(user, avatar);
        Ok(())
    }

    async fn avatar(&self, user: UserId) -> StoreResult<Option<StoredAvatar>> {
        Ok(lock(&self.users).avatars.get(&user).cloned())
    }

    async fn delete_avatar(&self, user: UserId) -> StoreResult<bool> {
        Ok(lock(&self.users).avatars.remove(&user).is_some())
    }
}

#[async_trait]
impl StoreHealth for MemoryStore {
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    crate::store::conformance::store_conformance!(memory, async {
        std::sync::Arc::new(crate::MemoryStore::new())
    });
}
