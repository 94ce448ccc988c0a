//! Hooks for embedders: a [`RegistrationPolicy`] consulted before an account is created, a
//! stream of [`Event`]s (ids only), and server-originated system messages
//! ([`Melo::send_system_message`](crate::Melo::send_system_message)).
//!
//! Every hook is optional and costs nothing when unused: the default policy allows every
//! registration without awaiting anything, and no event is even built while nobody holds an
//! [`EventStream`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use futures_util::StreamExt;
//! use melo::{Melo, MemoryStore, StaticKeys};
//! use melo::hooks::{Event, MessageTarget};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let melo = Melo::builder(Arc::new(MemoryStore::new()), Arc::new(StaticKeys::generate()?)).build()?;
//! let mut events = melo.events();
//! while let Some(next) = events.next().await {
//!     match next {
//!         Ok(Event::UserRegistered { user, .. }) => {
//!             melo.send_system_message(MessageTarget::User(user), "welcome").await?;
//!         }
//!         Ok(_) => {}
//!         // Fell behind: some events were skipped; the stream goes on.
//!         Err(lagged) => eprintln!("{} events missed", lagged.missed),
//!     }
//! }
//! # Ok(()) }
//! ```

use std::fmt;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use futures_util::Stream;
use tokio::sync::broadcast;

use crate::model::{MessageId, SessionId, UserId};

/// Events an [`EventStream`] holds for a consumer that has not read them yet; a consumer that
/// falls further behind skips the oldest and is told how many ([`Lagged`]).
pub const EVENT_BUFFER: usize = 1024;

/// What a [`RegistrationPolicy`] sees of one `POST /register`, after its fields were validated.
///
/// It holds the phone number in clear: the policy is the embedder's own code running in this
/// process (to send an SMS code, say). Melo never logs it, and its `Debug` output hides the
/// phone, the user agent and the verification answer. Do not log them from a policy either.
#[non_exhaustive]
pub struct RegistrationAttempt<'a> {
    /// The phone, normalized to E.164 (`+` and digits).
    pub phone: &'a str,
    /// The client's IP (the peer, or the address a trusted proxy forwarded).
    pub ip: IpAddr,
    /// The client's `User-Agent`, possibly empty.
    pub user_agent: &'a str,
    /// What the client sent in the request's optional `verification` field (the answer to a
    /// [`RegistrationDecision::RequireVerification`] of an earlier attempt).
    pub verification: Option<&'a str>,
}

impl<'a> RegistrationAttempt<'a> {
    /// An attempt, for testing a policy outside a server (Melo builds the real ones).
    ///
    /// ```
    /// use melo::hooks::RegistrationAttempt;
    /// let attempt = RegistrationAttempt::new("+4915112345678", [127, 0, 0, 1].into(), "test", Some("123456"));
    /// assert_eq!(attempt.verification, Some("123456"));
    /// ```
    pub fn new(
        phone: &'a str,
        ip: IpAddr,
        user_agent: &'a str,
        verification: Option<&'a str>,
    ) -> Self {
        Self {
            phone,
            ip,
            user_agent,
            verification,
        }
    }
}

impl fmt::Debug for RegistrationAttempt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistrationAttempt")
            .field("phone", &"[redacted]")
            .field("ip", &"[redacted]")
            .field("user_agent", &"[redacted]")
            .field("verification", &self.verification.map(|_| "[redacted]"))
            .finish()
    }
}

/// The answer of a [`RegistrationPolicy`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistrationDecision {
    /// Go on and create the account.
    Allow,
    /// Refuse: HTTP 403 with reason `registration_denied` and `reason` as the error's
    /// `message`. The text reaches the client: keep personal data out of it.
    Deny {
        /// Text shown to the client.
        reason: String,
    },
    /// Refuse until the client proves something: HTTP 403 with reason `verification_required`
    /// and an error member `verification: {"method": …, "hint": …}`. The client then repeats
    /// the same `POST /register` with the answer in its `verification` field.
    RequireVerification {
        /// What kind of proof, for the client to choose its form (`"sms"`, `"captcha"`…).
        method: String,
        /// Anything else the client needs (a masked phone, a captcha site key…); reaches the
        /// client as written.
        hint: Option<String>,
    },
}

impl RegistrationDecision {
    /// [`RegistrationDecision::Deny`] with this reason.
    pub fn deny(reason: impl Into<String>) -> Self {
        Self::Deny {
            reason: reason.into(),
        }
    }

    /// [`RegistrationDecision::RequireVerification`] with this method and hint.
    pub fn require_verification(method: impl Into<String>, hint: Option<String>) -> Self {
        Self::RequireVerification {
            method: method.into(),
            hint,
        }
    }
}

/// Decides whether a registration may go on: set it with
/// [`MeloBuilder::registration_policy`](crate::MeloBuilder::registration_policy).
///
/// It runs after the request's fields were validated and the rate limits and registration mode
/// (open, closed, invite) let it pass, after the check that the phone is not registered yet, and
/// before the password is hashed: a refusal costs no bcrypt work, and a refused invite code
/// stays usable. The default method allows everything.
///
/// ```no_run
/// use melo::hooks::{RegistrationAttempt, RegistrationDecision, RegistrationPolicy};
///
/// /// Only phones of one country may register.
/// struct OnlyGermany;
///
/// #[melo::async_trait]
/// impl RegistrationPolicy for OnlyGermany {
///     async fn check(&self, attempt: &RegistrationAttempt<'_>) -> RegistrationDecision {
///         if attempt.phone.starts_with("+49") {
///             RegistrationDecision::Allow
///         } else {
///             RegistrationDecision::deny("Registration is open to German numbers only")
///         }
///     }
/// }
/// ```
#[async_trait]
pub trait RegistrationPolicy: Send + Sync {
    /// The decision on one attempt (default: [`RegistrationDecision::Allow`]).
    async fn check(&self, attempt: &RegistrationAttempt<'_>) -> RegistrationDecision {
        let _ = attempt;
        RegistrationDecision::Allow
    }
}

/// The default policy: every registration is allowed.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

impl RegistrationPolicy for AllowAll {}

/// Where a message went: a user (a direct message) or a chat.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageTarget {
    /// A direct message to this user.
    User(UserId),
    /// A message to every member of this chat.
    Chat(i64),
}

/// Something that happened on this node. Events carry ids only: never a payload, phone,
/// name, IP address or token.
///
/// With several nodes each node reports what happened on it (the node that served the login,
/// held the socket, stored the message).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// An account was created (`POST /register`).
    #[non_exhaustive]
    UserRegistered {
        /// The new user.
        user: UserId,
    },
    /// A login (password or device token) created or refreshed a session.
    #[non_exhaustive]
    LoggedIn {
        /// The user.
        user: UserId,
        /// The session the login issued a token for.
        session: SessionId,
    },
    /// A WebSocket was opened and its delivery started.
    #[non_exhaustive]
    SocketOpened {
        /// The user.
        user: UserId,
        /// The socket's session (one per device).
        session: SessionId,
    },
    /// A WebSocket that was opened ([`Event::SocketOpened`]) closed.
    #[non_exhaustive]
    SocketClosed {
        /// The user.
        user: UserId,
        /// The socket's session.
        session: SessionId,
    },
    /// A message was stored for delivery (sent now, a scheduled message that came due, or a
    /// system message). Not reported for a repeated `client_id`.
    #[non_exhaustive]
    MessageStored {
        /// The message.
        message: MessageId,
        /// The sender ([`UserId::SYSTEM`] for a system message).
        from: UserId,
        /// The recipient user or chat.
        to: MessageTarget,
    },
}

/// A consumer of [`Melo::events`](crate::Melo::events) fell behind by more than
/// [`EVENT_BUFFER`] events; that many were skipped, and the stream goes on with the oldest kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lagged {
    /// Events skipped.
    pub missed: u64,
}

impl fmt::Display for Lagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "event consumer lagged: {} events skipped", self.missed)
    }
}

impl std::error::Error for Lagged {}

type Inner = Pin<Box<dyn Stream<Item = Result<Event, Lagged>> + Send>>;

/// The events of one server, from the moment [`Melo::events`](crate::Melo::events) was
/// called: a [`Stream`] of [`Event`]s, or [`Lagged`] when this consumer fell behind (the
/// server never waits for a consumer). It ends at [`Melo::shutdown`](crate::Melo::shutdown),
/// or when the server is dropped.
///
/// ```no_run
/// # use std::sync::Arc;
/// # use futures_util::StreamExt;
/// # async fn f(melo: melo::Melo) {
/// let mut events = melo.events();
/// while let Some(next) = events.next().await {
///     match next {
///         Ok(event) => println!("{event:?}"),
///         Err(lagged) => eprintln!("{lagged}"),
///     }
/// }
/// # }
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct EventStream {
    inner: Inner,
    _subscribed: Subscribed,
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl Stream for EventStream {
    type Item = Result<Event, Lagged>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Counts a live [`EventStream`] while it exists.
struct Subscribed(Arc<AtomicUsize>);

impl Drop for Subscribed {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The hooks of one server, shared by the services.
#[derive(Clone)]
pub(crate) struct Hooks {
    pub(crate) policy: Option<Arc<dyn RegistrationPolicy>>,
    events: broadcast::Sender<Event>,
    /// Live [`EventStream`]s: read before an event is built (one relaxed load, no lock).
    subscribers: Arc<AtomicUsize>,
    /// Cancelled at shutdown: every stream ends.
    closed: tokio_util::sync::CancellationToken,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("policy", &self.policy.is_some())
            .field("subscribers", &self.subscribers.load(Ordering::Relaxed))
            .finish()
    }
}

impl Default for Hooks {
    fn default() -> Self {
        Self {
            policy: None,
            events: broadcast::channel(EVENT_BUFFER).0,
            subscribers: Arc::new(AtomicUsize::new(0)),
            closed: tokio_util::sync::CancellationToken::new(),
        }
    }
}

impl Hooks {
    /// Publishes the event `make` builds, only when someone listens.
    #[inline]
    pub(crate) fn emit(&self, make: impl FnOnce() -> Event) {
        if self.subscribers.load(Ordering::Relaxed) > 0 {
            // No receiver left (a stream dropped meanwhile) is not a failure.
            let _ = self.events.send(make());
        }
    }

    /// The policy's decision (allow without a policy).
    pub(crate) async fn check_registration(
        &self,
        attempt: &RegistrationAttempt<'_>,
    ) -> RegistrationDecision {
        match &self.policy {
            Some(p) => p.check(attempt).await,
            None => RegistrationDecision::Allow,
        }
    }

    /// Ends every stream (at [`Melo::shutdown`](crate::Melo::shutdown)); streams made later
    /// end at once.
    pub(crate) fn close(&self) {
        self.closed.cancel();
    }

    /// A new stream of the events from now on.
    pub(crate) fn subscribe(&self) -> EventStream {
        self.subscribers.fetch_add(1, Ordering::Relaxed);
        let guard = Subscribed(self.subscribers.clone());
        let rx = self.events.subscribe();
        let closed = self.closed.clone();
        let inner = futures_util::stream::unfold((rx, closed), |(mut rx, closed)| async move {
            let next = tokio::select! {
                _ = closed.cancelled() => return None,
                next = rx.recv() => next,
            };
            match next {
                Ok(event) => Some((Ok(event), (rx, closed))),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    Some((Err(Lagged { missed }), (rx, closed)))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        EventStream {
            inner: Box::pin(inner),
            _subscribed: guard,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn events_reach_subscribers_only_while_they_exist() {
        let hooks = Hooks::default();
        let built = std::sync::atomic::AtomicBool::new(false);
        let user = UserId::new(12_345_678).expect("uid");
        hooks.emit(|| {
            built.store(true, Ordering::Relaxed);
            Event::UserRegistered { user }
        });
        assert!(!built.load(Ordering::Relaxed), "no event is built unheard");
        let mut stream = hooks.subscribe();
        hooks.emit(|| Event::UserRegistered { user });
        assert_eq!(
            stream.next().await,
            Some(Ok(Event::UserRegistered { user }))
        );
        drop(stream);
        assert_eq!(hooks.subscribers.load(Ordering::Relaxed), 0);
    }

    /// `Melo::shutdown` ends every stream, also one whose server lives on in other handles.
    #[tokio::test]
    async fn streams_end_when_the_hooks_close() {
        let hooks = Hooks::default();
        let mut before = hooks.subscribe();
        hooks.close();
        assert_eq!(before.next().await, None);
        assert_eq!(hooks.subscribe().next().await, None);
    }

    #[tokio::test]
    async fn a_slow_consumer_is_told_what_it_missed() {
        let hooks = Hooks::default();
        let mut stream = hooks.subscribe();
        let user = UserId::new(12_345_678).expect("uid");
        for _ in 0..EVENT_BUFFER + 5 {
            hooks.emit(|| Event::UserRegistered { user });
        }
        assert_eq!(stream.next().await, Some(Err(Lagged { missed: 5 })));
        assert_eq!(
            stream.next().await,
            Some(Ok(Event::UserRegistered { user }))
        );
    }

    #[test]
    fn attempts_hide_personal_data_in_debug() {
        let attempt = RegistrationAttempt {
            phone: "+4915112345678",
            ip: IpAddr::from([203, 0, 113, 7]),
            user_agent: "Agent/1.0",
            verification: Some("123456"),
        };
        let shown = format!("{attempt:?}");
        for secret in ["4915112345678", "203.0.113.7", "Agent", "123456"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}

/// The Rust examples of the hooks guide (`docs/hooks.md`), compiled so they cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../docs/hooks.md")]
pub struct GuideDoctests;
