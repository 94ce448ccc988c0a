//! Account deletion and export (issue 17; docs/accounts.md): `DELETE /account` and
//! `GET /account/export`, and [`AccountsService::delete_account`] for operators.
//!
//! Deleting is one store transaction ([`EraseStore::erase_user`](crate::store::EraseStore)),
//! then what the others must learn and what lives outside the store: sockets close on every
//! node, caches forget on every node, former contacts get `subscription_removed`, chat members
//! `chat_member`, and the user's ephemeral state goes. Exporting opens everything the server
//! holds about the caller (see [`export`]).

use std::sync::Arc;

use serde::Serialize;

use super::limits::AccountKey;
use super::{
    Authenticated, ChatsService, ClientInfo, ContactsService, Core, Error, LimitsService,
    PresenceService, Result, SessionsService,
};
use crate::model::UserId;
use crate::store::ErasedAccount;

pub(crate) mod export;

/// Longest password `DELETE /account` accepts (the rule of passwords, docs/protocol.md §1.5).
const MAX_PASSWORD_CHARS: usize = 128;

/// The field rule of `DELETE /account`'s password: present, at most 128 characters (anything
/// else is never a password of this server).
pub(crate) fn password_input(password: &str) -> Result<()> {
    if password.is_empty() {
        return Err(Error::field("password", "is required"));
    }
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(Error::field("password", "must be at most 128 characters"));
    }
    Ok(())
}

/// What [`Melo::delete_account`](crate::Melo::delete_account) did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AccountDeleted {
    /// The erased account's uid (never handed out again).
    pub user_id: UserId,
    /// Sessions deleted, active or revoked.
    pub sessions: usize,
    /// Of those, the active ones, whose sockets were closed.
    pub active_sessions: usize,
    /// Contact relationships removed, accepted or pending.
    pub contacts: usize,
    /// Chats the user left (including those deleted).
    pub chats_left: usize,
    /// Chats deleted because no other member remained.
    pub chats_deleted: usize,
    /// Chats whose ownership passed to another member.
    pub ownership_passed: usize,
}

impl AccountDeleted {
    fn of(user: UserId, e: &ErasedAccount) -> Self {
        Self {
            user_id: user,
            sessions: e.sessions.len(),
            active_sessions: e.active_sessions.len(),
            contacts: e.contacts.len(),
            chats_left: e.chats.len(),
            chats_deleted: e.chats.iter().filter(|c| c.deleted).count(),
            ownership_passed: e.chats.iter().filter(|c| c.new_owner.is_some()).count(),
        }
    }
}

/// Account deletion and export.
#[derive(Clone, Debug)]
pub(crate) struct AccountsService {
    core: Arc<Core>,
    sessions: SessionsService,
    contacts: ContactsService,
    chats: ChatsService,
    presence: PresenceService,
    limits: LimitsService,
}

impl AccountsService {
    pub(crate) fn new(
        core: Arc<Core>,
        sessions: SessionsService,
        contacts: ContactsService,
        chats: ChatsService,
        presence: PresenceService,
    ) -> Self {
        Self {
            limits: LimitsService::new(core.clone()),
            core,
            sessions,
            contacts,
            chats,
            presence,
        }
    }

    /// Deletes the account `user` for good, without any password: the operator's
    /// `melo admin user delete`, and `DELETE /account` once it checked the password.
    ///
    /// In one store transaction: the user row (phone blind index freed), backups, settings,
    /// avatar, every session with its device token, push registration and queue, every contact
    /// relationship, every chat membership (an owned chat passes to its oldest admin, else its
    /// oldest member; a chat left empty is deleted); the uid is retired. Then: the sessions'
    /// sockets close with 1008 `token_revoked` on this node and the others (bus `Close` notes;
    /// a node the note misses closes them on its session re-check), caches forget the user's
    /// sessions, contact pairs and chats on every node, former contacts get
    /// `subscription_removed`, chat members `chat_member` (`left`, and `role_changed` for a new
    /// owner), calls end, and the user's ephemeral state (CSRF tokens, link codes, presence,
    /// typing, last seen, rate-limit and lockout counters) is deleted. Messages already
    /// delivered stay with their recipients.
    ///
    /// `UserNotFound` when there is no such account (already deleted, say).
    pub(crate) async fn delete_account(&self, user: UserId) -> Result<AccountDeleted> {
        let Some(erased) = self.core.store.erase_user(user).await? else {
            return Err(Error::UserNotFound);
        };
        let done = AccountDeleted::of(user, &erased);
        tracing::info!(
            target: "melo::audit",
            event = "account_deleted",
            user_id = %user,
            sessions = done.sessions,
            contacts = done.contacts,
            chats_left = done.chats_left,
            chats_deleted = done.chats_deleted,
            ownership_passed = done.ownership_passed,
            "account deleted"
        );
        self.core.sessions_changed(user);
        for id in &erased.active_sessions {
            self.sessions.ended(user, *id).await;
        }
        self.contacts.account_erased(user, &erased.contacts).await;
        self.chats.account_erased(user, &erased.chats).await;
        let peers: Vec<UserId> = erased
            .contacts
            .iter()
            .map(|c| {
                if c.requester == user {
                    c.target
                } else {
                    c.requester
                }
            })
            .collect();
        let chats: Vec<i64> = erased.chats.iter().map(|c| c.chat_id).collect();
        self.presence.forget(user, &peers, &chats).await;
        self.limits.forget_user(user).await;
        if let Err(e) = self.core.ephemeral.delete(&export::export_key(user)).await {
            tracing::debug!(error = %e, "export budget of an erased account kept");
        }
        Ok(done)
    }

    /// `DELETE /account`: the caller's own account, after its current password. A wrong
    /// password is `Forbidden` (as a wrong `current_password` of `PUT /profile`) and counts as
    /// a failed login of the account from the client's address (docs/protocol.md §3.4: enough of them
    /// lock it, `LoginLocked`); nothing is deleted then.
    pub(crate) async fn delete_own_account(
        &self,
        auth: &Authenticated,
        password: &str,
        client: &ClientInfo,
    ) -> Result<AccountDeleted> {
        password_input(password)?;
        let Some(user) = self.core.store.user(auth.user).await? else {
            return Err(Error::InvalidToken);
        };
        let attempt = self
            .limits
            .begin_login(&AccountKey::User(auth.user), client.ip)
            .await?;
        if !self
            .core
            .passwords
            .verify(password, &user.password_hash)
            .await?
        {
            self.limits.login_failed(attempt).await?;
            tracing::info!(target: "melo::audit", event = "account_delete_refused", user_id = %auth.user, session_id = %auth.session, "wrong password");
            return Err(Error::Forbidden);
        }
        self.limits.login_succeeded(attempt).await?;
        self.delete_account(auth.user).await
    }
}

#[cfg(test)]
mod tests;
