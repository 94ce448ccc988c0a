//! Messages: send and history (docs/protocol.md §4.6, §5.3); receipts live in `receipts.rs`.

use std::future::Future;
use std::sync::Arc;

use super::cache::{ChatMessageMeta, RecentMessage};
use super::delivery::EntryMeta;
use super::frames::{self, RelayDelivery, ServerFrame};
pub(crate) use super::messages_history::{HistoryItem, HistoryPage, HistoryQuery};
use super::presence::PresenceService;
use super::{Authenticated, Core, Error, Result};
use crate::hooks::{Event, MessageTarget};
use crate::model::{ChatKind, ChatRole, SessionId};
use crate::model::{Message, MessageId, NewMessage, QueueTarget, StoreOutcome, Timestamp, UserId};
use crate::store::{ContactState, HistoryPageSpec, HistoryRows};

/// Largest payload, bytes.
pub(crate) const MAX_PAYLOAD: usize = 1024 * 1024;

/// Most payload bytes in one history response (docs/protocol.md §1.5).
pub(super) const HISTORY_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// A message to send (from `relay`, `chat_message` or `POST /messages/send`).
#[derive(Clone, Debug, Default)]
pub(crate) struct SendRequest {
    /// DM recipient.
    pub target: Option<UserId>,
    /// Chat.
    pub chat_id: Option<i64>,
    /// Opaque payload.
    pub payload: String,
    /// Idempotency key.
    pub client_id: Option<String>,
    /// Opaque signature.
    pub signature: Option<String>,
}

/// Result of a send.
#[derive(Clone, Debug)]
pub(crate) struct SendOutcome {
    /// The message id (the first one's, for a duplicate).
    pub message_id: MessageId,
    /// DM recipient.
    pub to: Option<UserId>,
    /// Chat.
    pub chat_id: Option<i64>,
    /// Server time of the send.
    pub ts: Timestamp,
    /// True when the `client_id` was already used by this device.
    pub duplicate: bool,
    /// Recipient users (chat members other than the sender; 1 for a DM).
    pub recipients: usize,
}

/// Whether an authorization counts against chat slow mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlowMode {
    /// The post happens now: slow mode applies and counts it.
    Apply,
    /// Nothing is posted now (a message scheduled for later): slow mode is not consulted.
    Skip,
}

/// Who receives an authorized send.
#[derive(Clone, Debug)]
pub(crate) struct Recipients {
    /// DM recipient.
    pub(crate) to: Option<UserId>,
    /// Chat.
    pub(crate) chat_id: Option<i64>,
    /// Recipient users (chat members other than the sender; the DM peer).
    pub(crate) users: Vec<UserId>,
    /// The chat's kind.
    pub(crate) chat_kind: Option<ChatKind>,
}

/// DMs and their delivery state.
#[derive(Clone, Debug)]
pub(crate) struct MessagesService {
    pub(super) core: Arc<Core>,
    delivery: super::DeliveryService,
    presence: PresenceService,
    push: super::push::PushService,
}

fn valid_client_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

impl SendRequest {
    /// The rules that need no state: `client_id`, the payload's size and its escaped size.
    pub(crate) fn check(&self) -> Result<()> {
        if let Some(cid) = &self.client_id {
            if !valid_client_id(cid) {
                return Err(Error::field(
                    "client_id",
                    "must be 1-64 of A-Z a-z 0-9 . _ : -",
                ));
            }
        }
        if self.payload.is_empty() || self.payload.len() > MAX_PAYLOAD {
            return Err(Error::field("payload", "must be 1 byte to 1 MiB"));
        }
        if !frames::fits_frame(&self.payload, self.signature.as_deref()) {
            return Err(Error::field(
                "payload",
                "too long once JSON-escaped: a delivered frame would pass 2 MiB",
            ));
        }
        Ok(())
    }
}

impl MessagesService {
    pub(crate) fn new(
        core: Arc<Core>,
        delivery: super::DeliveryService,
        presence: PresenceService,
        push: super::push::PushService,
    ) -> Self {
        Self {
            core,
            delivery,
            presence,
            push,
        }
    }

    /// Authorizes, stores durably (message + one queue entry per recipient device and per other
    /// device of the sender), then delivers live. `session` is the sending device.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn send<'a>(
        &'a self,
        auth: &'a Authenticated,
        req: SendRequest,
    ) -> impl Future<Output = Result<SendOutcome>> + Send + 'a {
        async move {
            req.check()?;
            let to = self
                .authorize(auth.user, req.target, req.chat_id, SlowMode::Apply)
                .await?;
            self.deliver(auth, req, to, false).await
        }
    }

    /// The authorization of a send by `user` (the rules of `relay`, `chat_message` and
    /// `POST /messages/send`): a DM needs an accepted contact other than the sender, a chat post
    /// membership and the channel rule, and with [`SlowMode::Apply`] counts against slow mode.
    /// Returns who receives it.
    pub(crate) async fn authorize(
        &self,
        user: UserId,
        target: Option<UserId>,
        chat_id: Option<i64>,
        slow_mode: SlowMode,
    ) -> Result<Recipients> {
        match (target, chat_id) {
            (Some(target), None) => {
                if target == user {
                    return Err(Error::InvalidTarget);
                }
                if !self.core.are_contacts(user, target).await? {
                    return Err(Error::NotAContact);
                }
                Ok(Recipients {
                    to: Some(target),
                    chat_id: None,
                    users: vec![target],
                    chat_kind: None,
                })
            }
            (None, Some(chat)) => {
                let (members, kind) = self.authorize_chat_post(user, chat, slow_mode).await?;
                let others = members.iter().copied().filter(|u| *u != user);
                Ok(Recipients {
                    to: None,
                    chat_id: Some(chat),
                    users: others.collect(),
                    chat_kind: Some(kind),
                })
            }
            _ => Err(Error::field(
                "target_id",
                "exactly one of target_id and chat_id is required",
            )),
        }
    }

    /// Stores and delivers an authorized send (see [`Self::send`]). With `copy_to_sender` the
    /// sending device gets a `self` copy too (a scheduled message: the device did not send it
    /// at this moment).
    pub(crate) async fn deliver(
        &self,
        auth: &Authenticated,
        req: SendRequest,
        authorized: Recipients,
        copy_to_sender: bool,
    ) -> Result<SendOutcome> {
        let Recipients {
            to,
            chat_id,
            users: recipients,
            chat_kind,
        } = authorized;
        let mut targets: Vec<QueueTarget> = Vec::new();
        for user in &recipients {
            targets.extend(
                self.core
                    .session_ids(*user)
                    .await?
                    .iter()
                    .map(|s| QueueTarget {
                        session: *s,
                        user: *user,
                        self_copy: false,
                    }),
            );
        }
        targets.extend(
            self.core
                .session_ids(auth.user)
                .await?
                .iter()
                .filter(|s| copy_to_sender || **s != auth.session)
                .map(|s| QueueTarget {
                    session: *s,
                    user: auth.user,
                    self_copy: true,
                }),
        );
        let message = Message {
            id: MessageId::new(),
            from: auth.user,
            to,
            chat_id,
            payload: req.payload,
            signature: req.signature,
            created_at: Timestamp::now(),
            delivered: false,
            read: false,
            edited_at: None,
            deleted: false,
            pinned: false,
            reactions: Default::default(),
        };
        let new = NewMessage {
            message,
            sender_session: auth.session,
            client_id: req.client_id,
        };
        let seqs = match self.core.store.store_message(&new, &targets).await? {
            StoreOutcome::Duplicate(id) => {
                let ts = self
                    .core
                    .store
                    .message(id)
                    .await?
                    .map_or(new.message.created_at, |m| m.created_at);
                return Ok(SendOutcome {
                    message_id: id,
                    to,
                    chat_id,
                    ts,
                    duplicate: true,
                    recipients: recipients.len(),
                });
            }
            StoreOutcome::Stored(seqs) => seqs,
        };
        let m = &new.message;
        self.core.metrics.message_stored(chat_id.is_some());
        let stored_to = chat_id
            .map(MessageTarget::Chat)
            .or(to.map(MessageTarget::User));
        if let Some(to) = stored_to {
            self.core.hooks.emit(|| Event::MessageStored {
                message: m.id,
                from: m.from,
                to,
            });
        }
        let recent = match (chat_id, chat_kind) {
            (Some(chat_id), Some(kind)) => Some(RecentMessage::Chat(ChatMessageMeta {
                from: m.from,
                chat_id,
                kind,
            })),
            _ if to.is_some() => Some(RecentMessage::Dm { from: m.from }),
            _ => None,
        };
        if let Some(recent) = recent {
            self.core.remember_message(m.id, recent);
        }
        let base = frames::to_bytes(&ServerFrame::RelayDelivery(RelayDelivery::of(m, false)));
        let self_base = targets
            .iter()
            .any(|t| t.self_copy)
            .then(|| frames::to_bytes(&ServerFrame::RelayDelivery(RelayDelivery::of(m, true))));
        // Offline devices, grouped by user (targets are in user order).
        let mut offline: Vec<(UserId, Vec<SessionId>)> = Vec::new();
        let mut to_others = Vec::with_capacity(targets.len());
        let mut to_self = Vec::new();
        for (t, seq) in targets.iter().zip(seqs) {
            if !t.self_copy && !self.core.has_socket(t.user, t.session) {
                match offline.last_mut() {
                    Some((u, list)) if *u == t.user => list.push(t.session),
                    _ => offline.push((t.user, vec![t.session])),
                }
            }
            let list = if t.self_copy && self_base.is_some() {
                &mut to_self
            } else {
                &mut to_others
            };
            list.push((t.user, t.session, seq));
        }
        let meta = EntryMeta {
            message: Some(m.id),
            receipt: true,
        };
        self.delivery.fan_out(&base, meta, to_others);
        if let Some(sb) = &self_base {
            let meta = EntryMeta {
                receipt: false,
                ..meta
            };
            self.delivery.fan_out(sb, meta, to_self);
        }
        for (user, sessions) in offline {
            let event = crate::push::PushEvent::Message {
                message_id: m.id,
                chat_id,
            };
            self.push.notify(user, &sessions, event, false);
        }
        if auth.user == UserId::SYSTEM {
            // The server does not type.
        } else if let Some(target) = to {
            self.presence
                .stop_typing_on_message(auth.user, target)
                .await;
        } else if let Some(chat) = chat_id {
            self.presence
                .stop_chat_typing_on_message(auth.user, chat)
                .await;
        }
        Ok(SendOutcome {
            message_id: m.id,
            to,
            chat_id,
            ts: m.created_at,
            duplicate: false,
            recipients: recipients.len(),
        })
    }

    /// A chat post by `auth` is allowed: membership, the channel rule (owner and admins post),
    /// slow mode for plain members (counted from this post). Returns every member and the kind.
    async fn authorize_chat_post(
        &self,
        user: UserId,
        chat_id: i64,
        slow_mode: SlowMode,
    ) -> Result<(std::sync::Arc<[UserId]>, ChatKind)> {
        let store = &self.core.store;
        let Some(me) = store.member(chat_id, user).await? else {
            return Err(Error::NotAMember);
        };
        let Some(chat) = store.chat(chat_id).await? else {
            return Err(Error::NotAMember);
        };
        self.core.remember_chat_kind(chat_id, chat.kind);
        if me.role == ChatRole::Member {
            if chat.kind == ChatKind::Channel {
                return Err(Error::Forbidden);
            }
            if chat.slow_mode_secs > 0 && slow_mode == SlowMode::Apply {
                let window = std::time::Duration::from_secs(u64::from(chat.slow_mode_secs));
                let until = Timestamp::now().millis() + window.as_millis() as i64;
                let key = format!("slow:{chat_id}:{user}");
                let eph = &self.core.ephemeral;
                if !eph
                    .set_if_absent(&key, until.to_string().as_bytes(), window)
                    .await?
                {
                    let left_ms = match eph.get(&key).await? {
                        Some(v) => String::from_utf8_lossy(&v)
                            .parse::<i64>()
                            .map_or(1000, |u| u - Timestamp::now().millis()),
                        None => 1000,
                    };
                    let retry_after = (left_ms.max(1) as u64).div_ceil(1000).max(1);
                    self.core.metrics.limited(crate::metrics::Limit::SlowMode);
                    return Err(Error::SlowMode { retry_after });
                }
            }
        }
        Ok((self.core.chat_member_ids(chat_id).await?, chat.kind))
    }

    /// DM history of the caller with `peer` (no contact required; unknown uids are empty).
    pub(crate) async fn dm_history(
        &self,
        auth: &Authenticated,
        peer: UserId,
        q: HistoryQuery,
    ) -> Result<HistoryPage> {
        let store = &self.core.store;
        let total = store.dm_count(auth.user, peer).await?;
        self.history_page(auth, q, total, |before, page| async move {
            Ok(store.dm_history(auth.user, peer, before, page).await?)
        })
        .await
    }

    /// Chat history: members only (`not_a_member`, also for unknown chats).
    pub(crate) async fn chat_history(
        &self,
        auth: &Authenticated,
        chat_id: i64,
        q: HistoryQuery,
    ) -> Result<HistoryPage> {
        let store = &self.core.store;
        if store.member(chat_id, auth.user).await?.is_none() {
            return Err(Error::NotAMember);
        }
        let total = store.chat_count(chat_id).await?;
        self.history_page(auth, q, total, |before, page| async move {
            Ok(store.chat_history(chat_id, before, page).await?)
        })
        .await
    }

    /// One page of a conversation; `fetch(before, page)` reads newest first, at most
    /// [`HISTORY_MAX_BYTES`] of payloads: a page cut by size has `has_more`.
    async fn history_page<F, Fut>(
        &self,
        auth: &Authenticated,
        q: HistoryQuery,
        total: u64,
        fetch: F,
    ) -> Result<HistoryPage>
    where
        F: Fn(Option<MessageId>, HistoryPageSpec) -> Fut,
        Fut: Future<Output = Result<HistoryRows>>,
    {
        let spec = |skip, take| HistoryPageSpec {
            skip,
            take,
            max_bytes: HISTORY_MAX_BYTES,
        };
        let (mut msgs, page, per_page, pages, has_more) = match q {
            HistoryQuery::Page { page, per_page } => {
                let skip = (page - 1).saturating_mul(per_page);
                let rows = fetch(None, spec(skip, per_page)).await?;
                let pages = total.div_ceil(per_page);
                let more = rows.cut || total > skip.saturating_add(per_page);
                (rows.messages, Some(page), per_page, Some(pages), more)
            }
            HistoryQuery::Cursor { before, limit } => {
                let rows = fetch(before, spec(0, limit + 1)).await?;
                let mut msgs = rows.messages;
                let more = rows.cut || msgs.len() as u64 > limit;
                msgs.truncate(limit as usize);
                (msgs, None, limit, None, more)
            }
        };
        msgs.reverse();
        let next_before = if has_more {
            msgs.first().map(|m| m.id)
        } else {
            None
        };
        let (messages, items) = msgs
            .into_iter()
            .map(|m| {
                // Delivery status only on DMs the caller sent.
                let status = (m.from == auth.user && m.chat_id.is_none()).then_some(if m.read {
                    "read"
                } else if m.delivered {
                    "delivered"
                } else {
                    "queued"
                });
                let item = HistoryItem {
                    message_id: m.id,
                    from: m.from,
                    to: m.to,
                    chat_id: m.chat_id,
                    ts: m.created_at,
                    edited_at: m.edited_at,
                    deleted: m.deleted,
                    pinned: m.pinned,
                    reactions: m.reactions,
                    status,
                };
                (m.payload, item)
            })
            .unzip();
        Ok(HistoryPage {
            messages,
            items,
            page,
            per_page,
            total,
            pages,
            has_more,
            next_before,
        })
    }

    /// Legacy `/history/{uid}`: like [`Self::dm_history`] but requires a current accepted contact.
    pub(crate) async fn legacy_history(
        &self,
        auth: &Authenticated,
        peer: UserId,
        q: HistoryQuery,
    ) -> Result<HistoryPage> {
        let rel = self.core.store.relationship(auth.user, peer).await?;
        if rel.map(|r| r.state) != Some(ContactState::Accepted) {
            return Err(Error::NotAContact);
        }
        self.dm_history(auth, peer, q).await
    }
}
