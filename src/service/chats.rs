//! Group chats, channels, members and invites (docs/protocol.md §4.7). Names and invite codes are sealed
//! at rest; codes are found through keyed blind indexes.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde::Serialize;

use super::frames::{self, ChatMemberEvent, ServerFrame};
use super::{Authenticated, Core, Error, Result};
use crate::ephemeral::RateDecision;
use crate::model::{ChatKind, ChatMember, ChatRecord, ChatRole, InviteRecord, Timestamp, UserId};
use crate::store::StoreError;

mod erased;
mod read;

/// Characters of invite codes (URL-safe).
const CODE_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
/// Invite code length (docs/protocol.md §4.7: 14 chars, 84 random bits).
const CODE_LEN: usize = 14;
/// Joins plus leaves one user may make in one chat per [`MEMBERSHIP_WINDOW`].
const MEMBERSHIP_CHANGES: u64 = 10;
const MEMBERSHIP_WINDOW: Duration = Duration::from_secs(3600);

/// One chat as `GET /chats/list` shows it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ChatView {
    /// Chat id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// `chat` or `channel`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Creation time.
    pub created_at: Timestamp,
    /// The owner.
    pub owner_id: UserId,
    /// Public (joinable by its permanent code).
    pub is_public: bool,
    /// The permanent code, only while public.
    pub invite_code: Option<String>,
    /// Slow-mode interval.
    pub slow_mode_seconds: u32,
    /// The caller's role.
    pub role: &'static str,
    /// The caller's read marker in this chat (`POST /status/read`), if any.
    pub last_read_message_id: Option<String>,
}

/// One member as `GET /chats/members` shows it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct MemberView {
    /// The member.
    pub unique_id: UserId,
    /// Nickname.
    pub nickname: String,
    /// Role.
    pub role: &'static str,
    /// When they joined.
    pub joined_at: Timestamp,
    /// E2E public key, if any.
    pub public_e2e_key: Option<String>,
}

/// Chats and their membership.
#[derive(Clone, Debug)]
pub(crate) struct ChatsService {
    core: Arc<Core>,
    delivery: super::DeliveryService,
}

pub(crate) fn new_code() -> String {
    let mut rng = rand::thread_rng();
    (0..CODE_LEN)
        .map(|_| char::from(CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())]))
        .collect()
}

/// The field rules of `POST /chats/create`: the kind, and a 2–128 character name.
pub(crate) fn new_chat(name: &str, kind: &str) -> Result<ChatKind> {
    let kind: ChatKind = kind
        .parse()
        .map_err(|_| Error::field("type", "must be chat or channel"))?;
    let n = name.trim().chars().count();
    if !(2..=128).contains(&n) {
        return Err(Error::field("name", "must be 2 to 128 characters"));
    }
    Ok(kind)
}

/// True for a well-formed invite code.
pub(crate) fn valid_code(code: &str) -> bool {
    code.len() == CODE_LEN && code.bytes().all(|b| CODE_ALPHABET.contains(&b))
}

fn not_found_as_member(e: StoreError) -> Error {
    match e {
        StoreError::NotFound => Error::NotAMember,
        other => other.into(),
    }
}

impl ChatsService {
    pub(crate) fn new(core: Arc<Core>, delivery: super::DeliveryService) -> Self {
        Self { core, delivery }
    }

    /// Deletes expired invites (the periodic sweep); a failure is logged.
    pub(crate) async fn purge_expired_invites(&self) {
        if let Err(e) = self.core.store.purge_invites(Timestamp::now()).await {
            tracing::warn!(error = %e, "invite sweep failed");
        }
    }

    /// A chat's name and permanent code are sealed bound to the chat id, so they cannot be
    /// moved to another chat's row; values written before that was so still open.
    fn open_name(&self, chat: &ChatRecord) -> Result<String> {
        let plain = self
            .core
            .pii
            .open_bound("chats", "name", &chat.id.to_string(), &chat.name)?;
        utf8(plain)
    }

    fn open_code(&self, chat_id: i64, sealed: &[u8]) -> Result<String> {
        let plain =
            self.core
                .pii
                .open_bound("chats", "invite_code", &chat_id.to_string(), sealed)?;
        utf8(plain)
    }

    fn code_index(&self, code: &str) -> Vec<u8> {
        self.core.pii.blind_index("invite", code.as_bytes())
    }

    /// The chat whose permanent code is `code`, under the blind index of any data-key version.
    async fn chat_by_code(&self, code: &str) -> Result<Option<ChatRecord>> {
        let store = &self.core.store;
        self.core
            .find_by_blind_index("invite", code.as_bytes(), |index| async move {
                store.chat_by_code_index(&index).await
            })
            .await
    }

    /// The temporary invite `code`, under the blind index of any data-key version.
    async fn invite_by_code(&self, code: &str) -> Result<Option<InviteRecord>> {
        let store = &self.core.store;
        self.core
            .find_by_blind_index("invite", code.as_bytes(), |index| async move {
                store.invite(&index).await
            })
            .await
    }

    /// The chat and the caller's membership; `not_a_member` for unknown chats too.
    pub(crate) async fn membership(
        &self,
        user: UserId,
        chat_id: i64,
    ) -> Result<(ChatRecord, ChatMember)> {
        let store = &self.core.store;
        let Some(member) = store.member(chat_id, user).await? else {
            return Err(Error::NotAMember);
        };
        let Some(chat) = store.chat(chat_id).await? else {
            return Err(Error::NotAMember);
        };
        Ok((chat, member))
    }

    /// `POST /chats/create`.
    pub(crate) async fn create(&self, auth: &Authenticated, name: &str, kind: &str) -> Result<i64> {
        let kind = new_chat(name, kind)?;
        // The id is known only once the row exists: the name goes in sealed for no row, then
        // is sealed again bound to the id (a crash in between leaves the first, still readable,
        // and rebound by the next data-key rotation).
        let name = name.trim();
        let unbound = self.core.pii.seal_str("chats", "name", "", name)?;
        let store = &self.core.store;
        let id = store
            .create_chat(kind, &unbound, auth.user, Timestamp::now())
            .await?;
        let bound = self
            .core
            .pii
            .seal_str("chats", "name", &id.to_string(), name)?;
        store.set_chat_name(id, &bound).await?;
        Ok(id)
    }

    /// `GET /chats/list`: one page, newest first, and the total.
    pub(crate) async fn list(
        &self,
        auth: &Authenticated,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<ChatView>, u64)> {
        let (rows, total) = self.core.store.chats_of(auth.user, offset, limit).await?;
        let ids: Vec<i64> = rows.iter().map(|(chat, _)| chat.id).collect();
        let mut markers = self.markers_of(auth.user, &ids).await?;
        let mut out = Vec::with_capacity(rows.len());
        for (chat, role) in rows {
            let invite_code = match (&chat.invite_code, chat.is_public) {
                (Some(c), true) => Some(self.open_code(chat.id, c)?),
                _ => None,
            };
            out.push(ChatView {
                id: chat.id,
                name: self.open_name(&chat)?,
                kind: chat.kind.as_str(),
                created_at: chat.created_at,
                owner_id: chat.owner,
                is_public: chat.is_public,
                invite_code,
                slow_mode_seconds: chat.slow_mode_secs,
                role: role.as_str(),
                last_read_message_id: markers.remove(&chat.id),
            });
        }
        Ok((out, total))
    }

    /// `POST /chats/set_public`: owner only. Returns the permanent code while public.
    pub(crate) async fn set_public(
        &self,
        auth: &Authenticated,
        chat_id: i64,
        public: bool,
    ) -> Result<Option<String>> {
        let (_, me) = self.membership(auth.user, chat_id).await?;
        if me.role != ChatRole::Owner {
            return Err(Error::Forbidden);
        }
        let code = new_code();
        let sealed = self
            .core
            .pii
            .seal_str("chats", "invite_code", &chat_id.to_string(), &code)?;
        let index = self.code_index(&code);
        let new = public.then_some((sealed.as_slice(), index.as_slice()));
        let stored = self
            .core
            .store
            .set_public(chat_id, public, new)
            .await
            .map_err(not_found_as_member)?;
        match (public, stored) {
            (true, Some(c)) => Ok(Some(self.open_code(chat_id, &c)?)),
            _ => Ok(None),
        }
    }

    /// `POST /chats/set_slow_mode`: owner or admin.
    pub(crate) async fn set_slow_mode(
        &self,
        auth: &Authenticated,
        chat_id: i64,
        secs: u64,
    ) -> Result<u32> {
        let (_, me) = self.membership(auth.user, chat_id).await?;
        if me.role == ChatRole::Member {
            return Err(Error::Forbidden);
        }
        if secs > 86_400 {
            return Err(Error::field("seconds", "must be 0 to 86400"));
        }
        let secs = secs as u32;
        self.core.store.set_slow_mode(chat_id, secs).await?;
        Ok(secs)
    }

    /// `GET /chats/by_invite/{code}`: public chats only.
    pub(crate) async fn by_invite(&self, code: &str) -> Result<(i64, String, &'static str)> {
        if !valid_code(code) {
            return Err(Error::InviteInvalid);
        }
        match self.chat_by_code(code).await? {
            Some(chat) if chat.is_public => {
                Ok((chat.id, self.open_name(&chat)?, chat.kind.as_str()))
            }
            _ => Err(Error::InviteInvalid),
        }
    }

    /// `GET /chats/members`: members of a group; owner/admins only for a channel.
    pub(crate) async fn members(
        &self,
        auth: &Authenticated,
        chat_id: i64,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<MemberView>, u64)> {
        let (chat, me) = self.membership(auth.user, chat_id).await?;
        if chat.kind == ChatKind::Channel && me.role == ChatRole::Member {
            return Err(Error::Forbidden);
        }
        let (members, total) = self.core.store.members(chat_id, offset, limit).await?;
        let ids: Vec<UserId> = members.iter().map(|m| m.user).collect();
        let users = self.core.store.users(&ids).await?;
        let mut out = Vec::with_capacity(members.len());
        for m in members {
            let Some(u) = users.iter().find(|u| u.id == m.user) else {
                continue;
            };
            let row = u.id.to_string();
            let nickname = self
                .core
                .pii
                .open_string("users", "nickname", &row, &u.nickname)?;
            let public_e2e_key = match &u.public_key {
                Some(k) => Some(self.core.pii.open_string("users", "public_key", &row, k)?),
                None => None,
            };
            out.push(MemberView {
                unique_id: m.user,
                nickname,
                role: m.role.as_str(),
                joined_at: m.joined_at,
                public_e2e_key,
            });
        }
        Ok((out, total))
    }

    /// Queues `chat_member` for every member and the affected user; in a channel only for its
    /// owner, its admins and the affected user (docs/protocol.md §4.7: subscribers must not learn one
    /// another).
    async fn announce(
        &self,
        chat_id: i64,
        kind: ChatKind,
        user: UserId,
        action: &'static str,
        role: ChatRole,
        by: UserId,
    ) -> Result<()> {
        let frame = frames::to_bytes(&ServerFrame::ChatMember(ChatMemberEvent {
            chat_id,
            user_id: user,
            action,
            role: role.as_str(),
            by,
            ts: Timestamp::now(),
        }));
        let mut users = match kind {
            ChatKind::Chat => self.core.store.member_ids(chat_id).await?,
            ChatKind::Channel => self.core.store.chat_staff(chat_id).await?,
        };
        if !users.contains(&user) {
            users.push(user);
        }
        let targets: Vec<_> = users.into_iter().map(|u| (u, frame.clone())).collect();
        self.delivery.emit(&targets, None).await
    }

    /// `POST /chats/members/add`: owner/admin adds an accepted contact as `member`.
    pub(crate) async fn add_member(
        &self,
        auth: &Authenticated,
        chat_id: i64,
        user: UserId,
    ) -> Result<()> {
        let (_, me) = self.membership(auth.user, chat_id).await?;
        if me.role == ChatRole::Member {
            return Err(Error::Forbidden);
        }
        if user != auth.user && !self.core.are_contacts(auth.user, user).await? {
            return Err(Error::NotAContact);
        }
        self.join(chat_id, user, auth.user).await
    }

    async fn join(&self, chat_id: i64, user: UserId, by: UserId) -> Result<()> {
        let Some(chat) = self.core.store.chat(chat_id).await? else {
            return Err(Error::NotAMember);
        };
        let added = self
            .core
            .store
            .add_member(chat_id, user, ChatRole::Member, Timestamp::now())
            .await
            .map_err(not_found_as_member)?;
        if added {
            self.core.chat_members_changed(chat_id);
            self.announce(chat_id, chat.kind, user, "added", ChatRole::Member, by)
                .await?;
        }
        Ok(())
    }

    /// `POST /chats/members/remove`: the owner removes anyone but itself; an admin removes plain
    /// members. A non-member target is a no-op.
    pub(crate) async fn remove_member(
        &self,
        auth: &Authenticated,
        chat_id: i64,
        user: UserId,
    ) -> Result<()> {
        let (chat, me) = self.membership(auth.user, chat_id).await?;
        let Some(target) = self.core.store.member(chat_id, user).await? else {
            return if me.role == ChatRole::Member {
                Err(Error::Forbidden)
            } else {
                Ok(())
            };
        };
        let allowed = match me.role {
            ChatRole::Owner => target.role != ChatRole::Owner,
            ChatRole::Admin => target.role == ChatRole::Member,
            ChatRole::Member => false,
        };
        if !allowed {
            return Err(Error::Forbidden);
        }
        if self.core.store.remove_member(chat_id, user).await? {
            self.core.chat_members_changed(chat_id);
            self.announce(chat_id, chat.kind, user, "removed", target.role, auth.user)
                .await?;
        }
        Ok(())
    }

    /// `POST /chats/members/role`: owner only; the target is a member other than the owner.
    pub(crate) async fn set_role(
        &self,
        auth: &Authenticated,
        chat_id: i64,
        user: UserId,
        role: &str,
    ) -> Result<()> {
        let role = match role {
            "admin" => ChatRole::Admin,
            "member" => ChatRole::Member,
            _ => return Err(Error::field("role", "must be admin or member")),
        };
        let (chat, me) = self.membership(auth.user, chat_id).await?;
        if me.role != ChatRole::Owner {
            return Err(Error::Forbidden);
        }
        let Some(target) = self.core.store.member(chat_id, user).await? else {
            return Err(Error::NotAMember);
        };
        if target.role == ChatRole::Owner {
            return Err(Error::Forbidden);
        }
        if target.role != role && self.core.store.set_role(chat_id, user, role).await? {
            self.announce(chat_id, chat.kind, user, "role_changed", role, auth.user)
                .await?;
        }
        Ok(())
    }

    /// `POST /chats/leave`.
    pub(crate) async fn leave(&self, auth: &Authenticated, chat_id: i64) -> Result<()> {
        let (chat, me) = self.membership(auth.user, chat_id).await?;
        if me.role == ChatRole::Owner {
            return Err(Error::OwnerCannotLeave);
        }
        self.membership_change_allowed(chat_id, auth.user).await?;
        if self.core.store.remove_member(chat_id, auth.user).await? {
            self.core.chat_members_changed(chat_id);
            self.announce(chat_id, chat.kind, auth.user, "left", me.role, auth.user)
                .await?;
        }
        Ok(())
    }

    /// Bounds how often one user joins or leaves one chat by themself
    /// ([`MEMBERSHIP_CHANGES`] per [`MEMBERSHIP_WINDOW`]): each step writes a `chat_member`
    /// event to queues, so a join/leave loop would flood offline members' queues.
    async fn membership_change_allowed(&self, chat_id: i64, user: UserId) -> Result<()> {
        let key = format!("joinleave:{chat_id}:{user}");
        let decision = self
            .core
            .ephemeral
            .rate_limit(
                &key,
                MEMBERSHIP_CHANGES,
                MEMBERSHIP_WINDOW,
                MEMBERSHIP_WINDOW,
            )
            .await;
        match decision {
            Ok(RateDecision::Limited { retry_after }) => Err(Error::RateLimited { retry_after }),
            Ok(RateDecision::Allowed) => Ok(()),
            // Like the HTTP budget, fails open while the ephemeral backend is unreachable.
            Err(e) => {
                tracing::debug!(error = %e, "membership limiter unavailable; change not counted");
                Ok(())
            }
        }
    }

    /// `POST /invites/create`: owner/admin; a multi-use code valid `ttl_minutes`.
    pub(crate) async fn create_invite(
        &self,
        auth: &Authenticated,
        chat_id: i64,
        ttl_minutes: u64,
    ) -> Result<(String, u64)> {
        if !(1..=10_080).contains(&ttl_minutes) {
            return Err(Error::field("ttl_minutes", "must be 1 to 10080"));
        }
        let (_, me) = self.membership(auth.user, chat_id).await?;
        if me.role == ChatRole::Member {
            return Err(Error::Forbidden);
        }
        let ttl = Duration::from_secs(ttl_minutes * 60);
        for _ in 0..3 {
            let code = new_code();
            let invite = InviteRecord {
                chat_id,
                code: self
                    .core
                    .pii
                    .seal_str("invites", "code", &chat_id.to_string(), &code)?,
                created_by: auth.user,
                expires_at: Timestamp::from_millis(
                    Timestamp::now().millis() + ttl.as_millis() as i64,
                ),
            };
            match self
                .core
                .store
                .create_invite(&self.code_index(&code), &invite)
                .await
            {
                Ok(()) => return Ok((code, ttl.as_secs())),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Internal("invite code collisions".into()))
    }

    /// `POST /invites/join`: a live temporary invite or a public chat's permanent code.
    pub(crate) async fn join_by_code(&self, auth: &Authenticated, code: &str) -> Result<i64> {
        if !valid_code(code) {
            return Err(Error::InviteInvalid);
        }
        let chat_id = match self.invite_by_code(code).await? {
            Some(inv) if inv.expires_at > Timestamp::now() => inv.chat_id,
            _ => match self.chat_by_code(code).await? {
                Some(chat) if chat.is_public => chat.id,
                _ => return Err(Error::InviteInvalid),
            },
        };
        self.membership_change_allowed(chat_id, auth.user).await?;
        match self.join(chat_id, auth.user, auth.user).await {
            Err(Error::NotAMember) => Err(Error::InviteInvalid),
            other => other.map(|()| chat_id),
        }
    }
}

/// Sealed text that opened but is not UTF-8 is as unreadable as text that did not open.
fn utf8(plain: Vec<u8>) -> Result<String> {
    String::from_utf8(plain).map_err(|_| Error::from(crate::crypto::CryptoError::Open))
}
