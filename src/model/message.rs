use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use serde::{Serialize, Serializer};

use super::{SessionId, Timestamp, UserId};

/// A server-assigned message id: UUIDv7 (time-ordered), 32 lowercase hex chars on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(u128);

impl MessageId {
    /// A new time-ordered id.
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7().as_u128())
    }

    /// From the 128-bit value.
    pub fn from_u128(v: u128) -> Self {
        Self(v)
    }

    /// The 128-bit value.
    pub fn as_u128(self) -> u128 {
        self.0
    }
}

impl Default for MessageId {
    fn default() -> Self {
        Self::new()
    }
}

impl FromStr for MessageId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(());
        }
        u128::from_str_radix(s, 16).map(Self).map_err(|_| ())
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

impl Serialize for MessageId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A stored message. The payload is opaque client data (ciphertext by contract).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Server-assigned id.
    pub id: MessageId,
    /// Author.
    pub from: UserId,
    /// DM recipient.
    pub to: Option<UserId>,
    /// Chat (group/channel) id.
    pub chat_id: Option<i64>,
    /// Opaque payload (for `chat_message` frames, the whole frame text).
    pub payload: String,
    /// Opaque signature handed to recipients.
    pub signature: Option<String>,
    /// When it was stored.
    pub created_at: Timestamp,
    /// Whether a recipient device acknowledged it.
    pub delivered: bool,
    /// Whether a recipient read it.
    pub read: bool,
    /// When the payload was last replaced (`None`: never edited).
    pub edited_at: Option<Timestamp>,
    /// Deleted by its author: the payload is `""` and the signature gone, the message keeps its
    /// place in history.
    pub deleted: bool,
    /// Pinned in its conversation.
    pub pinned: bool,
    /// Reactions: emoji → the users who reacted with it, in the order they did. A user has at
    /// most one reaction per message; an emoji without users is absent.
    pub reactions: BTreeMap<String, Vec<UserId>>,
}

impl Message {
    /// Content bytes for the byte bounds of docs/protocol.md §1.5: payload plus signature.
    pub fn content_bytes(&self) -> u64 {
        (self.payload.len() + self.signature.as_ref().map_or(0, String::len)) as u64
    }
}

/// A message to store, with the sending device's idempotency key.
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// The message.
    pub message: Message,
    /// Sending session (device); `client_id` is unique per session.
    pub sender_session: SessionId,
    /// Client idempotency key.
    pub client_id: Option<String>,
}

/// One device that gets a queue entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueTarget {
    /// The device's session.
    pub session: SessionId,
    /// Its user.
    pub user: UserId,
    /// A copy for the author's other devices (`"self": true`).
    pub self_copy: bool,
}

/// What a queue entry carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueItem {
    /// A `relay_delivery` of a stored message.
    Message {
        /// The message as currently stored.
        message: Message,
        /// Author's-other-device copy.
        self_copy: bool,
    },
    /// Any other durable frame, serialized without `seq` and sealed by the service.
    Event(Bytes),
    /// A `msg_status` receipt (`delivered`/`read`) in the service's compact encoding: ids and a
    /// time only, nothing to seal.
    Status(Bytes),
    /// Entries dropped by expiry or overflow, reported as one `gap` frame at this entry's seq
    /// (the newest dropped one).
    Gap(Gap),
}

/// A queue entry that is not a message copy (see [`QueueItem`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NewEntry {
    /// A durable frame serialized without `seq`, sealed by the service.
    Event(Bytes),
    /// A receipt in the service's compact encoding.
    Status(Bytes),
}

impl NewEntry {
    /// The stored bytes.
    pub fn body(&self) -> &Bytes {
        match self {
            Self::Event(b) | Self::Status(b) => b,
        }
    }
}

/// A run of dropped queue entries (docs/protocol.md §5.3 "Expiry and overflow").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    /// First dropped seq (merged gaps keep the oldest).
    pub from_seq: i64,
    /// Entries dropped (merged gaps add up).
    pub count: u64,
    /// `overflow` (true) or `expired` (false).
    pub overflow: bool,
    /// When the gap was recorded.
    pub at: Timestamp,
}

/// A queued durable frame of one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedEntry {
    /// Its sequence number on the device.
    pub seq: i64,
    /// Its content.
    pub item: QueueItem,
}

impl QueuedEntry {
    /// Content bytes for the byte bounds of a queue read: a message's
    /// [`Message::content_bytes`], an event's or receipt's stored bytes, 0 for a gap.
    pub fn content_bytes(&self) -> u64 {
        match &self.item {
            QueueItem::Message { message, .. } => message.content_bytes(),
            QueueItem::Event(b) | QueueItem::Status(b) => b.len() as u64,
            QueueItem::Gap(_) => 0,
        }
    }
}

/// A message copy acknowledged by a recipient device: its first acknowledgement by the
/// recipient makes `delivered` for the author.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckedEntry {
    /// Its seq.
    pub seq: i64,
    /// The message.
    pub message_id: MessageId,
}

/// What a device acknowledged, as the store removes it: every entry with `seq <= upto` and
/// each of `seqs` (ascending, all above `upto`); with the receipts the acknowledgements cause,
/// written in the same durable write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acks {
    /// Every entry up to this seq (0: none).
    pub upto: i64,
    /// Single entries above `upto`, ascending.
    pub seqs: Vec<i64>,
    /// Receipt entries to append (for the authors' devices).
    pub receipts: Vec<(SessionId, NewEntry)>,
    /// Messages to flag delivered.
    pub delivered: Vec<MessageId>,
}

impl Acks {
    /// True when it removes nothing.
    pub fn is_empty(&self) -> bool {
        self.upto <= 0 && self.seqs.is_empty()
    }
}

/// Which entries an acknowledgement removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckSelector {
    /// Every entry with `seq` ≤ N.
    UpTo(i64),
    /// The entry with this seq.
    Seq(i64),
    /// The entry carrying this message.
    Message(MessageId),
}

/// Result of storing a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Stored; the seq assigned to each target, in target order.
    Stored(Vec<i64>),
    /// The sender's device already used this `client_id`: the first message's id.
    Duplicate(MessageId),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_hex_and_ordered() {
        let a = MessageId::new();
        let b = MessageId::new();
        assert!(a < b);
        let s = a.to_string();
        assert_eq!(s.len(), 32);
        assert_eq!(s.parse::<MessageId>(), Ok(a));
        assert!("zzz".parse::<MessageId>().is_err());
        assert!("g".repeat(32).parse::<MessageId>().is_err());
    }
}
