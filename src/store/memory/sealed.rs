//! [`SealedStore`] of the memory backend. Each page snapshots one aggregate under its lock and
//! sorts it by key; fine for the sizes a memory store holds.

use async_trait::async_trait;
use bytes::Bytes;

use super::messages::Slot;
use super::{lock, MemoryStore};
use crate::model::{SessionId, UserId};
use crate::store::sealed::{RowKey, SealedRow, SealedStore, SealedTable, SealedUpdate};
use crate::store::StoreResult;

fn uid_key(u: UserId) -> RowKey {
    RowKey::Id(i64::from(u.get()))
}

/// Compare-and-set of one field.
fn swap(field: &mut Vec<u8>, u: &SealedUpdate) -> bool {
    if *field == u.old {
        field.clone_from(&u.new);
        true
    } else {
        false
    }
}

fn swap_opt(field: &mut Option<Vec<u8>>, u: &SealedUpdate) -> bool {
    field.as_mut().is_some_and(|f| swap(f, u))
}

impl MemoryStore {
    fn snapshot(&self, table: SealedTable) -> Vec<SealedRow> {
        let row = |key, values| SealedRow {
            key,
            values,
            context: Vec::new(),
        };
        match table {
            SealedTable::Users => lock(&self.users)
                .by_id
                .values()
                .map(|u| {
                    row(
                        uid_key(u.id),
                        vec![
                            Some(u.phone_index.clone()),
                            Some(u.phone.clone()),
                            Some(u.name.clone()),
                            Some(u.nickname.clone()),
                            u.username.clone(),
                            u.bio.clone(),
                            u.public_key.clone(),
                        ],
                    )
                })
                .collect(),
            SealedTable::SecretKeys => lock(&self.users)
                .secret_keys
                .iter()
                .map(|(u, (sealed, _))| row(uid_key(*u), vec![Some(sealed.clone())]))
                .collect(),
            SealedTable::UserSettings => lock(&self.users)
                .settings
                .iter()
                .map(|(u, sealed)| row(uid_key(*u), vec![Some(sealed.clone())]))
                .collect(),
            SealedTable::Avatars => lock(&self.users)
                .avatars
                .iter()
                .map(|(u, a)| row(uid_key(*u), vec![Some(a.sealed.clone())]))
                .collect(),
            SealedTable::Sessions => lock(&self.sessions)
                .by_id
                .values()
                .map(|s| SealedRow {
                    key: RowKey::Id(s.id.0),
                    values: vec![
                        Some(s.device_name.clone()),
                        Some(s.ip.clone()),
                        Some(s.last_activity.clone()),
                    ],
                    context: vec![s.user.to_string(), s.device_id.to_string()],
                })
                .collect(),
            SealedTable::PushRegistrations => lock(&self.sessions)
                .push
                .iter()
                .map(|(s, sealed)| row(RowKey::Id(s.0), vec![Some(sealed.clone())]))
                .collect(),
            SealedTable::Chats => {
                let c = lock(&self.chats);
                c.by_id
                    .values()
                    .map(|chat| {
                        let index = c
                            .by_code
                            .iter()
                            .find(|(_, id)| **id == chat.id)
                            .map(|(i, _)| i.clone());
                        row(
                            RowKey::Id(chat.id),
                            vec![Some(chat.name.clone()), chat.invite_code.clone(), index],
                        )
                    })
                    .collect()
            }
            SealedTable::Invites => lock(&self.chats)
                .invites
                .iter()
                .map(|(index, inv)| SealedRow {
                    key: RowKey::Bytes(index.clone()),
                    values: vec![Some(index.clone()), Some(inv.code.clone())],
                    context: vec![inv.chat_id.to_string()],
                })
                .collect(),
            SealedTable::QueueEvents => {
                let mut out = Vec::new();
                for q in self.messages.queues.iter() {
                    for (seq, slot) in &q.entries {
                        if let Slot::Event(b) = slot {
                            out.push(row(RowKey::Pair(q.key().0, *seq), vec![Some(b.to_vec())]));
                        }
                    }
                }
                out
            }
        }
    }

    fn replace_one(&self, table: SealedTable, u: &SealedUpdate) -> bool {
        let id = match &u.key {
            RowKey::Id(id) => Some(*id),
            _ => None,
        };
        let uid = id.and_then(|i| u32::try_from(i).ok()).and_then(UserId::new);
        match (table, u.column) {
            (SealedTable::Users, column) => {
                let mut users = lock(&self.users);
                let Some(user) = uid.and_then(|uid| users.by_id.get_mut(&uid)) else {
                    return false;
                };
                let (done, id) = match column {
                    "phone_index" => (swap(&mut user.phone_index, u), user.id),
                    "phone" => (swap(&mut user.phone, u), user.id),
                    "name" => (swap(&mut user.name, u), user.id),
                    "nickname" => (swap(&mut user.nickname, u), user.id),
                    "username" => (swap_opt(&mut user.username, u), user.id),
                    "bio" => (swap_opt(&mut user.bio, u), user.id),
                    "public_key" => (swap_opt(&mut user.public_key, u), user.id),
                    _ => return false,
                };
                if done && column == "phone_index" {
                    users.by_phone.remove(&u.old);
                    users.by_phone.insert(u.new.clone(), id);
                }
                done
            }
            (SealedTable::SecretKeys, "ciphertext") => uid
                .and_then(|uid| {
                    lock(&self.users)
                        .secret_keys
                        .get_mut(&uid)
                        .map(|e| swap(&mut e.0, u))
                })
                .unwrap_or(false),
            (SealedTable::UserSettings, "settings") => uid
                .and_then(|uid| lock(&self.users).settings.get_mut(&uid).map(|e| swap(e, u)))
                .unwrap_or(false),
            (SealedTable::Avatars, "sealed") => uid
                .and_then(|uid| {
                    lock(&self.users)
                        .avatars
                        .get_mut(&uid)
                        .map(|a| swap(&mut a.sealed, u))
                })
                .unwrap_or(false),
            (SealedTable::Sessions, column) => {
                let mut sessions = lock(&self.sessions);
                let Some(s) = id.and_then(|id| sessions.by_id.get_mut(&SessionId(id))) else {
                    return false;
                };
                match column {
                    "device_name" => swap(&mut s.device_name, u),
                    "ip" => swap(&mut s.ip, u),
                    "last_activity" => swap(&mut s.last_activity, u),
                    _ => false,
                }
            }
            (SealedTable::PushRegistrations, "sealed") => id
                .and_then(|id| {
                    lock(&self.sessions)
                        .push
                        .get_mut(&SessionId(id))
                        .map(|p| swap(p, u))
                })
                .unwrap_or(false),
            (SealedTable::Chats, column) => {
                let mut c = lock(&self.chats);
                let Some(id) = id else { return false };
                match column {
                    "name" => c
                        .by_id
                        .get_mut(&id)
                        .is_some_and(|chat| swap(&mut chat.name, u)),
                    "invite_code" => c
                        .by_id
                        .get_mut(&id)
                        .is_some_and(|chat| swap_opt(&mut chat.invite_code, u)),
                    "code_index" if c.by_code.get(&u.old) == Some(&id) => {
                        c.by_code.remove(&u.old);
                        c.by_code.insert(u.new.clone(), id);
                        true
                    }
                    _ => false,
                }
            }
            (SealedTable::Invites, column) => {
                let mut c = lock(&self.chats);
                let RowKey::Bytes(index) = &u.key else {
                    return false;
                };
                match column {
                    "code" => c
                        .invites
                        .get_mut(index)
                        .is_some_and(|i| swap(&mut i.code, u)),
                    "code_index" if *index == u.old => match c.invites.remove(index) {
                        Some(inv) => {
                            c.invites.insert(u.new.clone(), inv);
                            true
                        }
                        None => false,
                    },
                    _ => false,
                }
            }
            (SealedTable::QueueEvents, "event") => {
                let RowKey::Pair(session, seq) = u.key else {
                    return false;
                };
                let Some(mut q) = self.messages.queues.get_mut(&SessionId(session)) else {
                    return false;
                };
                match q.entries.get_mut(&seq) {
                    Some(Slot::Event(b)) if b.as_ref() == u.old.as_slice() => {
                        *b = Bytes::from(u.new.clone());
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        }
    }
}

#[async_trait]
impl SealedStore for MemoryStore {
    async fn sealed_rows(
        &self,
        table: SealedTable,
        after: Option<&RowKey>,
        limit: u32,
    ) -> StoreResult<Vec<SealedRow>> {
        let mut rows: Vec<SealedRow> = self
            .snapshot(table)
            .into_iter()
            .filter(|r| after.is_none_or(|a| r.key > *a))
            .collect();
        rows.sort_by(|a, b| a.key.cmp(&b.key));
        rows.truncate(limit as usize);
        Ok(rows)
    }

    async fn replace_sealed(
        &self,
        table: SealedTable,
        updates: &[SealedUpdate],
    ) -> StoreResult<u64> {
        Ok(updates
            .iter()
            .filter(|u| self.replace_one(table, u))
            .count() as u64)
    }
}
