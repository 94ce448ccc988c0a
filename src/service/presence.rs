//! Presence, typing and statuses (docs/protocol.md §4.5, §5.6). Ephemeral: never stored durably.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use serde::Serialize;

use super::frames::{self, ServerFrame, StatusChange, Typing};
use super::{Authenticated, Core, Error, Result};
use crate::model::{Timestamp, UserId};
use crate::store::ContactState;

mod chat_typing;

/// Coalescing window of forwarded `typing_start` frames.
const TYPING_FORWARD_EVERY: Duration = Duration::from_secs(3);
/// How long a shared announced status outlives the last change: as long as a last-seen time,
/// so that a record never expires under a user who stays online or away (its expiry would read
/// as `offline` and hide the real `offline` that follows).
const ANNOUNCED_KEEP: Duration = Duration::from_secs(31 * 86_400);
/// How long a last-seen time is kept (older reads as `closed`).
const LAST_SEEN_KEEP: Duration = Duration::from_secs(31 * 86_400);

/// A user's privacy choices, sealed in the store as JSON.
#[derive(Debug, Default, Serialize, serde::Deserialize)]
struct Settings {
    /// Invisible mode: shown `offline` to everyone while connected.
    #[serde(default)]
    invisible: bool,
}

/// A contact's presence as `pong` and `/statuses` report it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ContactStatus {
    /// `online` | `away` | `offline` (pong), or the `/statuses` forms.
    pub status: String,
    /// Typing in the DM with the caller.
    pub typing: bool,
}

/// Presence and typing.
#[derive(Clone, Debug)]
pub(crate) struct PresenceService {
    core: Arc<Core>,
    /// Last value announced per user, to send `status_change` only on changes.
    announced: Arc<DashMap<UserId, &'static str>>,
    /// DMs where a `typing_start` passed through this node, with when: a message only checks
    /// the (shared, possibly remote) typing state when its sender typed here recently, so the
    /// send path makes no ephemeral round trip in the common case. Typing started on another
    /// node then simply expires after `TYPING_TTL`.
    typed_here: Arc<DashMap<(UserId, UserId), std::time::Instant>>,
    /// Likewise for group chats: the chat a user started typing in through this node, with
    /// when, so a chat message checks the shared typing record only after a recent start here.
    typed_chat_here: Arc<DashMap<UserId, (i64, std::time::Instant)>>,
}

impl PresenceService {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self {
            core,
            announced: Arc::new(DashMap::new()),
            typed_here: Arc::new(DashMap::new()),
            typed_chat_here: Arc::new(DashMap::new()),
        }
    }

    /// Those of `users` in invisible mode. Read from the store (a privacy choice must survive
    /// restarts of the server and of Redis); when the store cannot answer, every one of them
    /// counts as invisible, so a failure never shows anyone online.
    async fn invisible_among(&self, users: &[UserId]) -> HashSet<UserId> {
        if users.is_empty() {
            return HashSet::new();
        }
        match self.core.store.settings(users).await {
            Ok(rows) => rows
                .into_iter()
                .filter(|(u, sealed)| self.open_settings(*u, sealed).invisible)
                .map(|(u, _)| u)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "settings unreadable; presence shown as offline");
                users.iter().copied().collect()
            }
        }
    }

    /// A user's settings; unreadable ones count as invisible.
    fn open_settings(&self, user: UserId, sealed: &[u8]) -> Settings {
        self.core
            .pii
            .open("user_settings", "settings", &user.to_string(), sealed)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Settings { invisible: true })
    }

    /// `online` | `away` | `offline` as others see it.
    pub(crate) async fn status_of(&self, user: UserId) -> &'static str {
        let live = self.core.all_away(user);
        if live.is_some() && !self.invisible_among(&[user]).await.is_empty() {
            return "offline";
        }
        Self::live_status(live)
    }

    fn live_status(all_away: Option<bool>) -> &'static str {
        match all_away {
            None => "offline",
            Some(true) => "away",
            Some(false) => "online",
        }
    }

    async fn contacts(&self, user: UserId) -> Result<Vec<UserId>> {
        Ok(self.core.store.contacts_of(user, 0, u64::MAX / 2).await?.0)
    }

    /// Recomputes `user`'s presence and tells the online devices of its accepted contacts when
    /// it changed.
    pub(crate) async fn refresh(&self, user: UserId) {
        self.core.announce_local_presence(user);
        self.recompute(user).await;
    }

    /// Another node's presence of `user` changed (or that node went silent): the merged status
    /// may have changed without any socket of this node. Several nodes may run this for one
    /// change; the shared record of what was announced lets one of them announce it.
    pub(crate) async fn remote_changed(&self, user: UserId) {
        self.recompute(user).await;
    }

    /// Announces `user`'s status to its contacts when it differs from the one announced last.
    async fn recompute(&self, user: UserId) {
        let now = self.status_of(user).await;
        let before = self.swap_announced(user, now).await;
        if now == "offline" {
            self.touch_last_seen(user).await;
        }
        if before == now {
            return;
        }
        let frame = frames::to_bytes(&ServerFrame::StatusChange(StatusChange {
            user_id: user,
            status: now,
            timestamp: Timestamp::now(),
        }));
        match self.contacts(user).await {
            Ok(contacts) => {
                for c in contacts {
                    self.core.send_ephemeral(c, &frame, None);
                }
            }
            Err(e) => tracing::warn!(error = %e, "presence fan-out skipped"),
        }
    }

    /// Records `now` as `user`'s announced status and returns the one announced before
    /// (`offline` when none). One node keeps it in memory; several share it in the ephemeral
    /// state, since another node's announcement makes a node's own memory stale. Should the
    /// shared state fail, this node's memory answers: at worst a duplicate frame.
    async fn swap_announced(&self, user: UserId, now: &'static str) -> &'static str {
        let local = if now == "offline" {
            self.announced.remove(&user).map(|(_, s)| s)
        } else {
            self.announced.insert(user, now)
        }
        .unwrap_or("offline");
        if self.core.cluster.is_none() {
            return local;
        }
        let key = format!("announced:{user}");
        let eph = &self.core.ephemeral;
        // Compare and swap, from the atomic operations at hand: of nodes racing to announce
        // one change, one moves the record and announces; the others find it moved.
        for _ in 0..3 {
            let shared = match eph.get(&key).await {
                Ok(v) => match v.as_deref() {
                    Some(b"online") => "online",
                    Some(b"away") => "away",
                    _ => "offline",
                },
                Err(e) => {
                    tracing::debug!(error = %e, "shared presence unreadable; using this node's");
                    return local;
                }
            };
            if shared == now {
                return now;
            }
            let moved = async {
                if shared != "offline" && !eph.delete_if(&key, shared.as_bytes()).await? {
                    return Ok(false);
                }
                if now == "offline" {
                    return Ok(true);
                }
                eph.set_if_absent(&key, now.as_bytes(), ANNOUNCED_KEEP)
                    .await
            };
            match moved.await {
                Ok(true) => return shared,
                Ok(false) => continue,
                Err::<_, crate::ephemeral::EphemeralError>(e) => {
                    tracing::debug!(error = %e, "shared presence not written");
                    return local;
                }
            }
        }
        // Others keep moving it: they announce.
        now
    }

    async fn touch_last_seen(&self, user: UserId) {
        // An erased account keeps no last-seen time: its sockets close after the erase, and
        // their closing must not write one again.
        match self.core.store.user(user).await {
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(e) => return tracing::warn!(error = %e, "last seen not stored"),
        }
        let now = Timestamp::now().millis().to_string();
        let sealed = match self
            .core
            .pii
            .seal_str("ephemeral", "last_seen", &user.to_string(), &now)
        {
            Ok(s) => s,
            Err(e) => return tracing::warn!(error = %e, "could not seal last seen"),
        };
        if let Err(e) = self
            .core
            .ephemeral
            .set(&format!("seen:{user}"), &sealed, LAST_SEEN_KEEP)
            .await
        {
            tracing::warn!(error = %e, "could not store last seen");
        }
    }

    /// When `user` was last online (or switched to invisible).
    pub(crate) async fn last_seen(&self, user: UserId) -> Option<Timestamp> {
        let sealed = self
            .core
            .ephemeral
            .get(&format!("seen:{user}"))
            .await
            .ok()??;
        self.open_last_seen(user, &sealed)
    }

    /// A sealed last-seen time of `user`, opened.
    fn open_last_seen(&self, user: UserId, sealed: &[u8]) -> Option<Timestamp> {
        let text = self
            .core
            .pii
            .open_string("ephemeral", "last_seen", &user.to_string(), sealed)
            .ok()?;
        text.parse().ok().map(Timestamp::from_millis)
    }

    /// `POST /status/offline` (`true`) and `/status/online` (`false`): kept in the store,
    /// sealed, so it survives restarts.
    pub(crate) async fn set_invisible(&self, user: UserId, on: bool) -> Result<()> {
        if on {
            self.touch_last_seen(user).await;
        }
        let json = serde_json::to_vec(&Settings { invisible: on })
            .map_err(|e| Error::Internal(format!("settings: {e}")))?;
        let sealed = self
            .core
            .pii
            .seal("user_settings", "settings", &user.to_string(), &json)?;
        self.core.store.put_settings(user, &sealed).await?;
        self.refresh(user).await;
        Ok(())
    }

    /// Forgets everything presence keeps about `user`, whose account was erased: what this
    /// node announced and saw typed, and in the ephemeral state the last-seen time, the shared
    /// announced status, the chat it was typing in, and the typing state between `user` and
    /// each of `peers` (its former contacts) and in each of `chats`. Best effort: a key that
    /// cannot be deleted expires.
    pub(crate) async fn forget(&self, user: UserId, peers: &[UserId], chats: &[i64]) {
        self.announced.remove(&user);
        self.typed_here
            .retain(|(from, to), _| *from != user && *to != user);
        self.typed_chat_here.remove(&user);
        let mut keys = vec![
            format!("seen:{user}"),
            format!("announced:{user}"),
            Self::typing_chat_key(user),
        ];
        for peer in peers {
            keys.push(Self::typing_key(user, *peer));
            keys.push(Self::typing_key(*peer, user));
            keys.push(format!("typingfwd:{user}:{peer}"));
        }
        for chat in chats {
            keys.push(format!("typingfwd:{user}:c{chat}"));
        }
        for key in keys {
            if let Err(e) = self.core.ephemeral.delete(&key).await {
                tracing::debug!(error = %e, "presence state of an erased account kept");
            }
        }
    }

    fn typing_key(from: UserId, to: UserId) -> String {
        format!("typing:{from}:{to}")
    }

    /// `typing_start` (`start`) or `typing_stop` from `from`; `chat_id` `None` in a DM.
    fn typing_frame(start: bool, from: UserId, chat_id: Option<i64>) -> Bytes {
        let t = Typing {
            user_id: from,
            chat_id,
            timestamp: Timestamp::now(),
        };
        frames::to_bytes(&if start {
            ServerFrame::TypingStart(t)
        } else {
            ServerFrame::TypingStop(t)
        })
    }

    async fn require_contact(&self, a: UserId, b: UserId) -> Result<()> {
        if a == b {
            return Err(Error::InvalidTarget);
        }
        let rel = self.core.store.relationship(a, b).await?;
        if rel.map(|r| r.state) == Some(ContactState::Accepted) {
            Ok(())
        } else {
            Err(Error::NotAContact)
        }
    }

    /// `typing_start` in the DM with `to`: at most one forwarded per 3 s.
    pub(crate) async fn typing_start(&self, auth: &Authenticated, to: UserId) -> Result<()> {
        self.require_contact(auth.user, to).await?;
        let ttl = Duration::from_secs(self.core.config.realtime.typing_ttl.max(1));
        self.core
            .ephemeral
            .set(&Self::typing_key(auth.user, to), b"1", ttl)
            .await?;
        if self.typed_here.len() >= 100_000 {
            self.typed_here.retain(|_, at| at.elapsed() <= ttl);
        }
        self.typed_here
            .insert((auth.user, to), std::time::Instant::now());
        let n = self
            .core
            .ephemeral
            .incr(
                &format!("typingfwd:{}:{to}", auth.user),
                TYPING_FORWARD_EVERY,
            )
            .await?;
        if n == 1 {
            self.core
                .send_ephemeral(to, &Self::typing_frame(true, auth.user, None), None);
        }
        Ok(())
    }

    /// `typing_stop` in the DM with `to`.
    pub(crate) async fn typing_stop(&self, auth: &Authenticated, to: UserId) -> Result<()> {
        self.require_contact(auth.user, to).await?;
        self.stop(auth.user, to).await;
        Ok(())
    }

    async fn stop(&self, from: UserId, to: UserId) {
        let _ = self
            .core
            .ephemeral
            .delete(&Self::typing_key(from, to))
            .await;
        let _ = self
            .core
            .ephemeral
            .delete(&format!("typingfwd:{from}:{to}"))
            .await;
        self.core
            .send_ephemeral(to, &Self::typing_frame(false, from, None), None);
    }

    /// A message in the conversation ends the sender's typing there.
    pub(crate) async fn stop_typing_on_message(&self, from: UserId, to: UserId) {
        let ttl = std::time::Duration::from_secs(self.core.config.realtime.typing_ttl.max(1));
        let recent = self
            .typed_here
            .remove(&(from, to))
            .is_some_and(|(_, at)| at.elapsed() <= ttl);
        if recent && self.is_typing(from, to).await {
            self.stop(from, to).await;
        }
    }

    /// The last socket of `from` closed: end its typing in these conversations.
    pub(crate) async fn stop_typing_all(&self, from: UserId, peers: &[UserId]) {
        for to in peers {
            self.stop_typing_on_message(from, *to).await;
        }
    }

    /// True while `from` is typing in the DM with `to`.
    pub(crate) async fn is_typing(&self, from: UserId, to: UserId) -> bool {
        matches!(
            self.core.ephemeral.get(&Self::typing_key(from, to)).await,
            Ok(Some(_))
        )
    }

    /// `pong.contacts_status`: every accepted contact's live status and typing flag, by uid.
    /// Two batched reads whatever the number of contacts: the invisible flags of those
    /// connected, and every typing flag.
    pub(crate) async fn contacts_status(
        &self,
        user: UserId,
    ) -> Result<BTreeMap<UserId, ContactStatus>> {
        let contacts = self.contacts(user).await?;
        let live: Vec<Option<bool>> = contacts.iter().map(|c| self.core.all_away(*c)).collect();
        let connected: Vec<UserId> = contacts
            .iter()
            .zip(&live)
            .filter(|(_, l)| l.is_some())
            .map(|(c, _)| *c)
            .collect();
        let invisible = self.invisible_among(&connected).await;
        let keys: Vec<String> = contacts
            .iter()
            .map(|c| Self::typing_key(*c, user))
            .collect();
        // Typing is best-effort: an unreachable ephemeral backend shows nobody typing.
        let typing = self
            .core
            .ephemeral
            .get_many(&keys)
            .await
            .unwrap_or_default();
        let mut out = BTreeMap::new();
        for (i, (c, l)) in contacts.iter().zip(live).enumerate() {
            let status = if invisible.contains(c) {
                "offline"
            } else {
                Self::live_status(l)
            };
            let s = ContactStatus {
                status: status.to_owned(),
                typing: matches!(typing.get(i), Some(Some(_))),
            };
            out.insert(*c, s);
        }
        Ok(out)
    }

    /// `/statuses` form of one user's status as seen by `viewer`.
    pub(crate) async fn status_for(&self, viewer: UserId, user: UserId) -> Result<ContactStatus> {
        let rel = self.core.store.relationship(viewer, user).await?;
        if viewer == user || rel.map(|r| r.state) != Some(ContactState::Accepted) {
            return Ok(ContactStatus {
                status: "not_subscribed".into(),
                typing: false,
            });
        }
        let live = self.status_of(user).await;
        let status = if live != "offline" {
            live.to_owned()
        } else {
            match self.last_seen(user).await {
                Some(t) if Timestamp::now().millis() - t.millis() <= 5 * 60_000 => {
                    format!("was at {t}")
                }
                Some(t) if Timestamp::now().millis() - t.millis() <= 30 * 86_400_000 => {
                    "inactive".into()
                }
                _ => "closed".into(),
            }
        };
        Ok(ContactStatus {
            status,
            typing: self.is_typing(user, viewer).await,
        })
    }
}
