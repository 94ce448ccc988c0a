//! Group chats, channels, their members and invites (docs/protocol.md §4.7) as the store keeps them.
//!
//! Names and invite codes are PII: records carry them sealed by the service layer (see
//! [`crate::crypto::Pii`]); lookups by code go through keyed blind indexes.

use std::fmt;
use std::str::FromStr;

use super::{Timestamp, UserId};

/// What kind of conversation a chat is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChatKind {
    /// A group: every member posts.
    Chat,
    /// A channel: only the owner and admins post; members read.
    Channel,
}

impl ChatKind {
    /// Stable text form (`"chat"` | `"channel"`), also the wire and stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Channel => "channel",
        }
    }
}

impl FromStr for ChatKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "chat" => Ok(Self::Chat),
            "channel" => Ok(Self::Channel),
            _ => Err(()),
        }
    }
}

impl fmt::Display for ChatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A member's role in a chat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChatRole {
    /// The creator: cannot be removed, demoted or leave.
    Owner,
    /// Manages members and invites; posts in channels.
    Admin,
    /// A plain member.
    Member,
}

impl ChatRole {
    /// Stable text form (`"owner"` | `"admin"` | `"member"`), also the wire and stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }
}

impl FromStr for ChatRole {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "owner" => Ok(Self::Owner),
            "admin" => Ok(Self::Admin),
            "member" => Ok(Self::Member),
            _ => Err(()),
        }
    }
}

impl fmt::Display for ChatRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A chat or channel row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatRecord {
    /// Store-assigned id (1, 2, 3, … per store).
    pub id: i64,
    /// Group chat or channel.
    pub kind: ChatKind,
    /// Sealed name.
    pub name: Vec<u8>,
    /// The creator.
    pub owner: UserId,
    /// Creation time.
    pub created_at: Timestamp,
    /// Whether the permanent invite code admits anyone.
    pub is_public: bool,
    /// Sealed permanent invite code, created the first time the chat turns public and kept
    /// afterwards.
    pub invite_code: Option<Vec<u8>>,
    /// Seconds a plain member waits between posts (0 = off).
    pub slow_mode_secs: u32,
}

/// One membership of a chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMember {
    /// The member.
    pub user: UserId,
    /// Their role.
    pub role: ChatRole,
    /// When they joined.
    pub joined_at: Timestamp,
}

/// A temporary, multi-use invite to a chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InviteRecord {
    /// The chat it admits to.
    pub chat_id: i64,
    /// Sealed invite code.
    pub code: Vec<u8>,
    /// Who created it.
    pub created_by: UserId,
    /// When it stops admitting.
    pub expires_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip() {
        for k in [ChatKind::Chat, ChatKind::Channel] {
            assert_eq!(k.as_str().parse::<ChatKind>(), Ok(k));
        }
        for r in [ChatRole::Owner, ChatRole::Admin, ChatRole::Member] {
            assert_eq!(r.as_str().parse::<ChatRole>(), Ok(r));
        }
        assert!("group".parse::<ChatKind>().is_err());
        assert!("Owner".parse::<ChatRole>().is_err());
    }
}
