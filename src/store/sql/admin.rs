//! SQL both dialects share for the operator tools: the counts of `AdminStore::counts`.

use super::rows::Cells;
use crate::store::{StoreCounts, StoreResult};

/// Every count in one statement (one consistent snapshot); the parameter is "now" in
/// milliseconds, for the open registration invites.
pub(crate) const COUNTS_SQL: &str = "SELECT \
     (SELECT COUNT(*) FROM users) AS users, \
     (SELECT COUNT(*) FROM users WHERE locked = 1) AS locked_users, \
     (SELECT COUNT(*) FROM sessions WHERE active = 1) AS active_sessions, \
     (SELECT COUNT(*) FROM chats WHERE kind = 'chat') AS chats, \
     (SELECT COUNT(*) FROM chats WHERE kind = 'channel') AS channels, \
     (SELECT COUNT(*) FROM chat_members) AS chat_members, \
     (SELECT COUNT(*) FROM contacts WHERE accepted = 1) AS contacts, \
     (SELECT COUNT(*) FROM contacts WHERE accepted = 0) AS contact_requests, \
     (SELECT COUNT(*) FROM messages) AS messages, \
     (SELECT COUNT(*) FROM queue) AS queued_entries, \
     (SELECT COUNT(*) FROM push_registrations) AS push_registrations, \
     (SELECT COUNT(*) FROM avatars) AS avatars, \
     (SELECT COUNT(*) FROM registration_invites WHERE used = 0 AND expires_at > ?) \
         AS open_registration_invites";

/// Decodes the row of [`COUNTS_SQL`].
pub(crate) fn counts(r: &impl Cells) -> StoreResult<StoreCounts> {
    let n = |col: &str| r.int(col).map(|v| u64::try_from(v).unwrap_or(0));
    Ok(StoreCounts {
        users: n("users")?,
        locked_users: n("locked_users")?,
        active_sessions: n("active_sessions")?,
        chats: n("chats")?,
        channels: n("channels")?,
        chat_members: n("chat_members")?,
        contacts: n("contacts")?,
        contact_requests: n("contact_requests")?,
        messages: n("messages")?,
        queued_entries: n("queued_entries")?,
        push_registrations: n("push_registrations")?,
        avatars: n("avatars")?,
        open_registration_invites: n("open_registration_invites")?,
    })
}
