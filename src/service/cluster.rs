//! Several nodes acting as one server (DESIGN "Several nodes").
//!
//! Every node keeps its own sockets in its hub. With clustering on
//! ([`MeloBuilder::cluster`](crate::MeloBuilder::cluster)), each node subscribes to two bus
//! topics: `hub`, which every node hears, and `hub:<its node id>`, its own.
//!
//! - **Addressed**: what this node delivers to its own sockets goes, in one note per node, only
//!   to the nodes that hold a socket of a recipient: durable frames (one note per serialized
//!   body and node, listing `(user, session, seq)`; the receiving node splices each `seq`
//!   itself), ephemeral frames (presence, typing, calls), frames for one session (call
//!   signalling) and socket closes (revocation). Which node holds which sockets is the
//!   registry each node keeps from the others' presence notes (below): a lookup in memory, no
//!   round trip on the send path.
//! - **To every node** (`hub`): cache invalidations (sessions of a user, a contact pair, a
//!   chat's members), presence (each node announces its local state of a user,
//!   `online`/`away`/none, and the sessions it holds sockets of) and a heartbeat every 5 s; a
//!   user's status merges the local hub with the states of nodes heard from within 20 s.
//!
//! The bus is a best-effort path and the store stays the truth. Every bus message carries its
//! node's counter for its destination; a counter that skips ahead means messages were lost, and
//! the receiver repairs from the store: it flushes its caches, has its sockets re-read their
//! queues, and asks the sender to announce its sockets again (a lost presence note would
//! otherwise leave the registry without them). Heartbeats go to each known node's own topic as
//! well, so a loss there shows within 5 s. A new socket re-reads its queue once, 2 s after it
//! opened, for frames sent before its node's presence note reached the others. Publishing
//! never blocks a request: notes go through a bounded queue to one publisher task; when it is
//! full, notes are dropped and counted ([`Cluster::dropped`], and
//! `melo_bus_dropped_notes_total`), and the hole in the counter tells the receivers.
//!
//! Each bus message is sealed with the data key (`seal`): frames carry nicknames, public keys,
//! SDP and ICE addresses, and whoever can watch the bus server (Redis `MONITOR`, `PSUBSCRIBE`)
//! must see ciphertext only, as in every value kept there. Nodes of one deployment share the
//! data keys; a message that does not open (another key set, a node of an older release
//! during a rolling upgrade) is dropped like a lost one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::mpsc;

use super::delivery::EntryMeta;
use super::Core;
use crate::metrics::BusMeters;
use crate::model::{SessionId, UserId};

/// The bus topic every node hears.
pub(crate) const TOPIC: &str = "hub";

/// The bus topic of one node.
pub(crate) fn node_topic(node: u64) -> String {
    format!("{TOPIC}:{node:016x}")
}

/// A bus message's destination id: [`ALL`] or a node id (never 0: ids are odd).
pub(crate) const ALL: u64 = 0;
/// How often a node says it is alive.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(5);
/// A node not heard from for this long no longer counts for presence.
pub(crate) const NODE_TIMEOUT: Duration = Duration::from_secs(20);
/// Notes waiting for the publisher before new ones are dropped.
const PUBLISH_QUEUE: usize = 65_536;
/// After a detected loss, every socket re-reads its queue this much later, once for all the
/// losses detected meanwhile.
const PUMP_COALESCE: Duration = Duration::from_millis(200);
/// A node asked to announce its sockets again has them re-read their queues this much later,
/// once the asking node has the list.
const RESYNC_PUMP_AFTER: Duration = Duration::from_secs(1);
/// A node asks another to announce its sockets at most this often.
const RESYNC_EVERY: Duration = Duration::from_secs(1);
/// Most notes the publisher puts in one bus message.
pub(crate) const MAX_BUNDLE: usize = 256;

mod note;
mod outbox;
mod wire;
pub(crate) use note::{Device, Invalidate, NodePresence, Note};
pub(crate) use wire::{bundle, unbundle};
#[cfg(test)]
use wire::{open, seal};

/// This node's membership of the cluster.
#[derive(Debug)]
pub(crate) struct Cluster {
    node: u64,
    /// Encoded notes with their destination ([`ALL`] or a node).
    tx: mpsc::Sender<(u64, Bytes)>,
    rx: std::sync::Mutex<Option<mpsc::Receiver<(u64, Bytes)>>>,
    /// Other nodes' presence of users: user → (node, state, sessions with a socket there).
    remote: DashMap<UserId, Vec<(u64, NodePresence, Vec<SessionId>)>>,
    /// When each other node was last heard from.
    heard: DashMap<u64, Instant>,
    dropped: AtomicU64,
    /// Counter of the bus messages this node sealed, per destination ([`ALL`] or a node).
    sealed: DashMap<u64, u64>,
    /// The highest message counter accepted from each node, on `hub` (false) and on this
    /// node's own topic (true); replays are refused.
    accepted: DashMap<(u64, bool), u64>,
    /// Bus messages and notes this node published.
    published: AtomicU64,
    published_notes: AtomicU64,
    /// Times the counter of another node skipped ahead (its messages were lost on the bus).
    gaps: AtomicU64,
    /// When this node started.
    started: Instant,
    /// Milliseconds after `started` of the last bus message opened (this node's own included).
    last_heard_ms: AtomicU64,
    /// A re-read of every socket's queue is scheduled (see [`Core::repair_after_loss`]).
    pump_pending: std::sync::atomic::AtomicBool,
    /// When each node was last asked to announce its sockets again.
    resync_asked: DashMap<u64, Instant>,
    /// The bus health metrics (drops, gaps, resyncs, forgotten nodes, queue, message age).
    pub(crate) meters: BusMeters,
}

impl Cluster {
    pub(crate) fn new(meters: BusMeters) -> Self {
        let (tx, rx) = mpsc::channel(PUBLISH_QUEUE);
        Self {
            node: rand::random::<u64>() | 1,
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
            remote: DashMap::new(),
            heard: DashMap::new(),
            dropped: AtomicU64::new(0),
            sealed: DashMap::new(),
            accepted: DashMap::new(),
            published: AtomicU64::new(0),
            published_notes: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            started: Instant::now(),
            last_heard_ms: AtomicU64::new(0),
            pump_pending: std::sync::atomic::AtomicBool::new(false),
            resync_asked: DashMap::new(),
            meters,
        }
    }

    /// This node's id (random per process).
    pub(crate) fn node(&self) -> u64 {
        self.node
    }

    /// Times messages of another node were found missing (a gap in its message counter);
    /// each one flushed this node's caches.
    #[cfg(test)]
    pub(crate) fn gaps(&self) -> u64 {
        self.gaps.load(Ordering::Relaxed)
    }

    /// Asks `node` to announce its sockets again, at most once per [`RESYNC_EVERY`] (each
    /// answer is a note per user there; asking on every loss could feed back into losses).
    pub(crate) fn ask_resync(&self, node: u64) {
        let now = Instant::now();
        let due = match self.resync_asked.get(&node) {
            Some(at) => now.duration_since(*at) >= RESYNC_EVERY,
            None => true,
        };
        if due {
            self.resync_asked.insert(node, now);
            self.meters.resync(true);
            self.publish_encoded(node, Note::Resync.encode(self.node));
        }
    }

    /// Notes that the bus just delivered a message.
    pub(crate) fn heard_bus(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_heard_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// True when this node's view of the other nodes' sockets can be trusted to be complete:
    /// it has run long enough to hear every live node, and the bus delivered a message (its
    /// own heartbeat at least) within the last two heartbeats.
    pub(crate) fn view_complete(&self) -> bool {
        let now = self.started.elapsed();
        let heard = Duration::from_millis(self.last_heard_ms.load(Ordering::Relaxed));
        now >= NODE_TIMEOUT && now.saturating_sub(heard) <= HEARTBEAT * 2
    }

    /// The other live nodes that hold a socket of (`user`, `session`).
    fn nodes_with_session(&self, user: UserId, session: SessionId, out: &mut Vec<u64>) {
        if let Some(list) = self.remote.get(&user) {
            for (node, _, sessions) in list.iter() {
                if sessions.contains(&session) && self.alive(*node) && !out.contains(node) {
                    out.push(*node);
                }
            }
        }
    }

    /// Splits the devices of a durable frame by the other live nodes holding their sockets;
    /// devices with no socket elsewhere are left out (a device on two nodes is on both lists).
    pub(crate) fn route(&self, to: Vec<Device>) -> Vec<(u64, Vec<Device>)> {
        let mut nodes = Vec::new();
        for (user, session, _) in &to {
            self.nodes_with_session(*user, *session, &mut nodes);
        }
        match nodes.as_slice() {
            [] => Vec::new(),
            // The common case: every device elsewhere is on one node; sent as it is (a device
            // with no socket there is skipped by that node's hub).
            [one] => vec![(*one, to)],
            many => {
                let mut on = Vec::new();
                many.iter()
                    .map(|node| {
                        let mine = to
                            .iter()
                            .filter(|(u, s, _)| {
                                on.clear();
                                self.nodes_with_session(*u, *s, &mut on);
                                on.contains(node)
                            })
                            .copied()
                            .collect();
                        (*node, mine)
                    })
                    .collect()
            }
        }
    }

    /// The other live nodes that hold a socket of `user`.
    fn nodes_with_user(&self, user: UserId, out: &mut Vec<u64>) {
        if let Some(list) = self.remote.get(&user) {
            for (node, _, _) in list.iter() {
                if self.alive(*node) && !out.contains(node) {
                    out.push(*node);
                }
            }
        }
    }

    /// Forgets the nodes not heard from within the node timeout (died, or cut off) and their
    /// sockets; returns the users they held, whose merged presence may have changed, or `None`
    /// when no node went silent.
    pub(crate) fn forget_silent_nodes(&self) -> Option<Vec<UserId>> {
        let silent: Vec<u64> = self
            .heard
            .iter()
            .filter(|e| *e.key() != self.node && e.value().elapsed() >= NODE_TIMEOUT)
            .map(|e| *e.key())
            .collect();
        if silent.is_empty() {
            return None;
        }
        for n in &silent {
            self.heard.remove(n);
            self.resync_asked.remove(n);
        }
        self.meters.forgotten(silent.len());
        let mut users = Vec::new();
        self.remote.retain(|user, list| {
            let n = list.len();
            list.retain(|(node, _, _)| !silent.contains(node));
            if list.len() != n {
                users.push(*user);
            }
            !list.is_empty()
        });
        Some(users)
    }

    /// The other nodes heard from within the node timeout.
    pub(crate) fn live_nodes(&self) -> Vec<u64> {
        self.heard
            .iter()
            .filter(|e| *e.key() != self.node && e.value().elapsed() < NODE_TIMEOUT)
            .map(|e| *e.key())
            .collect()
    }

    /// Merged presence of `user` on the other live nodes: `None` when no node has a socket.
    pub(crate) fn remote_away(&self, user: UserId) -> Option<bool> {
        let list = self.remote.get(&user)?;
        let mut any = None;
        for (node, state, _) in list.iter() {
            match (self.alive(*node), state) {
                (true, NodePresence::Online) => return Some(false),
                (true, NodePresence::Away) => any = Some(true),
                _ => {}
            }
        }
        any
    }

    fn alive(&self, node: u64) -> bool {
        self.heard
            .get(&node)
            .is_some_and(|t| t.elapsed() < NODE_TIMEOUT)
    }

    /// True when a live other node holds a socket of (`user`, `session`).
    pub(crate) fn remote_has_session(&self, user: UserId, session: SessionId) -> bool {
        self.remote.get(&user).is_some_and(|list| {
            list.iter()
                .any(|(node, _, sessions)| sessions.contains(&session) && self.alive(*node))
        })
    }

    fn set_remote(&self, node: u64, user: UserId, state: NodePresence, sessions: Vec<SessionId>) {
        let mut list = self.remote.entry(user).or_default();
        list.retain(|(n, _, _)| *n != node);
        if state != NodePresence::Offline {
            list.push((node, state, sessions));
        }
        let empty = list.is_empty();
        drop(list);
        if empty {
            self.remote.remove_if(&user, |_, l| l.is_empty());
        }
    }
}

impl Core {
    /// Applies a note from another node to this node's sockets and caches. Returns the user
    /// whose merged presence the note changed, for the presence service to announce.
    pub(crate) fn apply_note(
        self: &Arc<Self>,
        cluster: &Cluster,
        origin: u64,
        note: Note,
    ) -> Option<UserId> {
        if cluster.heard.insert(origin, Instant::now()).is_none() {
            // A node we had not heard from (new, or back after we forgot it): it learns our
            // sockets, and we ask for its own again (what it announced before we listened, or
            // before we forgot it, is not in our registry).
            self.announce_all_presence();
            cluster.ask_resync(origin);
        }
        match note {
            Note::Durable { base, meta, to } => {
                for (user, session, seq) in to {
                    self.hub.send_durable(user, session, seq, &base, meta);
                }
            }
            Note::Ephemeral { user, skip, frame } => self.hub.send_ephemeral(user, &frame, skip),
            Note::ToSession {
                user,
                session,
                frame,
            } => self.hub.send_to_session(user, session, &frame),
            Note::Close {
                user,
                session,
                code,
                reason,
            } => self.hub.close_session(user, session, code, reason),
            Note::Invalidate(Invalidate::Sessions(u)) => self.forget_sessions(u),
            Note::Invalidate(Invalidate::Contacts(a, b)) => self.forget_contacts(a, b),
            Note::Invalidate(Invalidate::ChatMembers(c)) => self.forget_chat_members(c),
            Note::Presence {
                user,
                state,
                sessions,
            } => {
                let before = self.all_away(user);
                cluster.set_remote(origin, user, state, sessions);
                if self.all_away(user) != before {
                    return Some(user);
                }
            }
            Note::Heartbeat => {}
            Note::Resync => {
                cluster.meters.resync(false);
                self.announce_all_presence();
                // Frames the asking node sent here before it knew our sockets reached none of
                // them: once it has the list, our sockets read their queues.
                self.schedule_pump(RESYNC_PUMP_AFTER);
            }
        }
        None
    }

    /// Tells every node this node's presence of every user with a socket here. On `hub`, like
    /// every presence note, so that a node applies one node's presence notes in order.
    fn announce_all_presence(&self) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        for user in self.hub.users() {
            cluster.publish(&self.local_presence(user));
        }
    }

    /// Messages of `origin` were lost (a gap in its counter): what they carried is repaired
    /// from the store. Caches are flushed, every socket here re-reads its queue, and `origin`
    /// is asked to announce its sockets again.
    pub(crate) fn repair_after_loss(self: &Arc<Self>, origin: u64) {
        self.flush_caches();
        let Some(c) = &self.cluster else {
            return;
        };
        c.ask_resync(origin);
        self.schedule_pump(PUMP_COALESCE);
    }

    /// Has every socket here re-read its queue `after` from now. Losses come in bursts (an
    /// overflowing queue drops many notes): one pump is pending at a time, not one per loss.
    fn schedule_pump(self: &Arc<Self>, after: Duration) {
        let Some(c) = &self.cluster else {
            return;
        };
        if !c.pump_pending.swap(true, Ordering::AcqRel) {
            let core = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                if let Some(c) = &core.cluster {
                    c.pump_pending.store(false, Ordering::Release);
                }
                core.hub.pump_all();
            });
        }
    }

    /// Publishes `note` to each of `nodes` (encoded once).
    fn tell_nodes(&self, nodes: &[u64], note: impl FnOnce() -> Note) {
        let Some(c) = &self.cluster else {
            return;
        };
        if nodes.is_empty() {
            return;
        }
        let encoded = note().encode(c.node);
        for n in nodes {
            c.publish_encoded(*n, encoded.clone());
        }
    }

    /// Durable frame `base` for the listed devices on other nodes: one note per node that
    /// holds a socket of one of them.
    pub(crate) fn tell_durable(
        &self,
        base: &Bytes,
        meta: EntryMeta,
        to: Vec<(UserId, SessionId, i64)>,
    ) {
        let Some(c) = &self.cluster else {
            return;
        };
        for (node, to) in c.route(to) {
            let note = Note::Durable {
                base: base.clone(),
                meta,
                to,
            };
            c.publish_encoded(node, note.encode(c.node));
        }
    }

    /// Publishes `note` when clustering is on.
    pub(crate) fn tell_cluster(&self, note: impl FnOnce() -> Note) {
        if let Some(c) = &self.cluster {
            c.publish(&note());
        }
    }

    /// Ephemeral frame to every socket of `user` (except `skip`) on every node that has one.
    pub(crate) fn send_ephemeral(&self, user: UserId, frame: &Bytes, skip: Option<SessionId>) {
        self.hub.send_ephemeral(user, frame, skip);
        if let Some(c) = &self.cluster {
            let mut nodes = Vec::new();
            c.nodes_with_user(user, &mut nodes);
            self.tell_nodes(&nodes, || Note::Ephemeral {
                user,
                skip,
                frame: frame.clone(),
            });
        }
    }

    /// Ephemeral frame to the sockets of one session, wherever they are.
    pub(crate) fn send_to_session(&self, user: UserId, session: SessionId, frame: &Bytes) {
        self.hub.send_to_session(user, session, frame);
        if let Some(c) = &self.cluster {
            let mut nodes = Vec::new();
            c.nodes_with_session(user, session, &mut nodes);
            self.tell_nodes(&nodes, || Note::ToSession {
                user,
                session,
                frame: frame.clone(),
            });
        }
    }

    /// Closes the sockets of a session on every node. A node this one does not know to hold
    /// them finds out by itself: sockets re-check their session (`SESSION_RECHECK`).
    pub(crate) fn close_session(
        &self,
        user: UserId,
        session: SessionId,
        code: u16,
        reason: &'static str,
    ) {
        self.hub.close_session(user, session, code, reason);
        if let Some(c) = &self.cluster {
            let mut nodes = Vec::new();
            c.nodes_with_session(user, session, &mut nodes);
            self.tell_nodes(&nodes, || Note::Close {
                user,
                session,
                code,
                reason,
            });
        }
    }

    /// `Some(true)` when every socket of `user` on every live node is away, `Some(false)` when
    /// one is active, `None` when the user has no socket anywhere.
    pub(crate) fn all_away(&self, user: UserId) -> Option<bool> {
        let local = self.hub.all_away(user);
        let remote = self.cluster.as_ref().and_then(|c| c.remote_away(user));
        match (local, remote) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (None, None) => None,
            _ => Some(true),
        }
    }

    /// Tells the other nodes this node's presence of `user` (after a socket change).
    pub(crate) fn announce_local_presence(&self, user: UserId) {
        self.tell_cluster(|| self.local_presence(user));
    }

    fn local_presence(&self, user: UserId) -> Note {
        Note::Presence {
            user,
            state: match self.hub.all_away(user) {
                None => NodePresence::Offline,
                Some(true) => NodePresence::Away,
                Some(false) => NodePresence::Online,
            },
            sessions: self.hub.sessions_of(user),
        }
    }

    /// True when [`Self::has_socket`] can be trusted to say "no socket anywhere": always on
    /// one node; with several, see [`Cluster::view_complete`].
    pub(crate) fn knows_every_socket(&self) -> bool {
        self.cluster.as_ref().is_none_or(Cluster::view_complete)
    }

    /// True when (`user`, `session`) has a socket on this node or another live one.
    pub(crate) fn has_socket(&self, user: UserId, session: SessionId) -> bool {
        self.hub.has_session(user, session)
            || self
                .cluster
                .as_ref()
                .is_some_and(|c| c.remote_has_session(user, session))
    }
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
