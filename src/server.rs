//! [`Melo`]: the built server. Serve it on a listener, or take its [`MeloService`] and mount it
//! in a server of your own (hyper, an axum `Router`, any tower stack).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

use crate::builder::MeloBuilder;
use crate::crypto::KeyProvider;
use crate::http::App;
use crate::service::Services;
use crate::store::Store;

mod cluster;
mod service;

pub use service::{ClientAddr, MeloService};

/// How often this node sweeps the shared call deadlines (ring timeout, reconnect grace).
const CALL_SWEEP_EVERY: Duration = Duration::from_millis(250);

/// A built Melo server. Owns its background tasks (key rotation, expiry sweeps); they stop
/// when [`Melo::shutdown`] is called or the value is dropped.
pub struct Melo {
    app: Arc<App>,
    cancel: CancellationToken,
    tasks: TaskTracker,
    _guard: DropGuard,
}

impl std::fmt::Debug for Melo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Melo").finish_non_exhaustive()
    }
}

impl Melo {
    /// Starts a builder with the two parts that have no default.
    pub fn builder(store: Arc<dyn Store>, keys: Arc<dyn KeyProvider>) -> MeloBuilder {
        MeloBuilder::new(store, keys)
    }

    pub(crate) fn start(services: Services, rt: &tokio::runtime::Handle) -> Result<Self, String> {
        let app = Arc::new(App::new(services)?);
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let core = app.services.core().clone();
        let c = cancel.clone();
        // Key maintenance (`KeyProvider::maintain`): JWT rotation, and data keys added to the
        // key file by another process, loaded well before their activation time.
        let every = Duration::from_secs(core.config.auth.key_check_secs.max(1));
        tasks.spawn_on(
            async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = c.cancelled() => break,
                        _ = tick.tick() => {
                            if let Err(e) = core.keys.maintain().await {
                                tracing::error!(error = %e, "key maintenance failed");
                            }
                        }
                    }
                }
            },
            rt,
        );
        let core = app.services.core().clone();
        let c = cancel.clone();
        tasks.spawn_on(
            async move {
                let mut tick = tokio::time::interval(Duration::from_secs(30));
                loop {
                    tokio::select! {
                        _ = c.cancelled() => break,
                        _ = tick.tick() => core.ephemeral.maintain().await,
                    }
                }
            },
            rt,
        );
        let services = app.services.clone();
        let c = cancel.clone();
        tasks.spawn_on(
            async move {
                let m = &services.core().config.messages;
                let every = Duration::from_secs(m.sweep_interval_secs.max(1));
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                loop {
                    tokio::select! {
                        _ = c.cancelled() => break,
                        _ = tick.tick() => {
                            services.delivery.sweep().await;
                            services.chats.purge_expired_invites().await;
                        }
                    }
                }
            },
            rt,
        );
        // Call timers live in the shared deadline set; every node sweeps it, so a call whose
        // node died is still ended.
        let services = app.services.clone();
        let c = cancel.clone();
        tasks.spawn_on(
            async move {
                let mut tick = tokio::time::interval(CALL_SWEEP_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = c.cancelled() => break,
                        _ = tick.tick() => {
                            // A full batch: more may be due.
                            while services.calls.sweep().await >= 64 {}
                        }
                    }
                }
            },
            rt,
        );
        // Scheduled messages: every node claims and sends due ones (`service::schedule`).
        crate::service::schedule::spawn(app.services.schedule.clone(), &tasks, cancel.clone(), rt);
        // Revocations operator tools write to the store (`service::revocations`).
        let core = app.services.core().clone();
        crate::service::revocations::spawn(core, &tasks, cancel.clone(), rt);
        if core_has_cluster(&app) {
            cluster::spawn_cluster(&app, &tasks, &cancel, rt);
        }
        tasks.close();
        Ok(Self {
            app,
            _guard: cancel.clone().drop_guard(),
            cancel,
            tasks,
        })
    }

    /// The services (operator tools of this crate call business logic directly).
    pub(crate) fn services(&self) -> &Services {
        &self.app.services
    }

    /// Deletes the account `user` for good, the way `DELETE /account` does once it checked the
    /// password (here there is no password check: for operator tools and an embedder's own admin
    /// surface). In one store transaction the user row, sessions, device tokens, push
    /// registration, contacts and chat memberships go; then the user's sockets close on every
    /// node, former contacts and chat members are told, and the user's ephemeral state is
    /// deleted. Messages already delivered stay with their recipients; the uid is never reused.
    ///
    /// [`Error::UserNotFound`](crate::Error::UserNotFound) when there is no such account.
    ///
    /// ```no_run
    /// # async fn f(melo: &melo::Melo) -> Result<(), Box<dyn std::error::Error>> {
    /// if let Some(user) = melo::model::UserId::new(42) {
    ///     let deleted = melo.delete_account(user).await?;
    ///     println!("{} sessions ended", deleted.sessions);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn delete_account(
        &self,
        user: crate::model::UserId,
    ) -> Result<crate::AccountDeleted, crate::Error> {
        self.app.services.accounts.delete_account(user).await
    }

    /// The events of this node from now on (ids only, see [`Event`](crate::hooks::Event)). The
    /// server never waits for a consumer: one that falls more than
    /// [`EVENT_BUFFER`](crate::hooks::EVENT_BUFFER) events behind skips the oldest and reads a
    /// [`Lagged`](crate::hooks::Lagged) telling how many. While no stream exists no event is
    /// even built.
    ///
    /// ```no_run
    /// # use futures_util::StreamExt;
    /// # async fn f(melo: melo::Melo) {
    /// let mut events = melo.events();
    /// tokio::spawn(async move {
    ///     while let Some(next) = events.next().await {
    ///         match next {
    ///             Ok(event) => tracing::info!(?event, "melo event"),
    ///             Err(lagged) => tracing::warn!(missed = lagged.missed, "events skipped"),
    ///         }
    ///     }
    /// });
    /// # }
    /// ```
    pub fn events(&self) -> crate::hooks::EventStream {
        self.app.services.core().hooks.subscribe()
    }

    /// Sends a system message to a user or to every member of a chat; returns its id.
    ///
    /// It is written by the server, **not end-to-end encrypted**: `payload` is stored and
    /// delivered exactly as given, like the ciphertext of any other message, so put nothing
    /// there that the server must not read. Its sender is [`UserId::SYSTEM`](crate::model::UserId::SYSTEM)
    /// (`"00000000"`), and its `relay_delivery` frame carries `"system": true`. It takes the
    /// normal delivery path: stored, sent to online devices, queued (and pushed) for offline
    /// ones, acknowledged like any message. The payload has the limits of any message (1 byte
    /// to 1 MiB). Errors: `user_not_found` (no such user), `not_found` (no such chat),
    /// `validation_failed` (payload).
    ///
    /// ```no_run
    /// # use melo::{model::UserId, MessageTarget};
    /// # async fn f(melo: melo::Melo, user: UserId) -> Result<(), melo::Error> {
    /// let payload = r#"{"text":"Welcome to Melo!"}"#;
    /// let id = melo.send_system_message(MessageTarget::User(user), payload).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_system_message(
        &self,
        to: crate::hooks::MessageTarget,
        payload: impl Into<String>,
    ) -> Result<crate::model::MessageId, crate::Error> {
        let sent = self
            .app
            .services
            .messages
            .send_system(to, payload.into())
            .await?;
        Ok(sent.message_id)
    }

    /// The service that answers every route of this server, for embedders: it implements both
    /// `hyper::service::Service` and `tower_service::Service`, so it can be served by a hyper
    /// connection of your own, mounted in an axum `Router` (`fallback_service`) or wrapped in
    /// tower layers.
    ///
    /// - **Upgrades**: serve connections with upgrades enabled
    ///   (`hyper_util::server::conn::auto::Builder::serve_connection_with_upgrades`, the http1
    ///   builder's `.with_upgrades()`; `axum::serve` does): without them the socket cannot work.
    /// - **Client address**: rate limits, the per-IP socket cap and the sessions list key on it.
    ///   It is taken from a [`ClientAddr`] request extension, else (feature `axum`) from axum's
    ///   `ConnectInfo<SocketAddr>`, else from [`MeloService::with_peer`], else 127.0.0.1 (every
    ///   client then shares one budget, and `X-Forwarded-For` is ignored). `http.trusted_proxies`
    ///   applies on top of an address that was found.
    /// - **Path**: with `http.path_prefix` set (e.g. `/chat`) every route lives under it and other
    ///   paths answer 404; hand Melo the request URI unchanged (no prefix stripping).
    /// - **Shutdown**: [`Melo::shutdown`] closes the open sockets however the service is served.
    ///
    /// ```no_run
    /// # async fn run(melo: melo::Melo) -> std::io::Result<()> {
    /// use hyper_util::rt::{TokioExecutor, TokioIo};
    /// use hyper_util::server::conn::auto;
    ///
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8088").await?;
    /// loop {
    ///     let (stream, peer) = listener.accept().await?;
    ///     let service = melo.service().with_peer(peer);
    ///     tokio::spawn(async move {
    ///         let _ = auto::Builder::new(TokioExecutor::new())
    ///             .serve_connection_with_upgrades(TokioIo::new(stream), service)
    ///             .await;
    ///     });
    /// }
    /// # }
    /// ```
    pub fn service(&self) -> MeloService {
        MeloService {
            app: self.app.clone(),
            peer: None,
            ws_only: false,
        }
    }

    /// Accepts plain-TCP connections until `shutdown` resolves, then stops accepting and drains
    /// open connections for up to `http.shutdown_grace_secs`.
    pub async fn serve<F>(&self, listener: TcpListener, shutdown: F) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send,
    {
        self.serve_with(listener, shutdown, false, |s| async move {
            Ok::<_, std::io::Error>(s)
        })
        .await
    }

    /// Serves the WebSocket listener (`WS_PORT`): every path of every request is the socket
    /// endpoint (docs/protocol.md §5.1). Plain TCP; put TLS in front or use [`Melo::serve_ws_tls`].
    pub async fn serve_ws<F>(&self, listener: TcpListener, shutdown: F) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send,
    {
        self.serve_with(listener, shutdown, true, |s| async move {
            Ok::<_, std::io::Error>(s)
        })
        .await
    }

    /// [`Melo::serve_ws`] over TLS (feature `tls`).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub async fn serve_ws_tls<F>(
        &self,
        listener: TcpListener,
        tls: Arc<tokio_rustls::rustls::ServerConfig>,
        shutdown: F,
    ) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send,
    {
        self.serve_tls_inner(listener, tls, shutdown, true).await
    }

    /// Like [`Melo::serve`], speaking TLS with `tls` (feature `tls`). Handshakes run on the
    /// connection's own task with a 10-second limit.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub async fn serve_tls<F>(
        &self,
        listener: TcpListener,
        tls: Arc<tokio_rustls::rustls::ServerConfig>,
        shutdown: F,
    ) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send,
    {
        self.serve_tls_inner(listener, tls, shutdown, false).await
    }

    #[cfg(feature = "tls")]
    async fn serve_tls_inner<F>(
        &self,
        listener: TcpListener,
        tls: Arc<tokio_rustls::rustls::ServerConfig>,
        shutdown: F,
        ws_only: bool,
    ) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send,
    {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        self.serve_with(listener, shutdown, ws_only, move |s| {
            let acceptor = acceptor.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(s))
                    .await
                    .map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
                    })?
            }
        })
        .await
    }

    async fn serve_with<F, W, WF, IO>(
        &self,
        listener: TcpListener,
        shutdown: F,
        ws_only: bool,
        wrap: W,
    ) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send,
        W: Fn(tokio::net::TcpStream) -> WF + Send + Sync + 'static,
        WF: Future<Output = std::io::Result<IO>> + Send + 'static,
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let http = &self.app.services.core().config.http;
        let limit = Arc::new(Semaphore::new(http.max_connections));
        let grace = Duration::from_secs(http.shutdown_grace_secs);
        let graceful = GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10));
        builder
            .http2()
            .timer(hyper_util::rt::TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20));
        let wrap = Arc::new(wrap);
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                _ = &mut shutdown => break,
                _ = self.cancel.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // EMFILE/ENFILE and friends: back off instead of spinning or crashing.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                tracing::warn!("connection limit reached; closing new connection");
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let mut svc = self.service().with_peer(peer);
            svc.ws_only = ws_only;
            let builder = builder.clone();
            let watcher = graceful.watcher();
            let wrap = wrap.clone();
            tokio::spawn(async move {
                let io = match wrap(stream).await {
                    Ok(io) => io,
                    Err(e) => {
                        tracing::debug!(error = %e, "connection setup failed");
                        return;
                    }
                };
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
                if let Err(e) = watcher.watch(conn.into_owned()).await {
                    tracing::debug!(error = %e, "connection ended with error");
                }
                drop(permit);
            });
        }
        drop(listener);
        // Sockets get their close frame (1001 going_away); HTTP connections drain.
        self.app.ws_shutdown.cancel();
        self.app.ws_tasks.close();
        let drained = async {
            graceful.shutdown().await;
            self.app.ws_tasks.wait().await;
        };
        tokio::select! {
            _ = drained => tracing::debug!("all connections drained"),
            _ = tokio::time::sleep(grace) => tracing::warn!("shutdown grace elapsed with connections open"),
        }
        Ok(())
    }

    /// Stops background tasks and any `serve` loops, closes every open socket with 1001
    /// `going_away` (also sockets of a [`MeloService`] served by the embedder's own server),
    /// waits for the tasks to end, then waits (at most `http.shutdown_grace_secs`) for the
    /// sockets to finish closing and for push deliveries still running.
    ///
    /// The embedder's own server keeps accepting requests until the embedder stops it; a socket
    /// opened after `shutdown` is closed with 1001 at once.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.app.ws_shutdown.cancel();
        self.app.ws_tasks.close();
        self.tasks.wait().await;
        // Flush work still running for finished requests (push deliveries), bounded.
        let core = self.app.services.core();
        core.hooks.close();
        core.background.close();
        let grace = Duration::from_secs(core.config.http.shutdown_grace_secs);
        let drained = async {
            tokio::join!(self.app.ws_tasks.wait(), core.background.wait());
        };
        if tokio::time::timeout(grace, drained).await.is_err() {
            tracing::warn!("shutdown grace elapsed with sockets or push deliveries running");
        }
    }
}

fn core_has_cluster(app: &App) -> bool {
    app.services.core().cluster.is_some()
}
