//! The notes of the node bus and their encoding: `[version][origin u64][kind][fields…]`.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::model::{MessageId, SessionId, UserId};
use crate::service::delivery::EntryMeta;

/// Encoding version of a note (3: durable notes carry what acknowledging them means; 2 is the
/// first byte of a bundle).
const VERSION: u8 = 3;

/// A device a durable frame goes to, with its `seq` there.
pub(crate) type Device = (UserId, SessionId, i64);

/// Close reasons a note can carry (reasons are `&'static str` in the hub).
const REASONS: [&str; 6] = [
    "token_revoked",
    "replaced",
    "going_away",
    "slow_consumer",
    "internal_error",
    "closed",
];

/// A user's presence on one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodePresence {
    /// No socket there.
    Offline = 0,
    /// A socket that is not away.
    Online = 1,
    /// Every socket there is away.
    Away = 2,
}

/// What a cache must forget on every node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Invalidate {
    /// A user's sessions.
    Sessions(UserId),
    /// A contact pair.
    Contacts(UserId, UserId),
    /// A chat's member list.
    ChatMembers(i64),
}

/// One note on the bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Note {
    /// A durable frame body (without `seq`) for these devices.
    Durable {
        base: Bytes,
        meta: EntryMeta,
        to: Vec<Device>,
    },
    /// An ephemeral frame to every socket of `user` except `skip`.
    Ephemeral {
        user: UserId,
        skip: Option<SessionId>,
        frame: Bytes,
    },
    /// An ephemeral frame to the sockets of one session.
    ToSession {
        user: UserId,
        session: SessionId,
        frame: Bytes,
    },
    /// Close the sockets of a session.
    Close {
        user: UserId,
        session: SessionId,
        code: u16,
        reason: &'static str,
    },
    /// Forget a cache entry.
    Invalidate(Invalidate),
    /// The sender's local presence of `user` and the sessions it holds sockets of.
    Presence {
        user: UserId,
        state: NodePresence,
        sessions: Vec<SessionId>,
    },
    /// The sender is alive.
    Heartbeat,
    /// The receiver lost messages of the sender: announce your sockets to me again.
    Resync,
}

fn put_user(b: &mut BytesMut, u: UserId) {
    b.put_u32(u.get());
}

fn get_user(b: &mut Bytes) -> Option<UserId> {
    (b.remaining() >= 4)
        .then(|| b.get_u32())
        .and_then(UserId::new)
}

fn get_i64(b: &mut Bytes) -> Option<i64> {
    (b.remaining() >= 8).then(|| b.get_i64())
}

impl Note {
    /// `[version][origin u64][kind][fields…]`.
    pub(crate) fn encode(&self, origin: u64) -> Bytes {
        let mut b = BytesMut::with_capacity(64);
        b.put_u8(VERSION);
        b.put_u64(origin);
        match self {
            Note::Durable { base, meta, to } => {
                b.put_u8(1);
                b.put_u32(to.len() as u32);
                for (u, s, seq) in to {
                    put_user(&mut b, *u);
                    b.put_i64(s.0);
                    b.put_i64(*seq);
                }
                b.put_u8(u8::from(meta.receipt) | (u8::from(meta.message.is_some()) << 1));
                b.put_u128(meta.message.map_or(0, MessageId::as_u128));
                b.put_slice(base);
            }
            Note::Ephemeral { user, skip, frame } => {
                b.put_u8(2);
                put_user(&mut b, *user);
                b.put_i64(skip.map_or(-1, |s| s.0));
                b.put_slice(frame);
            }
            Note::ToSession {
                user,
                session,
                frame,
            } => {
                b.put_u8(3);
                put_user(&mut b, *user);
                b.put_i64(session.0);
                b.put_slice(frame);
            }
            Note::Close {
                user,
                session,
                code,
                reason,
            } => {
                b.put_u8(4);
                put_user(&mut b, *user);
                b.put_i64(session.0);
                b.put_u16(*code);
                let i = REASONS.iter().position(|r| r == reason).unwrap_or(5);
                b.put_u8(i as u8);
            }
            Note::Invalidate(inv) => {
                b.put_u8(5);
                match inv {
                    Invalidate::Sessions(u) => {
                        b.put_u8(1);
                        put_user(&mut b, *u);
                    }
                    Invalidate::Contacts(x, y) => {
                        b.put_u8(2);
                        put_user(&mut b, *x);
                        put_user(&mut b, *y);
                    }
                    Invalidate::ChatMembers(c) => {
                        b.put_u8(3);
                        b.put_i64(*c);
                    }
                }
            }
            Note::Presence {
                user,
                state,
                sessions,
            } => {
                b.put_u8(6);
                put_user(&mut b, *user);
                b.put_u8(*state as u8);
                b.put_u32(sessions.len() as u32);
                for s in sessions {
                    b.put_i64(s.0);
                }
            }
            Note::Heartbeat => b.put_u8(7),
            Note::Resync => b.put_u8(8),
        }
        b.freeze()
    }

    /// The origin node and the note; `None` for anything malformed (it is ignored).
    pub(crate) fn decode(mut b: Bytes) -> Option<(u64, Note)> {
        if b.remaining() < 10 || b.get_u8() != VERSION {
            return None;
        }
        let origin = b.get_u64();
        let note = match b.get_u8() {
            1 => {
                let n = (b.remaining() >= 4).then(|| b.get_u32())? as usize;
                if n > b.remaining() / 20 {
                    return None;
                }
                let mut to = Vec::with_capacity(n);
                for _ in 0..n {
                    to.push((
                        get_user(&mut b)?,
                        SessionId(get_i64(&mut b)?),
                        get_i64(&mut b)?,
                    ));
                }
                if b.remaining() < 17 {
                    return None;
                }
                let flags = b.get_u8();
                let id = MessageId::from_u128(b.get_u128());
                let meta = EntryMeta {
                    message: (flags & 2 != 0).then_some(id),
                    receipt: flags & 1 != 0,
                };
                Note::Durable { base: b, meta, to }
            }
            2 => {
                let user = get_user(&mut b)?;
                let skip = get_i64(&mut b)?;
                Note::Ephemeral {
                    user,
                    skip: (skip >= 0).then_some(SessionId(skip)),
                    frame: b,
                }
            }
            3 => Note::ToSession {
                user: get_user(&mut b)?,
                session: SessionId(get_i64(&mut b)?),
                frame: b,
            },
            4 => {
                let user = get_user(&mut b)?;
                let session = SessionId(get_i64(&mut b)?);
                let code = (b.remaining() >= 3).then(|| b.get_u16())?;
                let reason = REASONS.get(usize::from(b.get_u8())).copied()?;
                Note::Close {
                    user,
                    session,
                    code,
                    reason,
                }
            }
            5 => Note::Invalidate(match (b.remaining() >= 1).then(|| b.get_u8())? {
                1 => Invalidate::Sessions(get_user(&mut b)?),
                2 => Invalidate::Contacts(get_user(&mut b)?, get_user(&mut b)?),
                3 => Invalidate::ChatMembers(get_i64(&mut b)?),
                _ => return None,
            }),
            6 => {
                let user = get_user(&mut b)?;
                let state = match (b.remaining() >= 1).then(|| b.get_u8())? {
                    0 => NodePresence::Offline,
                    1 => NodePresence::Online,
                    2 => NodePresence::Away,
                    _ => return None,
                };
                let n = (b.remaining() >= 4).then(|| b.get_u32())? as usize;
                if n > b.remaining() / 8 {
                    return None;
                }
                let mut sessions = Vec::with_capacity(n);
                for _ in 0..n {
                    sessions.push(SessionId(get_i64(&mut b)?));
                }
                Note::Presence {
                    user,
                    state,
                    sessions,
                }
            }
            7 => Note::Heartbeat,
            8 => Note::Resync,
            _ => return None,
        };
        Some((origin, note))
    }
}
