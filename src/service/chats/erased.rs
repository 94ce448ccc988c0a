//! What the chats of an erased account need once the store has erased it: the other members
//! learn that the user left (and who owns the chat now), every node forgets the member lists,
//! and the user's per-chat ephemeral state goes.

use super::ChatsService;
use crate::model::{ChatRole, UserId};
use crate::store::ErasedMembership;

impl ChatsService {
    /// After `user`'s account was erased with these memberships: each chat's member list is
    /// forgotten on every node; in each chat that remains, `chat_member` `left` goes to its
    /// audience (as `/chats/leave` sends it, `by` the user), then `role_changed` to `owner` for
    /// the member who inherited it. The user's join/leave budget and slow-mode stamp of each
    /// chat are deleted. Failures are logged: the erase stands.
    pub(crate) async fn account_erased(&self, user: UserId, chats: &[ErasedMembership]) {
        let eph = &self.core.ephemeral;
        for m in chats {
            let chat = m.chat_id;
            self.core.chat_members_changed(chat);
            // The keys of `membership_change_allowed` and of the slow mode (messages.rs).
            for key in [
                format!("joinleave:{chat}:{user}"),
                format!("slow:{chat}:{user}"),
            ] {
                if let Err(e) = eph.delete(&key).await {
                    tracing::debug!(error = %e, "ephemeral chat state of an erased account kept");
                }
            }
            if m.deleted {
                continue;
            }
            if let Err(e) = self
                .announce(chat, m.kind, user, "left", m.role, user)
                .await
            {
                e.log("chat_member left after an account erase");
            }
            if let Some(heir) = m.new_owner {
                let r = self
                    .announce(chat, m.kind, heir, "role_changed", ChatRole::Owner, user)
                    .await;
                if let Err(e) = r {
                    e.log("chat_member role_changed after an account erase");
                }
            }
        }
    }
}
