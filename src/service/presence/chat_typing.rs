//! Which group chat a user is typing in (docs/protocol.md §4.5 `POST /status/typing`, `/status/me`,
//! `/status/contacts`): one ephemeral record per user, `typingchat:{uid}` → the chat id, kept
//! `TYPING_TTL` after the last `typing_start` (WebSocket or HTTP), shared by every node through
//! the [`Ephemeral`](crate::ephemeral::Ephemeral) backend (blinded and sealed outside the
//! process). A user types in one chat at a time: starting in another moves the record there and
//! ends the typing in the first; a message in the chat ends it, and so does the user's last
//! socket closing.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use super::{PresenceService, TYPING_FORWARD_EVERY};
use crate::model::{ChatKind, Timestamp, UserId};
use crate::service::{Authenticated, Error, Result};

/// One contact as `GET /status/contacts` shows it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ContactPresence {
    /// The contact.
    pub user_id: UserId,
    /// `online` | `away` | `offline`.
    pub status: &'static str,
    /// When the contact was last online, if known.
    pub last_seen: Option<Timestamp>,
    /// The group chat the contact is typing in, when the caller is a member of it too.
    pub is_typing_in_chat: Option<i64>,
}

impl PresenceService {
    pub(super) fn typing_chat_key(user: UserId) -> String {
        format!("typingchat:{user}")
    }

    fn typing_ttl(&self) -> Duration {
        Duration::from_secs(self.core.config.realtime.typing_ttl.max(1))
    }

    /// `typing_start` / `typing_stop` in a group chat (WebSocket `chat_id`, or HTTP): member
    /// required (`NotAMember`, also for unknown chats), channels refused (`Forbidden`).
    /// Forwarded to the other members' online devices (starts coalesced per 3 s); never stored
    /// durably. A start records the chat as the one `auth.user` types in; a stop clears it.
    pub(crate) async fn typing_chat(
        &self,
        auth: &Authenticated,
        chat_id: i64,
        start: bool,
    ) -> Result<()> {
        let user = auth.user;
        let store = &self.core.store;
        if store.member(chat_id, user).await?.is_none() {
            return Err(Error::NotAMember);
        }
        match self.core.chat_kind(chat_id).await? {
            Some(ChatKind::Chat) => {}
            Some(_) => return Err(Error::Forbidden),
            None => return Err(Error::NotAMember),
        }
        let eph = &self.core.ephemeral;
        let key = Self::typing_chat_key(user);
        let value = chat_id.to_string();
        if !start {
            // Only the record of this chat: typing elsewhere since then goes on.
            self.typed_chat_here
                .remove_if(&user, |_, (chat, _)| *chat == chat_id);
            eph.delete_if(&key, value.as_bytes()).await?;
            return self.forward_chat_typing(user, chat_id, false).await;
        }
        let fwd = format!("typingfwd:{user}:c{chat_id}");
        let forward = eph.incr(&fwd, TYPING_FORWARD_EVERY).await? == 1;
        // Read the record before replacing it only when forwarding (at most once per 3 s):
        // a user who moved to this chat stops typing in the previous one.
        let previous = if forward {
            self.typing_in_raw(user).await?
        } else {
            None
        };
        eph.set(&key, value.as_bytes(), self.typing_ttl()).await?;
        if self.typed_chat_here.len() >= 100_000 {
            let ttl = self.typing_ttl();
            self.typed_chat_here
                .retain(|_, (_, at)| at.elapsed() <= ttl);
        }
        self.typed_chat_here
            .insert(user, (chat_id, std::time::Instant::now()));
        if let Some(before) = previous.filter(|c| *c != chat_id) {
            let _ = eph.delete(&format!("typingfwd:{user}:c{before}")).await;
            if self.core.chat_member_ids(before).await?.contains(&user) {
                self.send_chat_typing(user, before, false).await?;
            }
        }
        if forward {
            self.send_chat_typing(user, chat_id, true).await?;
        }
        Ok(())
    }

    /// Ends the coalescing window and sends `typing_stop` (or `typing_start`) to the other
    /// members.
    async fn forward_chat_typing(&self, user: UserId, chat_id: i64, start: bool) -> Result<()> {
        if !start {
            self.core
                .ephemeral
                .delete(&format!("typingfwd:{user}:c{chat_id}"))
                .await?;
        }
        self.send_chat_typing(user, chat_id, start).await
    }

    async fn send_chat_typing(&self, user: UserId, chat_id: i64, start: bool) -> Result<()> {
        let frame = Self::typing_frame(start, user, Some(chat_id));
        for member in self.core.chat_member_ids(chat_id).await?.iter() {
            if *member != user {
                self.core.send_ephemeral(*member, &frame, None);
            }
        }
        Ok(())
    }

    /// `POST /status/typing`: `Some(chat)` acts as `typing_start` in that chat; `None` as
    /// `typing_stop` in the chat the caller is typing in (nothing when none; when the caller
    /// has left that chat meanwhile, the record is dropped without a frame).
    pub(crate) async fn typing_http(
        &self,
        auth: &Authenticated,
        chat_id: Option<i64>,
    ) -> Result<()> {
        if let Some(chat) = chat_id {
            return self.typing_chat(auth, chat, true).await;
        }
        let Some(chat) = self.typing_in_raw(auth.user).await? else {
            return Ok(());
        };
        match self.typing_chat(auth, chat, false).await {
            Err(Error::NotAMember | Error::Forbidden) => {
                let key = Self::typing_chat_key(auth.user);
                self.core
                    .ephemeral
                    .delete_if(&key, chat.to_string().as_bytes())
                    .await?;
                Ok(())
            }
            other => other,
        }
    }

    /// A message of `from` in `chat_id` ends its typing there. Costs nothing unless `from`
    /// started typing in that chat through this node within `TYPING_TTL`; then the shared record
    /// is cleared only while it still names this chat, and only then `typing_stop` goes out.
    pub(crate) async fn stop_chat_typing_on_message(&self, from: UserId, chat_id: i64) {
        let ttl = self.typing_ttl();
        let recent = self
            .typed_chat_here
            .remove_if(&from, |_, (chat, at)| {
                *chat == chat_id && at.elapsed() <= ttl
            })
            .is_some();
        if !recent {
            return;
        }
        let key = Self::typing_chat_key(from);
        match self
            .core
            .ephemeral
            .delete_if(&key, chat_id.to_string().as_bytes())
            .await
        {
            Ok(true) => {
                if let Err(e) = self.forward_chat_typing(from, chat_id, false).await {
                    tracing::debug!(error = %e, "chat typing_stop on message not sent");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "chat typing state not cleared"),
        }
    }

    /// The last socket of `user` closed: end its typing in the chat it types in, if any.
    /// Best effort: an unreachable ephemeral backend lets the record expire.
    pub(crate) async fn stop_chat_typing_on_close(&self, user: UserId) {
        let chat = match self.typing_in_raw(user).await {
            Ok(Some(chat)) => chat,
            Ok(None) => return,
            Err(e) => return tracing::debug!(error = %e, "chat typing state unreadable"),
        };
        let key = Self::typing_chat_key(user);
        let _ = self
            .core
            .ephemeral
            .delete_if(&key, chat.to_string().as_bytes())
            .await;
        match self.core.chat_member_ids(chat).await {
            Ok(ids) if ids.contains(&user) => {
                if let Err(e) = self.forward_chat_typing(user, chat, false).await {
                    tracing::debug!(error = %e, "chat typing_stop at close not sent");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "chat typing_stop at close not sent"),
        }
    }

    /// The chat `user` is typing in according to the shared record (no membership check).
    async fn typing_in_raw(&self, user: UserId) -> Result<Option<i64>> {
        let raw = self
            .core
            .ephemeral
            .get(&Self::typing_chat_key(user))
            .await?;
        Ok(raw.as_deref().and_then(parse_chat))
    }

    /// Of `(typer, chat)` pairs, the chats in which both `typer` and `viewer` are members now
    /// (one cached member list per distinct chat), by typer.
    async fn visible_typing(
        &self,
        viewer: UserId,
        pairs: Vec<(UserId, i64)>,
    ) -> HashMap<UserId, i64> {
        let mut out = HashMap::new();
        let mut members: HashMap<i64, std::sync::Arc<[UserId]>> = HashMap::new();
        for (typer, chat) in pairs {
            let ids = match members.get(&chat) {
                Some(ids) => ids.clone(),
                None => match self.core.chat_member_ids(chat).await {
                    Ok(ids) => {
                        members.insert(chat, ids.clone());
                        ids
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "chat members unreadable; typing not shown");
                        continue;
                    }
                },
            };
            if ids.contains(&viewer) && ids.contains(&typer) {
                out.insert(typer, chat);
            }
        }
        out
    }

    /// `GET /status/me`'s `is_typing_in_chat`: the chat `user` is typing in while still a
    /// member. Best effort like every typing read: an unreachable backend shows none.
    pub(crate) async fn own_typing_chat(&self, user: UserId) -> Option<i64> {
        let chat = self.typing_in_raw(user).await.ok().flatten()?;
        self.visible_typing(user, vec![(user, chat)])
            .await
            .remove(&user)
    }

    /// `GET /status/contacts`: every accepted contact's status, last-seen time and the group
    /// chat it is typing in (only one the caller is a member of too). Batched: one store read
    /// of the invisible flags, one ephemeral read of every last-seen time and one of every
    /// typing record, whatever the number of contacts.
    pub(crate) async fn contacts_presence(&self, user: UserId) -> Result<Vec<ContactPresence>> {
        let contacts = self.contacts(user).await?;
        let live: Vec<Option<bool>> = contacts.iter().map(|c| self.core.all_away(*c)).collect();
        let connected: Vec<UserId> = contacts
            .iter()
            .zip(&live)
            .filter(|(_, l)| l.is_some())
            .map(|(c, _)| *c)
            .collect();
        let invisible = self.invisible_among(&connected).await;
        let eph = &self.core.ephemeral;
        let seen_keys: Vec<String> = contacts.iter().map(|c| format!("seen:{c}")).collect();
        let seen = eph.get_many(&seen_keys).await.unwrap_or_default();
        let typing_keys: Vec<String> = contacts.iter().map(|c| Self::typing_chat_key(*c)).collect();
        let typing = eph.get_many(&typing_keys).await.unwrap_or_default();
        let pairs: Vec<(UserId, i64)> = contacts
            .iter()
            .zip(typing.iter().map(|v| v.as_deref().and_then(parse_chat)))
            .filter_map(|(c, chat)| chat.map(|chat| (*c, chat)))
            .collect();
        let typing_in = self.visible_typing(user, pairs).await;
        Ok(contacts
            .iter()
            .zip(live)
            .enumerate()
            .map(|(i, (c, l))| ContactPresence {
                user_id: *c,
                status: if invisible.contains(c) {
                    "offline"
                } else {
                    Self::live_status(l)
                },
                last_seen: seen
                    .get(i)
                    .and_then(|v| v.as_deref())
                    .and_then(|sealed| self.open_last_seen(*c, sealed)),
                is_typing_in_chat: typing_in.get(c).copied(),
            })
            .collect())
    }
}

/// A chat id as the typing record holds it.
fn parse_chat(raw: &[u8]) -> Option<i64> {
    std::str::from_utf8(raw)
        .ok()?
        .parse()
        .ok()
        .filter(|c| *c >= 1)
}
