//! [`ImportStore`]: what `melo import-original` ([`crate::import`]) needs beyond the other
//! traits: creating a user or a chat with the identifier it had on the original server, and
//! knowing, on a later run, which users and chats an import created.

use std::collections::HashSet;
use std::fmt;

use async_trait::async_trait;

use super::StoreResult;
use crate::model::{ChatKind, Timestamp, UserId, UserRecord};

/// What an import call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportOutcome {
    /// Created, and recorded as imported.
    Created,
    /// An earlier import created it: nothing changed (a user keeps what they changed since).
    AlreadyImported,
    /// Taken by something the importer did not create; nothing changed. The payload names what
    /// collided: `"uid"` (a Melo user has the uid), `"retired"` (an erased account had it),
    /// `"phone"` (a Melo user has the phone's blind index), `"chat"` (a Melo chat has the id),
    /// `"invite"` (a chat has the code's blind index).
    Conflict(&'static str),
}

/// A chat as the importer creates it: with its original id, sealed by the service's rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedChat {
    /// The id it had on the original server (clients know it).
    pub id: i64,
    /// Group or channel.
    pub kind: ChatKind,
    /// The name sealed bound to `id`.
    pub sealed_name: Vec<u8>,
    /// The owner (an imported user); also made a member with role owner, joined `created_at`.
    pub owner: UserId,
    /// When it was created.
    pub created_at: Timestamp,
    /// Joinable by its permanent code.
    pub is_public: bool,
    /// The permanent code sealed bound to `id`, and its blind index.
    pub code: Option<(Vec<u8>, Vec<u8>)>,
    /// Slow-mode interval, seconds.
    pub slow_mode_secs: u32,
}

/// What earlier complete runs imported besides users and chats: graph rows (contacts,
/// memberships, read markers) and device tokens are imported once, so that what a user undid
/// in Melo since (a contact removed, a chat left, a session revoked) stays undone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportDone {
    /// Imported users whose contacts, memberships and read markers a run has imported.
    pub graph_users: HashSet<UserId>,
    /// Imported users whose device tokens a run (given the original's Redis) has imported.
    pub token_users: HashSet<UserId>,
    /// Imported chats whose members and read markers a run has imported.
    pub member_chats: HashSet<i64>,
}

/// Creating users and chats under the original server's identifiers, once.
#[async_trait]
pub trait ImportStore: Send + Sync + fmt::Debug {
    /// Creates `user` as given and records its uid as imported, atomically. When the uid was
    /// imported before: `AlreadyImported`, nothing changed. Otherwise `Conflict("uid")` when a
    /// user has the uid, `Conflict("retired")` when an erased account had it,
    /// `Conflict("phone")` when a user has the phone's blind index.
    async fn import_user(&self, user: &UserRecord) -> StoreResult<ImportOutcome>;

    /// Creates the chat with its given id, its owner's membership (role owner) and its record
    /// as imported, atomically; later chats of the store get higher ids. When the id was
    /// imported before (even if the chat has been deleted since): `AlreadyImported`, nothing
    /// changed. Otherwise `Conflict("chat")` when a chat has the id, `Conflict("invite")` when a
    /// chat has the code's blind index.
    async fn import_chat(&self, chat: &ImportedChat) -> StoreResult<ImportOutcome>;

    /// Chats created from now on get ids above `through` (the original's highest chat id, so
    /// that no new chat takes an id the original's clients knew as another chat). Never lowers
    /// the next id.
    async fn reserve_chat_ids(&self, through: i64) -> StoreResult<()>;

    /// Whether `user` was created by an import (and still exists).
    async fn is_imported_user(&self, user: UserId) -> StoreResult<bool>;

    /// Sets `user`'s password hash to `new` only if it is still `old` (compare and set): the
    /// first login of an imported account replaces the original's hash without overwriting a
    /// password changed meanwhile. True when it was replaced.
    async fn replace_password_hash(&self, user: UserId, old: &str, new: &str) -> StoreResult<bool>;

    /// What earlier runs marked done ([`mark_import_done`](Self::mark_import_done)).
    async fn import_done(&self) -> StoreResult<ImportDone>;

    /// Marks the graph of `users` (and their device tokens when `tokens`) and the members of
    /// `chats` as imported. Ids the import did not create (or that are gone) are ignored.
    async fn mark_import_done(
        &self,
        users: &[UserId],
        tokens: bool,
        chats: &[i64],
    ) -> StoreResult<()>;
}
