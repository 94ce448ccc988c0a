//! `GET /account/export`: everything the server holds about the caller, opened, as one JSON
//! document of bounded size (every list has a cap; a capped list says how many there are and
//! that it was cut). The caps and what is left out are documented in docs/accounts.md.

use std::time::Duration;

use serde::Serialize;

use super::AccountsService;
use crate::ephemeral::RateDecision;
use crate::model::{
    ChatKind, DeviceType, Message, MessageId, Session, SessionId, Timestamp, UserId,
};
use crate::push::PushSubscription;
use crate::service::auth::open_user;
use crate::service::{Authenticated, Error, Result};
use crate::store::{ContactState, HistoryPageSpec};

/// Sessions listed, newest first (revoked ones included).
pub(crate) const MAX_SESSIONS: u64 = 200;
/// Contact relationships listed (accepted first).
pub(crate) const MAX_CONTACTS: u64 = 2000;
/// Chats listed, newest first.
pub(crate) const MAX_CHATS: u64 = 500;
/// Conversations (DMs with accepted contacts, then chats) whose messages are counted.
pub(crate) const MAX_CONVERSATIONS: usize = 500;
/// Newest messages described per conversation.
pub(crate) const MESSAGES_PER_CONVERSATION: u64 = 20;
/// Messages described in all.
pub(crate) const MAX_MESSAGES: usize = 2000;
/// Stored payload bytes read per conversation to describe its newest messages (the payloads
/// are not exported; the newest message is read whatever its size).
pub(crate) const MESSAGE_BYTES_PER_CONVERSATION: u64 = 1 << 20;
/// Pending scheduled messages listed, due soonest first (without their payloads).
pub(crate) const MAX_SCHEDULED: u64 = 1000;
/// Exports one user may ask for per [`EXPORT_WINDOW`].
pub(crate) const EXPORTS_PER_WINDOW: u64 = 5;
/// The window of [`EXPORTS_PER_WINDOW`].
pub(crate) const EXPORT_WINDOW: Duration = Duration::from_secs(3600);

/// A list that may have been cut at its cap.
#[derive(Debug, Serialize)]
pub(crate) struct Capped<T> {
    /// How many there are in all.
    pub total: u64,
    /// True when `items` holds fewer than `total`.
    pub truncated: bool,
    /// The items.
    pub items: Vec<T>,
}

impl<T> Capped<T> {
    fn new(items: Vec<T>, total: u64) -> Self {
        Self {
            truncated: (items.len() as u64) < total,
            total,
            items,
        }
    }
}

/// The profile, opened.
#[derive(Debug, Serialize)]
pub(crate) struct ExportProfile {
    /// uid.
    pub unique_id: UserId,
    /// E.164 phone.
    pub phone: String,
    /// Display name.
    pub name: String,
    /// Nickname.
    pub nickname: String,
    /// Username or null.
    pub username: Option<String>,
    /// Bio or null.
    pub bio: Option<String>,
    /// E2E public key PEM or null.
    pub public_e2e_key: Option<String>,
    /// Registration time.
    pub created_at: Timestamp,
}

/// The avatar's metadata; the image itself is at `url`.
#[derive(Debug, Serialize)]
pub(crate) struct ExportAvatar {
    /// `image/png`, `image/jpeg` or `image/webp`.
    pub mime: String,
    /// Entity tag.
    pub etag: String,
    /// When it was stored.
    pub updated_at: Timestamp,
    /// `GET` it with the same token: `/avatar/<uid>`.
    pub url: String,
}

/// The secret-key backup as the client stored it (client-encrypted).
#[derive(Debug, Serialize)]
pub(crate) struct ExportSecretKey {
    /// The ciphertext as uploaded.
    pub ciphertext: String,
    /// When it was stored.
    pub updated_at: Timestamp,
}

/// One session, opened.
#[derive(Debug, Serialize)]
pub(crate) struct ExportSession {
    /// Session id.
    pub session_id: SessionId,
    /// Device id.
    pub device_id: String,
    /// Device kind.
    pub device_type: DeviceType,
    /// First 100 characters of the last login's User-Agent.
    pub device_name: String,
    /// Client IP of the last login.
    pub ip_address: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last activity.
    pub last_activity: Timestamp,
    /// False once revoked or logged out.
    pub active: bool,
    /// Expiry of the device's auto-login token, if one is issued (only its hash is kept).
    pub device_token_expires: Option<Timestamp>,
}

/// One push registration, opened.
#[derive(Debug, Serialize)]
pub(crate) struct ExportPush {
    /// The session (device) it belongs to.
    pub session_id: SessionId,
    /// The registration as the device sent it.
    pub subscription: PushSubscription,
}

/// One contact relationship.
#[derive(Debug, Serialize)]
pub(crate) struct ExportContact {
    /// The other user.
    pub unique_id: UserId,
    /// `accepted` or `pending`.
    pub state: &'static str,
    /// `outgoing` (the caller asked) or `incoming`.
    pub direction: &'static str,
    /// The requester's `secret` flag.
    pub secret: bool,
    /// When it was asked.
    pub requested_at: Timestamp,
}

/// One chat and the caller's place in it.
#[derive(Debug, Serialize)]
pub(crate) struct ExportChat {
    /// Chat id.
    pub chat_id: i64,
    /// `chat` or `channel`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Name.
    pub name: String,
    /// The caller's role.
    pub role: &'static str,
    /// When the caller joined.
    pub joined_at: Option<Timestamp>,
    /// The owner.
    pub owner_id: UserId,
    /// Creation time.
    pub created_at: Timestamp,
    /// Public.
    pub is_public: bool,
    /// The caller's read marker in the chat (`POST /status/read`), if any.
    pub last_read_message_id: Option<String>,
}

/// What the server holds about one message (its payload is client ciphertext, not included).
#[derive(Debug, Serialize)]
pub(crate) struct ExportMessage {
    /// Id.
    pub message_id: MessageId,
    /// Author.
    pub from: UserId,
    /// DM recipient.
    pub to: Option<UserId>,
    /// Chat.
    pub chat_id: Option<i64>,
    /// Sent at.
    pub ts: Timestamp,
    /// Last edit.
    pub edited_at: Option<Timestamp>,
    /// Deleted (payload erased).
    pub deleted: bool,
    /// Pinned.
    pub pinned: bool,
    /// Delivered to a device of the recipient (DMs).
    pub delivered: bool,
    /// Read (DMs).
    pub read: bool,
    /// Size of the stored payload in bytes.
    pub payload_bytes: usize,
    /// The caller's reaction, if any.
    pub my_reaction: Option<String>,
}

/// One conversation: how many messages the server holds, and the newest ones described.
#[derive(Debug, Serialize)]
pub(crate) struct ExportConversation {
    /// The DM peer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<UserId>,
    /// The chat.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<i64>,
    /// Messages stored in the conversation.
    pub message_count: u64,
    /// The newest ones, newest first.
    pub messages: Vec<ExportMessage>,
}

/// One pending scheduled message, described: its payload is the user's own ciphertext, read
/// with `GET /schedule`.
#[derive(Debug, Serialize)]
pub(crate) struct ExportScheduled {
    /// Its id.
    pub schedule_id: crate::store::ScheduleId,
    /// DM recipient.
    pub target_id: Option<UserId>,
    /// Chat.
    pub chat_id: Option<i64>,
    /// When it is due.
    pub when: Timestamp,
    /// When it was scheduled.
    pub created_at: Timestamp,
    /// Size of the stored payload in bytes.
    pub payload_bytes: usize,
}

/// `GET /account/export`.
#[derive(Debug, Serialize)]
pub(crate) struct AccountExport {
    /// When this document was made.
    pub exported_at: Timestamp,
    /// The profile.
    pub profile: ExportProfile,
    /// The avatar, if any.
    pub avatar: Option<ExportAvatar>,
    /// The stored settings (privacy choices) as a JSON object, if the user changed any.
    pub settings: Option<serde_json::Value>,
    /// The secret-key backup, if any.
    pub secret_key_backup: Option<ExportSecretKey>,
    /// Sessions, active and revoked, newest first.
    pub sessions: Capped<ExportSession>,
    /// Push registrations of the active sessions.
    pub push_registrations: Vec<ExportPush>,
    /// Contact relationships, accepted first.
    pub contacts: Capped<ExportContact>,
    /// Chats, newest first.
    pub chats: Capped<ExportChat>,
    /// Entries waiting in the queues of the caller's active devices.
    pub queued_entries: u64,
    /// Message metadata per conversation (DMs with accepted contacts, then chats).
    pub conversations: Capped<ExportConversation>,
    /// True when some conversation's `messages` were cut by the overall cap.
    pub messages_truncated: bool,
    /// Pending scheduled messages, due soonest first, without their payloads.
    pub scheduled_messages: Capped<ExportScheduled>,
}

impl AccountsService {
    /// `GET /account/export`: at most [`EXPORTS_PER_WINDOW`] per [`EXPORT_WINDOW`] per user.
    pub(crate) async fn export(&self, auth: &Authenticated) -> Result<AccountExport> {
        self.export_allowed(auth.user).await?;
        let core = &self.core;
        let store = &core.store;
        let me = auth.user;
        let row = me.to_string();
        let Some(user) = store.user(me).await? else {
            return Err(Error::InvalidToken);
        };
        let opened = open_user(core, &user)?;
        let profile = ExportProfile {
            unique_id: me,
            phone: opened.phone,
            name: opened.name,
            nickname: opened.nickname,
            username: opened.username,
            bio: opened.bio,
            public_e2e_key: opened.public_key,
            created_at: user.created_at,
        };
        let avatar = store.avatar(me).await?.map(|a| ExportAvatar {
            mime: a.mime,
            etag: a.etag,
            updated_at: a.updated_at,
            url: format!("/avatar/{me}"),
        });
        let settings = match store.settings(&[me]).await?.into_iter().next() {
            Some((_, sealed)) => {
                let plain = core.pii.open("user_settings", "settings", &row, &sealed)?;
                Some(serde_json::from_slice(&plain).map_err(|e| Error::Internal(e.to_string()))?)
            }
            None => None,
        };
        let secret_key_backup = match store.secret_key(me).await? {
            Some((sealed, at)) => Some(ExportSecretKey {
                ciphertext: core
                    .pii
                    .open_string("secret_keys", "ciphertext", &row, &sealed)?,
                updated_at: at,
            }),
            None => None,
        };
        let (ever, sessions_total) = store.sessions_ever(me, MAX_SESSIONS).await?;
        let sessions = ever
            .iter()
            .map(|s| self.export_session(s))
            .collect::<Result<Vec<_>>>()?;
        let mut push_registrations = Vec::new();
        for (session, sealed) in store.push_registrations(me).await? {
            let plain = core
                .pii
                .open("push", "subscription", &session.0.to_string(), &sealed)?;
            let subscription =
                serde_json::from_slice(&plain).map_err(|e| Error::Internal(e.to_string()))?;
            push_registrations.push(ExportPush {
                session_id: session,
                subscription,
            });
        }
        let (relations, total) = store.relationships_of(me, MAX_CONTACTS).await?;
        let contacts: Vec<ExportContact> = relations
            .iter()
            .map(|c| ExportContact {
                unique_id: if c.requester == me {
                    c.target
                } else {
                    c.requester
                },
                state: match c.state {
                    ContactState::Accepted => "accepted",
                    ContactState::Pending => "pending",
                },
                direction: if c.requester == me {
                    "outgoing"
                } else {
                    "incoming"
                },
                secret: c.secret,
                requested_at: c.requested_at,
            })
            .collect();
        let (rows, chats_total) = store.chats_of(me, 0, MAX_CHATS).await?;
        let ids: Vec<i64> = rows.iter().map(|(chat, _)| chat.id).collect();
        let mut markers: std::collections::HashMap<i64, String> = store
            .read_markers(me, &ids)
            .await?
            .into_iter()
            .map(|(chat, m)| (chat, m.message_id))
            .collect();
        let mut chats = Vec::with_capacity(rows.len());
        for (chat, role) in &rows {
            let name = core
                .pii
                .open_bound("chats", "name", &chat.id.to_string(), &chat.name)?;
            chats.push(ExportChat {
                chat_id: chat.id,
                kind: chat.kind.as_str(),
                name: String::from_utf8(name)
                    .map_err(|_| Error::from(crate::crypto::CryptoError::Open))?,
                role: role.as_str(),
                joined_at: store.member(chat.id, me).await?.map(|m| m.joined_at),
                owner_id: chat.owner,
                created_at: chat.created_at,
                is_public: chat.is_public,
                last_read_message_id: markers.remove(&chat.id),
            });
        }
        let active: Vec<SessionId> = store.sessions_of(me).await?.iter().map(|s| s.id).collect();
        let queued_entries = store.queued_entries(&active).await?;
        let peers: Vec<UserId> = contacts
            .iter()
            .filter(|c| c.state == "accepted")
            .map(|c| c.unique_id)
            .collect();
        let chat_ids: Vec<(i64, ChatKind)> = rows.iter().map(|(c, _)| (c.id, c.kind)).collect();
        let (conversations, messages_truncated) = self.conversations(me, &peers, &chat_ids).await?;
        let (pending, scheduled_total) = store.schedules_of(me, 0, MAX_SCHEDULED).await?;
        let scheduled: Vec<ExportScheduled> = pending
            .into_iter()
            .map(|m| ExportScheduled {
                schedule_id: m.id,
                target_id: m.target,
                chat_id: m.chat_id,
                when: m.due_at,
                created_at: m.created_at,
                payload_bytes: m.payload.len(),
            })
            .collect();
        tracing::info!(target: "melo::audit", event = "account_exported", user_id = %me, session_id = %auth.session, "account exported");
        Ok(AccountExport {
            exported_at: Timestamp::now(),
            profile,
            avatar,
            settings,
            secret_key_backup,
            sessions: Capped::new(sessions, sessions_total),
            push_registrations,
            contacts: Capped::new(contacts, total),
            chats: Capped::new(chats, chats_total),
            queued_entries,
            conversations,
            messages_truncated,
            scheduled_messages: Capped::new(scheduled, scheduled_total),
        })
    }

    fn export_session(&self, s: &Session) -> Result<ExportSession> {
        let row = format!("{}:{}", s.user, s.device_id);
        let open = |col: &str, v: &[u8]| self.core.pii.open_string("sessions", col, &row, v);
        Ok(ExportSession {
            session_id: s.id,
            device_id: s.device_id.to_string(),
            device_type: s.device_type,
            device_name: open("device_name", &s.device_name)?,
            ip_address: open("ip", &s.ip)?,
            created_at: s.created_at,
            last_activity: Timestamp::from_millis(
                open("last_activity", &s.last_activity)?
                    .parse::<i64>()
                    .unwrap_or(0),
            ),
            active: s.active,
            device_token_expires: s.device_token_hash.as_ref().and(s.device_token_expires),
        })
    }

    /// Counts and the newest messages of each conversation, within the caps.
    async fn conversations(
        &self,
        me: UserId,
        peers: &[UserId],
        chats: &[(i64, ChatKind)],
    ) -> Result<(Capped<ExportConversation>, bool)> {
        let store = &self.core.store;
        let total = (peers.len() + chats.len()) as u64;
        let mut budget = MAX_MESSAGES;
        let mut cut = false;
        let mut out = Vec::new();
        let targets = peers
            .iter()
            .map(|p| (Some(*p), None))
            .chain(chats.iter().map(|(c, _)| (None, Some(*c))))
            .take(MAX_CONVERSATIONS);
        for (peer, chat) in targets {
            let take = MESSAGES_PER_CONVERSATION.min(budget as u64);
            let spec = HistoryPageSpec {
                skip: 0,
                take,
                max_bytes: MESSAGE_BYTES_PER_CONVERSATION,
            };
            let (count, rows) = match (peer, chat) {
                (Some(p), _) => {
                    let count = store.dm_count(me, p).await?;
                    let rows = if take > 0 {
                        store.dm_history(me, p, None, spec).await?.messages
                    } else {
                        Vec::new()
                    };
                    (count, rows)
                }
                (None, Some(c)) => {
                    let count = store.chat_count(c).await?;
                    let rows = if take > 0 {
                        store.chat_history(c, None, spec).await?.messages
                    } else {
                        Vec::new()
                    };
                    (count, rows)
                }
                (None, None) => continue,
            };
            let wanted = count.min(MESSAGES_PER_CONVERSATION) as usize;
            cut |= rows.len() < wanted;
            budget = budget.saturating_sub(rows.len());
            out.push(ExportConversation {
                peer_id: peer,
                chat_id: chat,
                message_count: count,
                messages: rows.iter().map(|m| describe(m, me)).collect(),
            });
        }
        Ok((Capped::new(out, total), cut))
    }

    /// [`EXPORTS_PER_WINDOW`] per [`EXPORT_WINDOW`]; like the HTTP budget, fails open while
    /// the ephemeral backend is unreachable.
    async fn export_allowed(&self, user: UserId) -> Result<()> {
        let key = export_key(user);
        let decision = self
            .core
            .ephemeral
            .rate_limit(&key, EXPORTS_PER_WINDOW, EXPORT_WINDOW, EXPORT_WINDOW)
            .await;
        match decision {
            Ok(RateDecision::Limited { retry_after }) => Err(Error::RateLimited { retry_after }),
            Ok(RateDecision::Allowed) => Ok(()),
            Err(e) => {
                tracing::debug!(error = %e, "export limiter unavailable; export not counted");
                Ok(())
            }
        }
    }
}

/// The ephemeral key of `user`'s export budget.
pub(super) fn export_key(user: UserId) -> String {
    format!("export:{user}")
}

fn describe(m: &Message, me: UserId) -> ExportMessage {
    ExportMessage {
        message_id: m.id,
        from: m.from,
        to: m.to,
        chat_id: m.chat_id,
        ts: m.created_at,
        edited_at: m.edited_at,
        deleted: m.deleted,
        pinned: m.pinned,
        delivered: m.delivered,
        read: m.read,
        payload_bytes: m.payload.len(),
        my_reaction: m
            .reactions
            .iter()
            .find(|(_, users)| users.contains(&me))
            .map(|(emoji, _)| emoji.clone()),
    }
}
