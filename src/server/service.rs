//! [`MeloService`]: the hyper and tower service of a [`Melo`](crate::Melo), and the
//! [`ClientAddr`] extension that names the client when an embedder serves it.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Body as HttpBody;

use crate::http::{App, Body};

/// The client's socket address, as a request extension for a [`MeloService`] served by a
/// server of your own: Melo keys rate limits, the per-IP socket cap and the sessions list on it.
/// It wins over [`MeloService::with_peer`]. Fill it from the connection (the TCP peer your
/// server accepted), never from request data: headers are the client's to forge, and
/// `http.trusted_proxies` already applies on top (when this address is a trusted proxy, the
/// client is taken from `X-Forwarded-For`).
///
/// ```no_run
/// use std::net::SocketAddr;
///
/// fn tag<B>(mut req: http::Request<B>, peer: SocketAddr) -> http::Request<B> {
///     req.extensions_mut().insert(melo::ClientAddr(peer));
///     req
/// }
/// ```
///
/// With the `axum` feature, axum's `ConnectInfo<SocketAddr>` (from
/// `into_make_service_with_connect_info::<SocketAddr>()`) is read too; this extension wins
/// when both are present.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub SocketAddr);

/// The cloneable service of a [`Melo`](crate::Melo): a hyper and a tower service. See
/// [`Melo::service`](crate::Melo::service).
#[derive(Clone)]
pub struct MeloService {
    pub(super) app: Arc<App>,
    pub(super) peer: Option<SocketAddr>,
    pub(super) ws_only: bool,
}

impl std::fmt::Debug for MeloService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeloService")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl MeloService {
    /// The same service, knowing the client's socket address (used for rate limits, the
    /// per-IP socket cap and session IPs). A [`ClientAddr`] extension on a request wins over
    /// it; with neither, requests count as from 127.0.0.1.
    pub fn with_peer(mut self, peer: SocketAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    /// The client's address: a [`ClientAddr`] extension, axum's `ConnectInfo` (feature
    /// `axum`), then the peer given to [`MeloService::with_peer`].
    fn peer_of<B>(&self, req: &Request<B>) -> Option<SocketAddr> {
        let ext = req.extensions();
        if let Some(ClientAddr(addr)) = ext.get::<ClientAddr>() {
            return Some(*addr);
        }
        #[cfg(feature = "axum")]
        if let Some(axum::extract::ConnectInfo(addr)) =
            ext.get::<axum::extract::ConnectInfo<SocketAddr>>()
        {
            return Some(*addr);
        }
        self.peer
    }

    fn respond<B>(&self, req: Request<B>) -> MeloFuture
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let app = self.app.clone();
        let peer = self.peer_of(&req);
        let req = req.map(|b| b.map_err(Into::into).boxed_unsync());
        let ws_only = self.ws_only;
        Box::pin(async move { Ok(app.handle(req, peer, ws_only).await) })
    }
}

/// The future of [`MeloService`]'s answer.
type MeloFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl<B> hyper::service::Service<Request<B>> for MeloService
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = MeloFuture;

    fn call(&self, req: Request<B>) -> Self::Future {
        self.respond(req)
    }
}

/// The same service for tower stacks (axum `Router::fallback_service`, `ServiceBuilder`
/// layers); always ready.
impl<B> tower_service::Service<Request<B>> for MeloService
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = MeloFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.respond(req)
    }
}
