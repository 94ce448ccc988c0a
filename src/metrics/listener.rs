//! [`Melo::serve_metrics`]: `GET /metrics` on a listener of its own (`METRICS_ADDR`), so the
//! counts need not be reachable from the API port.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::server::Melo;

/// Connections served at once; scrapers are few.
const MAX_SCRAPERS: usize = 64;

fn reply(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

impl Melo {
    /// Serves `GET /metrics` (and nothing else: other paths are 404, other methods 405) on
    /// `listener` until `shutdown` resolves. Set `metrics_separate_listener` so the API
    /// listener's `/metrics` answers `feature_disabled`. With `metrics_enabled` off the store and
    /// ephemeral families stay empty (they are not wrapped).
    pub async fn serve_metrics<F>(&self, listener: TcpListener, shutdown: F) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send,
    {
        let metrics = self.services().core().metrics.clone();
        let graceful = GracefulShutdown::new();
        let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPERS));
        tokio::pin!(shutdown);
        loop {
            let (stream, _) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::debug!(error = %e, "metrics accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                continue; // dropped: too many scrapers at once
            };
            let metrics = metrics.clone();
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    let resp = match (req.method(), req.uri().path()) {
                        (&Method::GET | &Method::HEAD, "/metrics") => match metrics.render() {
                            Ok(text) => reply(StatusCode::OK, super::CONTENT_TYPE, text),
                            Err(e) => {
                                tracing::warn!(error = %e, "metrics not rendered");
                                reply(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", Vec::new())
                            }
                        },
                        (_, "/metrics") => {
                            reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", Vec::new())
                        }
                        _ => reply(StatusCode::NOT_FOUND, "text/plain", Vec::new()),
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let conn = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .into_owned();
            let watched = graceful.watch(conn);
            tokio::spawn(async move {
                let _ = watched.await;
                drop(permit);
            });
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
        Ok(())
    }
}
