//! Receipts (`msg_status` `delivered` / `read`, docs/protocol.md §5.5) as queue entries: a fixed
//! 43-byte encoding of ids and a time. Nothing in it is PII, so unlike other events it is not
//! sealed, and a store keeps it in a fraction of the room the frame would take.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::model::{MessageId, Timestamp, UserId};
use crate::service::frames::{self, MsgStatus, ServerFrame};

/// Encoding version.
const VERSION: u8 = 1;
/// Encoded length.
const LEN: usize = 43;

/// `delivered` or `read`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Receipt {
    Delivered = 1,
    Read = 2,
}

impl Receipt {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Read => "read",
        }
    }
}

/// One receipt: `from` (the recipient who received or read) about message `message_id` of
/// `to` (its author).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) message_id: MessageId,
    pub(crate) receipt: Receipt,
    pub(crate) from: UserId,
    pub(crate) to: UserId,
    pub(crate) chat_id: Option<i64>,
    pub(crate) ts: Timestamp,
    /// The copy for the reader's other devices (`"self": true`).
    pub(crate) self_copy: bool,
}

impl Status {
    /// `[1][receipt][flags: 1 self, 2 chat][id 16][from 4][to 4][chat 8][ts 8]`.
    pub(crate) fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(LEN);
        b.put_u8(VERSION);
        b.put_u8(self.receipt as u8);
        b.put_u8(u8::from(self.self_copy) | (u8::from(self.chat_id.is_some()) << 1));
        b.put_u128(self.message_id.as_u128());
        b.put_u32(self.from.get());
        b.put_u32(self.to.get());
        b.put_i64(self.chat_id.unwrap_or(0));
        b.put_i64(self.ts.millis());
        b.freeze()
    }

    /// `None` for anything that is not an encoded status.
    pub(crate) fn decode(mut b: &[u8]) -> Option<Self> {
        if b.len() != LEN || b.get_u8() != VERSION {
            return None;
        }
        let receipt = match b.get_u8() {
            1 => Receipt::Delivered,
            2 => Receipt::Read,
            _ => return None,
        };
        let flags = b.get_u8();
        let message_id = MessageId::from_u128(b.get_u128());
        let from = UserId::new(b.get_u32())?;
        let to = UserId::new(b.get_u32())?;
        let chat = b.get_i64();
        Some(Self {
            message_id,
            receipt,
            from,
            to,
            chat_id: (flags & 2 != 0).then_some(chat),
            ts: Timestamp::from_millis(b.get_i64()),
            self_copy: flags & 1 != 0,
        })
    }

    /// The `msg_status` frame, without `seq`.
    pub(crate) fn frame(&self) -> Bytes {
        frames::to_bytes(&ServerFrame::MsgStatus(MsgStatus {
            message_id: self.message_id,
            status: self.receipt.as_str(),
            from: self.from,
            to: Some(self.to),
            chat_id: self.chat_id,
            client_id: None,
            ts: self.ts,
            duplicate: false,
            self_copy: self.self_copy,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = Status {
            message_id: MessageId::new(),
            receipt: Receipt::Read,
            from: UserId::new(12_345_678).expect("uid"),
            to: UserId::new(87_654_321).expect("uid"),
            chat_id: Some(5),
            ts: Timestamp::from_millis(1_700_000_000_123),
            self_copy: true,
        };
        let b = s.encode();
        assert_eq!(b.len(), LEN);
        assert_eq!(Status::decode(&b), Some(s));
        let dm = Status {
            chat_id: None,
            self_copy: false,
            receipt: Receipt::Delivered,
            ..s
        };
        assert_eq!(Status::decode(&dm.encode()), Some(dm));
        assert_eq!(Status::decode(&b[1..]), None);
        let text = String::from_utf8(dm.frame().to_vec()).expect("utf8");
        assert!(text.contains(r#""status":"delivered""#), "{text}");
        assert!(
            !text.contains("chat_id") && !text.contains("self"),
            "{text}"
        );
    }
}
