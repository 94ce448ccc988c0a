//! Contacts: requests, confirmation, rejection, removal and lists (docs/protocol.md §4.4).

use std::future::Future;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::auth::open_user;
use super::frames::{self, ContactEvent, KeyChanged, ServerFrame};
use super::{Authenticated, Core, Error, Result};
use crate::model::{Timestamp, UserId};
use crate::store::{ContactState, StoreError};

/// The contact events (docs/protocol.md §5.5).
#[derive(Clone, Copy)]
enum Notice {
    Request { secret: bool },
    Confirmed,
    Removed,
}

/// Body of the four contact routes.
#[derive(Debug, Deserialize)]
pub(crate) struct ContactRequest {
    /// The other user.
    pub target_id: UserId,
    /// `/subscribe` only: the request is "secret".
    #[serde(default)]
    pub secret: bool,
    /// CSRF token (or the `X-CSRF-Token` header). Accepted here so that the body parses; the
    /// handler checks it from the raw body before this type is built.
    #[serde(default)]
    #[allow(dead_code)]
    pub csrf_token: Option<String>,
}

/// One accepted contact.
#[derive(Debug, Serialize)]
pub(crate) struct ContactEntry {
    /// uid.
    pub unique_id: UserId,
    /// Nickname.
    pub nickname: String,
    /// E2E public key.
    pub public_e2e_key: Option<String>,
}

/// An incoming request.
#[derive(Debug, Serialize)]
pub(crate) struct IncomingRequest {
    /// Requester.
    pub unique_id: UserId,
    /// Requester's nickname.
    pub nickname: String,
    /// Requester's `secret` flag.
    pub secret: bool,
    /// When.
    pub requested_at: Timestamp,
}

/// An outgoing request (the target's profile is not revealed).
#[derive(Debug, Serialize)]
pub(crate) struct OutgoingRequest {
    /// Target.
    pub unique_id: UserId,
    /// When.
    pub requested_at: Timestamp,
}

/// `GET /contacts/requests`.
#[derive(Debug, Serialize)]
pub(crate) struct PendingRequests {
    /// Asked of the caller.
    pub incoming: Vec<IncomingRequest>,
    /// Asked by the caller.
    pub outgoing: Vec<OutgoingRequest>,
}

/// Contact relationships.
#[derive(Clone, Debug)]
pub(crate) struct ContactsService {
    core: Arc<Core>,
    delivery: super::DeliveryService,
    push: super::push::PushService,
}

impl ContactsService {
    pub(crate) fn new(
        core: Arc<Core>,
        delivery: super::DeliveryService,
        push: super::push::PushService,
    ) -> Self {
        Self {
            core,
            delivery,
            push,
        }
    }

    async fn nickname(&self, user: UserId) -> Result<String> {
        let u = self
            .core
            .store
            .user(user)
            .await?
            .ok_or(Error::InvalidToken)?;
        Ok(open_user(&self.core, &u)?.nickname)
    }

    /// Queues a contact event from `from` for `to`: phone (always null) and nickname on
    /// requests and confirmations, `secret` on requests.
    async fn notify(&self, to: UserId, notice: Notice, from: UserId) -> Result<()> {
        let nick = match notice {
            Notice::Removed => None,
            _ => Some(self.nickname(from).await?),
        };
        let ev = ContactEvent {
            from_id: from,
            from_phone: nick.as_ref().map(|_| None),
            from_nickname: nick.as_deref(),
            secret: match notice {
                Notice::Request { secret } => Some(secret),
                _ => None,
            },
            ts: Timestamp::now(),
        };
        let frame = frames::to_bytes(&match notice {
            Notice::Request { .. } => ServerFrame::SubscriptionRequest(ev),
            Notice::Confirmed => ServerFrame::SubscriptionConfirmed(ev),
            Notice::Removed => ServerFrame::SubscriptionRemoved(ev),
        });
        self.delivery.emit(&[(to, frame)], None).await
    }

    /// `/subscribe`: asks `target`; confirms instead when `target` already asked the caller.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn subscribe<'a>(
        &'a self,
        auth: &'a Authenticated,
        target: UserId,
        secret: bool,
    ) -> impl Future<Output = Result<&'static str>> + Send + 'a {
        async move {
            if target == auth.user {
                return Err(Error::InvalidTarget);
            }
            if self.core.store.user(target).await?.is_none() {
                return Err(Error::UserNotFound);
            }
            match self.core.store.relationship(auth.user, target).await? {
                Some(r) if r.state == ContactState::Accepted => Err(Error::AlreadyContact),
                Some(r) if r.requester == auth.user => Err(Error::RequestPending),
                Some(_) => {
                    self.confirm(auth, target).await?;
                    Ok("confirmed")
                }
                None => {
                    match self
                        .core
                        .store
                        .request_contact(auth.user, target, secret, Timestamp::now())
                        .await
                    {
                        Ok(()) => {}
                        // A concurrent request of the same pair won the race.
                        Err(StoreError::Conflict(_)) => return Err(Error::RequestPending),
                        Err(e) => return Err(e.into()),
                    }
                    self.notify(target, Notice::Request { secret }, auth.user)
                        .await?;
                    let offline = self.push.offline_sessions(target).await;
                    let event = crate::push::PushEvent::ContactRequest { from: auth.user };
                    self.push.notify(target, &offline, event, false);
                    Ok("subscription_requested")
                }
            }
        }
    }

    /// `/confirm_subscribe`: accepts `requester`'s pending request.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn confirm<'a>(
        &'a self,
        auth: &'a Authenticated,
        requester: UserId,
    ) -> impl Future<Output = Result<()>> + Send + 'a {
        async move {
            if !self.core.store.accept_contact(requester, auth.user).await? {
                return Err(Error::NoPendingRequest);
            }
            self.core.contacts_changed(requester, auth.user);
            self.notify(requester, Notice::Confirmed, auth.user).await
        }
    }

    /// `/reject_subscribe`: deletes `requester`'s pending request, silently.
    pub(crate) async fn reject(&self, auth: &Authenticated, requester: UserId) -> Result<()> {
        match self.core.store.relationship(requester, auth.user).await? {
            Some(r) if r.state == ContactState::Pending && r.requester == requester => {
                self.core.store.remove_contact(requester, auth.user).await?;
                self.core.contacts_changed(requester, auth.user);
                Ok(())
            }
            _ => Err(Error::NoPendingRequest),
        }
    }

    /// `/unsubscribe`: ends an accepted relationship or withdraws the caller's own request.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn unsubscribe<'a>(
        &'a self,
        auth: &'a Authenticated,
        other: UserId,
    ) -> impl Future<Output = Result<()>> + Send + 'a {
        async move {
            match self.core.store.relationship(auth.user, other).await? {
                Some(r) if r.state == ContactState::Accepted || r.requester == auth.user => {
                    self.core.store.remove_contact(auth.user, other).await?;
                    self.core.contacts_changed(auth.user, other);
                    self.notify(other, Notice::Removed, auth.user).await
                }
                _ => Err(Error::NotFound),
            }
        }
    }

    /// Accepted contacts, by uid, one page.
    pub(crate) async fn list(
        &self,
        auth: &Authenticated,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<ContactEntry>, u64)> {
        let (ids, total) = self
            .core
            .store
            .contacts_of(auth.user, offset, limit)
            .await?;
        let mut users = self.core.store.users(&ids).await?;
        users.sort_by_key(|u| u.id);
        let entries = users
            .iter()
            .map(|u| {
                let o = open_user(&self.core, u)?;
                Ok(ContactEntry {
                    unique_id: u.id,
                    nickname: o.nickname,
                    public_e2e_key: o.public_key,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((entries, total))
    }

    /// Pending requests of the caller, both directions.
    pub(crate) async fn pending(&self, auth: &Authenticated) -> Result<PendingRequests> {
        let pending = self.core.store.pending_of(auth.user).await?;
        let requesters: Vec<UserId> = pending
            .iter()
            .filter(|p| p.target == auth.user)
            .map(|p| p.requester)
            .collect();
        let users = self.core.store.users(&requesters).await?;
        let mut incoming = Vec::new();
        let mut outgoing = Vec::new();
        for p in pending {
            if p.target == auth.user {
                let Some(u) = users.iter().find(|u| u.id == p.requester) else {
                    continue;
                };
                incoming.push(IncomingRequest {
                    unique_id: p.requester,
                    nickname: open_user(&self.core, u)?.nickname,
                    secret: p.secret,
                    requested_at: p.requested_at,
                });
            } else {
                outgoing.push(OutgoingRequest {
                    unique_id: p.target,
                    requested_at: p.requested_at,
                });
            }
        }
        Ok(PendingRequests { incoming, outgoing })
    }

    /// After `user`'s account was erased with its relationships `gone`: each pair's cache entry
    /// goes on every node, and the other side of an accepted relationship, or of a request
    /// `user` had made, gets `subscription_removed` (as `/unsubscribe` sends it). A request made
    /// to `user` ends silently, as a rejection does. Failures are logged: the erase stands.
    pub(crate) async fn account_erased(&self, user: UserId, gone: &[crate::store::Contact]) {
        for c in gone {
            let other = if c.requester == user {
                c.target
            } else {
                c.requester
            };
            self.core.contacts_changed(user, other);
            if c.state == ContactState::Accepted || c.requester == user {
                if let Err(e) = self.notify(other, Notice::Removed, user).await {
                    e.log("subscription_removed after an account erase");
                }
            }
        }
    }

    /// Every accepted contact of `user` (for presence and key fan-out).
    pub(crate) async fn all_contacts(&self, user: UserId) -> Result<Vec<UserId>> {
        Ok(self.core.store.contacts_of(user, 0, u64::MAX / 2).await?.0)
    }

    /// Sends `key_changed` to every accepted contact and to the user's other devices.
    pub(crate) async fn key_changed(&self, auth: &Authenticated, pem: &str) -> Result<()> {
        let frame = frames::to_bytes(&ServerFrame::KeyChanged(KeyChanged {
            user_id: auth.user,
            public_e2e_key: pem,
            ts: Timestamp::now(),
        }));
        let mut targets: Vec<_> = self
            .all_contacts(auth.user)
            .await?
            .into_iter()
            .map(|u| (u, frame.clone()))
            .collect();
        self.delivery.emit(&targets, None).await?;
        targets.clear();
        targets.push((auth.user, frame));
        self.delivery.emit(&targets, Some(auth.session)).await
    }
}
