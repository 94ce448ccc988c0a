//! The hub: this node's open sockets, by user. Several sockets per user (one per device);
//! a sharded map, so the send path takes no global lock. Frames arrive serialized; durable
//! frames get their per-device `seq` spliced in without re-serializing the body.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use dashmap::DashMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::delivery::EntryMeta;
use crate::model::{SessionId, UserId};

/// Outbound queue capacity of one socket. A socket whose queue is full cannot keep up: it is
/// closed (durable frames) or loses the frame (ephemeral frames).
pub(crate) const OUTBOUND_CAPACITY: usize = 1024;

/// What the hub hands a socket task.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A durable frame with its seq already spliced in.
    Durable {
        /// Its seq on this device.
        seq: i64,
        /// Full frame text.
        frame: Bytes,
        /// What acknowledging it means.
        meta: EntryMeta,
    },
    /// An ephemeral frame (presence, typing, replies from elsewhere).
    Ephemeral(Bytes),
    /// Close the socket with this code and reason.
    Close(u16, &'static str),
    /// Frames may have been lost on their way here: re-read the queue.
    Pump,
}

/// Shared per-socket state the hub and the socket task both see.
#[derive(Debug, Default)]
pub(crate) struct SocketState {
    /// True while the socket is idle or declared `away`.
    away: AtomicBool,
}

impl SocketState {
    /// True while the socket is idle or declared `away`.
    pub(crate) fn is_away(&self) -> bool {
        self.away.load(Ordering::Relaxed)
    }

    /// Marks the socket away (idle or declared) or active.
    pub(crate) fn set_away(&self, away: bool) {
        self.away.store(away, Ordering::Relaxed);
    }

    /// Marks the socket active; true when it was away.
    pub(crate) fn wake(&self) -> bool {
        self.away.swap(false, Ordering::Relaxed)
    }
}

/// A registered socket.
#[derive(Clone, Debug)]
pub(crate) struct SocketHandle {
    pub(crate) id: u64,
    pub(crate) session: SessionId,
    pub(crate) tx: mpsc::Sender<Outbound>,
    /// Cancelled when the socket must die at once (slow consumer).
    pub(crate) kill: CancellationToken,
    pub(crate) state: Arc<SocketState>,
}

/// Registry of this node's sockets.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    users: DashMap<UserId, Vec<SocketHandle>>,
    per_ip: DashMap<IpAddr, usize>,
    next_id: AtomicU64,
    sockets: AtomicUsize,
}

/// Builds `{"seq":N,` + the rest of a serialized object (`{...}`): the durable frame of one
/// device, without re-serializing its body.
pub(crate) fn with_seq(base: &[u8], seq: i64) -> Bytes {
    let mut b = BytesMut::with_capacity(base.len() + 24);
    b.put_slice(b"{\"seq\":");
    b.put_slice(seq.to_string().as_bytes());
    if base.len() > 2 {
        b.put_u8(b',');
    }
    b.put_slice(base.get(1..).unwrap_or(b"}"));
    b.freeze()
}

impl Hub {
    /// An empty hub.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Reserves a connection slot for `ip`; false when it already has `max` live sockets.
    /// IPv6 clients share the slots of their /64.
    pub(crate) fn admit_ip(&self, ip: IpAddr, max: usize) -> bool {
        let mut n = self
            .per_ip
            .entry(super::limits::limit_addr(ip))
            .or_insert(0);
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    /// Frees a slot taken by [`Hub::admit_ip`].
    pub(crate) fn release_ip(&self, ip: IpAddr) {
        let key = super::limits::limit_addr(ip);
        if let dashmap::mapref::entry::Entry::Occupied(mut e) = self.per_ip.entry(key) {
            *e.get_mut() = e.get().saturating_sub(1);
            if *e.get() == 0 {
                e.remove();
            }
        }
    }

    /// Registers a socket; returns the socket of the same device it replaces, if any.
    pub(crate) fn register(&self, user: UserId, h: SocketHandle) -> Option<SocketHandle> {
        let mut list = self.users.entry(user).or_default();
        let replaced = list
            .iter()
            .position(|s| s.session == h.session)
            .map(|i| list.swap_remove(i));
        list.push(h);
        if replaced.is_none() {
            self.sockets.fetch_add(1, Ordering::Relaxed);
        }
        replaced
    }

    /// Removes a socket by id; returns true when the user has no socket left on this node.
    pub(crate) fn unregister(&self, user: UserId, id: u64) -> bool {
        let mut removed = false;
        let empty = match self.users.get_mut(&user) {
            Some(mut list) => {
                let before = list.len();
                list.retain(|s| s.id != id);
                removed = list.len() < before;
                list.is_empty()
            }
            None => true,
        };
        if removed {
            self.sockets.fetch_sub(1, Ordering::Relaxed);
        }
        if empty {
            self.users.remove_if(&user, |_, l| l.is_empty());
        }
        empty
    }

    /// Hands a durable frame (`base`, serialized without `seq`) to the socket of (user,
    /// session), if it is on this node: the frame of that device is spliced only then. A socket
    /// that cannot take it is killed: the entry stays queued and is replayed on reconnect.
    pub(crate) fn send_durable(
        &self,
        user: UserId,
        session: SessionId,
        seq: i64,
        base: &[u8],
        meta: EntryMeta,
    ) {
        let Some(list) = self.users.get(&user) else {
            return;
        };
        for s in list.iter().filter(|s| s.session == session) {
            let frame = with_seq(base, seq);
            if let Err(mpsc::error::TrySendError::Full(_)) =
                s.tx.try_send(Outbound::Durable { seq, frame, meta })
            {
                s.kill.cancel();
            }
        }
    }

    /// Has every socket of this node re-read its queue (frames sent to it from another node
    /// may have been lost on the bus). A socket whose outbound queue is full misses this: it
    /// has frames to handle, and a gap among them makes it read the queue anyway.
    pub(crate) fn pump_all(&self) {
        for list in self.users.iter() {
            for s in list.iter() {
                let _ = s.tx.try_send(Outbound::Pump);
            }
        }
    }

    /// Sends an ephemeral frame to every socket of `user` (except `skip`); dropped for sockets
    /// that cannot keep up.
    pub(crate) fn send_ephemeral(&self, user: UserId, frame: &Bytes, skip: Option<SessionId>) {
        let Some(list) = self.users.get(&user) else {
            return;
        };
        for s in list.iter().filter(|s| Some(s.session) != skip) {
            let _ = s.tx.try_send(Outbound::Ephemeral(frame.clone()));
        }
    }

    /// Sends an ephemeral frame to the socket of one session (call signalling).
    pub(crate) fn send_to_session(&self, user: UserId, session: SessionId, frame: &Bytes) {
        let Some(list) = self.users.get(&user) else {
            return;
        };
        for s in list.iter().filter(|s| s.session == session) {
            let _ = s.tx.try_send(Outbound::Ephemeral(frame.clone()));
        }
    }

    /// True when `session` of `user` has a socket on this node.
    pub(crate) fn has_session(&self, user: UserId, session: SessionId) -> bool {
        self.users
            .get(&user)
            .is_some_and(|l| l.iter().any(|s| s.session == session))
    }

    /// Closes every socket of a session (revocation).
    pub(crate) fn close_session(
        &self,
        user: UserId,
        session: SessionId,
        code: u16,
        reason: &'static str,
    ) {
        if let Some(list) = self.users.get(&user) {
            for s in list.iter().filter(|s| s.session == session) {
                if s.tx.try_send(Outbound::Close(code, reason)).is_err() {
                    s.kill.cancel();
                }
            }
        }
    }

    /// True when `user` has a socket on this node.
    #[cfg(test)]
    pub(crate) fn is_online(&self, user: UserId) -> bool {
        self.users.get(&user).is_some_and(|l| !l.is_empty())
    }

    /// `Some(true)` when every socket of `user` is away, `Some(false)` when one is active,
    /// `None` when the user has no socket here.
    pub(crate) fn all_away(&self, user: UserId) -> Option<bool> {
        let list = self.users.get(&user)?;
        if list.is_empty() {
            return None;
        }
        Some(list.iter().all(|s| s.state.is_away()))
    }

    /// The users with a socket here.
    pub(crate) fn users(&self) -> Vec<UserId> {
        self.users.iter().map(|e| *e.key()).collect()
    }

    /// The sessions of `user` with a socket here.
    pub(crate) fn sessions_of(&self, user: UserId) -> Vec<SessionId> {
        self.users
            .get(&user)
            .map(|l| l.iter().map(|s| s.session).collect())
            .unwrap_or_default()
    }

    /// Users with at least one socket here.
    pub(crate) fn online_users(&self) -> usize {
        self.users.len()
    }

    /// Open sockets here.
    #[cfg(test)]
    pub(crate) fn sockets(&self) -> usize {
        self.sockets.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices_seq() {
        assert_eq!(
            &with_seq(br#"{"type":"x"}"#, 7)[..],
            br#"{"seq":7,"type":"x"}"#
        );
        assert_eq!(&with_seq(b"{}", 1)[..], br#"{"seq":1}"#);
    }

    #[tokio::test]
    async fn register_replace_and_counts() {
        let hub = Hub::new();
        let u = UserId::new(12_345_678).expect("uid");
        let mk = |id, s| {
            let (tx, rx) = mpsc::channel(2);
            let h = SocketHandle {
                id,
                session: SessionId(s),
                tx,
                kill: CancellationToken::new(),
                state: Arc::new(SocketState::default()),
            };
            (h, rx)
        };
        let (a, _ra) = mk(1, 1);
        let (b, _rb) = mk(2, 2);
        let (a2, mut ra2) = mk(3, 1);
        assert!(hub.register(u, a).is_none());
        assert!(hub.register(u, b).is_none());
        assert_eq!(hub.register(u, a2).map(|h| h.id), Some(1));
        assert_eq!(hub.sockets(), 2);
        hub.send_durable(u, SessionId(1), 5, b"{}", EntryMeta::default());
        assert!(matches!(
            ra2.try_recv(),
            Ok(Outbound::Durable { seq: 5, .. })
        ));
        // A full queue kills the socket.
        let (slow, _rs) = mk(4, 9);
        let kill = slow.kill.clone();
        hub.register(u, slow);
        for _ in 0..3 {
            hub.send_durable(u, SessionId(9), 1, b"{}", EntryMeta::default());
        }
        assert!(kill.is_cancelled());
        assert!(!hub.unregister(u, 2));
        assert!(!hub.unregister(u, 3));
        assert!(hub.unregister(u, 4));
        assert!(!hub.is_online(u));
        assert!(hub.admit_ip("127.0.0.1".parse().expect("ip"), 1));
        assert!(!hub.admit_ip("127.0.0.1".parse().expect("ip"), 1));
        hub.release_ip("127.0.0.1".parse().expect("ip"));
        assert!(hub.admit_ip("127.0.0.1".parse().expect("ip"), 1));
    }
}
