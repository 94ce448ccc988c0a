//! [`ReadMarkerStore`] of the memory backend: markers live under the chats lock, next to the
//! memberships they belong to.

use async_trait::async_trait;

use super::{lock, MemoryStore};
use crate::model::UserId;
use crate::store::read_markers::check_marker_id;
use crate::store::{ReadMarker, ReadMarkerStore, StoreResult};

#[async_trait]
impl ReadMarkerStore for MemoryStore {
    async fn advance_read_marker(
        &self,
        user: UserId,
        chat: i64,
        marker: &ReadMarker,
    ) -> StoreResult<bool> {
        check_marker_id(&marker.message_id)?;
        let mut c = lock(&self.chats);
        let slot = c.read_markers.entry((user, chat));
        match slot {
            std::collections::hash_map::Entry::Occupied(mut o) => {
                if marker.is_newer_than(o.get()) {
                    o.insert(marker.clone());
                    Ok(true)
                } else {
                    Ok(false)
                }
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(marker.clone());
                Ok(true)
            }
        }
    }

    async fn read_markers(
        &self,
        user: UserId,
        chats: &[i64],
    ) -> StoreResult<Vec<(i64, ReadMarker)>> {
        let c = lock(&self.chats);
        let distinct: std::collections::BTreeSet<i64> = chats.iter().copied().collect();
        Ok(distinct
            .into_iter()
            .filter(|chat| c.members.get(chat).is_some_and(|m| m.contains_key(&user)))
            .filter_map(|chat| c.read_markers.get(&(user, chat)).map(|m| (chat, m.clone())))
            .collect())
    }
}
