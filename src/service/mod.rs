//! Every business rule lives here, shared by the HTTP and WebSocket transports.
//!
//! [`Services`] holds one service per domain; each is a cheap handle over the shared
//! [`Core`] (backends, keys, config). Services seal PII before it reaches a store and open it
//! on the way out.

use std::net::IpAddr;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

use crate::config::Config;
use crate::crypto::jwt::TokenCodec;
use crate::crypto::password::PasswordHasher;
use crate::crypto::{KeyProvider, Pii};
use crate::ephemeral::Ephemeral;
use crate::push::PushProvider;
use crate::store::Store;

pub(crate) mod accounts;
pub(crate) mod auth;
pub(crate) mod avatars;
pub(crate) mod cache;
mod calls;
pub(crate) mod chats;
pub(crate) mod cluster;
mod contacts;
pub(crate) mod delivery;
mod devices;
mod error;
mod error_table;
pub(crate) mod frames;
pub(crate) mod hub;
pub(crate) mod ice;
mod limits;
mod manage;
mod messages;
mod messages_history;
mod messages_system;
mod presence;
mod push;
mod push_hosts;
pub(crate) mod register;
pub(crate) mod revocations;
pub(crate) mod schedule;
pub(crate) mod sessions;
mod users;
pub(crate) mod validate;

pub use accounts::AccountDeleted;
pub(crate) use accounts::AccountsService;
pub(crate) use auth::{AuthService, Authenticated, LoginRequest, LoginResponse, RegisterRequest};
pub(crate) use avatars::AvatarsService;
pub(crate) use cache::ReadCache;
pub(crate) use calls::CallsService;
pub(crate) use chats::ChatsService;
pub(crate) use contacts::{ContactRequest, ContactsService};
pub(crate) use delivery::DeliveryService;
pub(crate) use devices::AuthorizeRequest;
pub(crate) use error::Result;
pub use error::{Error, FieldError};
pub(crate) use error_table::http_reasons;
pub(crate) use error_table::WsReason;
pub(crate) use limits::LimitsService;
pub(crate) use limits::RouteBudget;
pub(crate) use manage::{ManageService, MessageRef};
pub(crate) use messages::{
    HistoryItem, HistoryQuery, MessagesService, SendOutcome, SendRequest, MAX_PAYLOAD,
};
pub(crate) use presence::{ContactStatus, PresenceService};
pub(crate) use push::{PushService, RegisterPush};
pub(crate) use schedule::{ScheduleRequest, ScheduleService};
pub(crate) use sessions::SessionsService;
pub(crate) use users::{ProfileUpdate, UsersService};

/// Backends, keys and settings shared by all services.
#[derive(Debug)]
pub(crate) struct Core {
    /// Durable state.
    pub store: Arc<dyn Store>,
    /// Ephemeral state and bus.
    pub ephemeral: Arc<dyn Ephemeral>,
    /// Keys.
    pub keys: Arc<dyn KeyProvider>,
    /// Push notifications.
    pub push: Arc<dyn PushProvider>,
    /// The Web Push VAPID key pair.
    pub vapid: Arc<crate::push::VapidKey>,
    /// PII sealing and blind indexes.
    pub pii: Pii,
    /// Access tokens.
    pub tokens: TokenCodec,
    /// Password hashing.
    pub passwords: PasswordHasher,
    /// Settings.
    pub config: Config,
    /// This node's sockets.
    pub hub: Arc<hub::Hub>,
    /// Read caches of per-message lookups.
    pub cache: cache::ReadCache,
    /// This node's metric families (`GET /metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Work that outlives its request (push deliveries); [`crate::Melo::shutdown`] waits for
    /// it, bounded by `http.shutdown_grace_secs`.
    pub background: tokio_util::task::TaskTracker,
    /// Membership of a cluster of nodes (`None`: this node is the whole server).
    pub cluster: Option<cluster::Cluster>,
    /// The embedder's hooks: registration policy and event stream.
    pub(crate) hooks: crate::hooks::Hooks,
}

impl Core {
    /// The first row `lookup` finds by the blind index of `value` (in `domain`) under any
    /// data-key version, current first: rows a key rotation has not moved yet are still found.
    pub(crate) async fn find_by_blind_index<T, F, Fut>(
        &self,
        domain: &str,
        value: &[u8],
        mut lookup: F,
    ) -> Result<Option<T>>
    where
        F: FnMut(Vec<u8>) -> Fut,
        Fut: std::future::Future<Output = crate::store::StoreResult<Option<T>>>,
    {
        for index in self.pii.blind_indexes(domain, value) {
            if let Some(found) = lookup(index).await? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

/// One service per domain.
#[derive(Clone, Debug)]
pub(crate) struct Services {
    /// Registration, login, token and CSRF checks.
    pub auth: AuthService,
    /// Profiles and E2E key material.
    pub users: UsersService,
    /// HTTP budgets and login lockout.
    pub limits: LimitsService,
    /// Contact relationships.
    pub contacts: ContactsService,
    /// Sending messages and reading history.
    pub messages: MessagesService,
    /// At-least-once delivery: fan-out, socket feeds, receipts, expiry.
    pub delivery: DeliveryService,
    /// Presence and typing.
    pub presence: PresenceService,
    /// Session management.
    pub sessions: SessionsService,
    /// Call signalling.
    pub calls: CallsService,
    /// Chats, channels, members and invites.
    pub chats: ChatsService,
    /// Edit, delete, pin, react.
    pub manage: ManageService,
    /// Push registrations and notifications.
    pub push: PushService,
    /// Avatars.
    pub avatars: AvatarsService,
    /// Account deletion and export ([`AccountsService::delete_account`] for operators).
    pub accounts: AccountsService,
    /// Scheduled messages and this node's scheduler.
    pub schedule: ScheduleService,
    core: Arc<Core>,
}

impl Services {
    /// Builds the services over shared backends.
    pub(crate) fn new(core: Core) -> Self {
        let core = Arc::new(core);
        let auth = AuthService::new(core.clone());
        let push = PushService::new(core.clone());
        let delivery = DeliveryService::new(core.clone());
        let contacts = ContactsService::new(core.clone(), delivery.clone(), push.clone());
        let presence = PresenceService::new(core.clone());
        let calls = CallsService::new(core.clone(), push.clone());
        let sessions = SessionsService::new(core.clone(), calls.clone());
        let chats = ChatsService::new(core.clone(), delivery.clone());
        let accounts = AccountsService::new(
            core.clone(),
            sessions.clone(),
            contacts.clone(),
            chats.clone(),
            presence.clone(),
        );
        let messages = MessagesService::new(
            core.clone(),
            delivery.clone(),
            presence.clone(),
            push.clone(),
        );
        Self {
            schedule: ScheduleService::new(core.clone(), messages.clone()),
            messages,
            users: UsersService::new(
                core.clone(),
                auth.clone(),
                contacts.clone(),
                sessions.clone(),
            ),
            presence,
            contacts,
            sessions,
            calls,
            chats,
            accounts,
            manage: ManageService::new(core.clone(), delivery.clone()),
            push,
            auth,
            limits: LimitsService::new(core.clone()),
            avatars: AvatarsService::new(core.clone()),
            delivery,
            core,
        }
    }

    /// The shared core.
    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }
}

/// What the transport knows about the client of one request.
#[derive(Clone, Debug)]
pub(crate) struct ClientInfo {
    /// Client IP (the peer, or the first `X-Forwarded-For` address of a trusted proxy).
    pub ip: IpAddr,
    /// `User-Agent`, possibly empty.
    pub user_agent: String,
}

/// 32 random bytes as 43 chars of URL-safe base64 (CSRF, device tokens, `jti`).
pub(crate) fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}
