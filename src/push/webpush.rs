//! The Web Push provider: RFC 8030 delivery with RFC 8291 encryption and RFC 8292 VAPID.
//!
//! Requests reach public addresses only (docs/protocol.md §4.9, amended): the connector's resolver
//! drops every non-public address it resolves, and an IP-literal host is checked before any
//! request, so the address actually connected to is always checked (a host that rebinds its
//! DNS between registration and delivery gains nothing).

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{header, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::address::{self, is_public_ip, AddressError};
use super::{ece, Notification, PushError, PushProvider, PushSubscription, VapidKey};

/// Response bodies read (then discarded) to keep connections reusable; larger ones are dropped.
const MAX_RESPONSE_BODY: usize = 16 * 1024;

/// Options of [`WebPushProvider`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebPushOptions {
    /// Deadline of one push request, connection included. Default 10 s.
    pub timeout: Duration,
    /// Deadline of the host lookup, and of each TCP connection attempt. Default 3 s.
    pub connect_timeout: Duration,
    /// Accept `http://` endpoints (tests, local push services). Default `false`: only `https://`.
    pub allow_http: bool,
    /// Connect to loopback, private, link-local… addresses too (tests, private push services).
    /// Default `false`: only public addresses ([`is_public_ip`](crate::push::is_public_ip)).
    pub allow_private: bool,
}

impl Default for WebPushOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            allow_http: false,
            allow_private: false,
        }
    }
}

/// The connector's resolver: the host's addresses, without the non-public ones unless
/// `allow_private`. The connector connects only to what it returns.
#[derive(Clone, Debug)]
struct PublicResolver {
    allow_private: bool,
    timeout: Duration,
}

type Resolving =
    Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, AddressError>> + Send>>;

impl tower_service::Service<Name> for PublicResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = AddressError;
    type Future = Resolving;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let Self {
            allow_private,
            timeout,
        } = *self;
        Box::pin(async move {
            let addrs = address::resolve(name.as_str(), 0, timeout).await?;
            let addrs = if allow_private {
                addrs
            } else {
                address::public_only(addrs)?
            };
            Ok(addrs.into_iter())
        })
    }
}

/// Whether a client error comes from the resolver refusing every address of the host.
fn refused_address(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<AddressError>() == Some(&AddressError::NotPublic) {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Errors of building a [`WebPushProvider`].
#[derive(Debug, thiserror::Error)]
pub enum WebPushSetupError {
    /// The VAPID subject must be a `mailto:` or `https:` URI (RFC 8292 §2.1).
    #[error("VAPID subject must be a mailto: or https: URI")]
    InvalidSubject,
    /// The TLS client configuration could not be built.
    #[error("TLS client setup failed: {0}")]
    Tls(String),
}

/// Sends [`Notification`]s to browsers' push services (Web Push, VAPID-signed, `aes128gcm`
/// encrypted). Only `Web` subscriptions are supported; others are refused with
/// [`PushError::Rejected`].
///
/// Errors never include the endpoint, keys or payload: endpoints identify a device.
pub struct WebPushProvider {
    key: VapidKey,
    subject: String,
    options: WebPushOptions,
    client: Client<HttpsConnector<HttpConnector<PublicResolver>>, Full<Bytes>>,
}

impl WebPushProvider {
    /// A provider signing with `key` and claiming `subject` (e.g. `mailto:admin@example.org`).
    pub fn new(
        key: VapidKey,
        subject: impl Into<String>,
        options: WebPushOptions,
    ) -> Result<Self, WebPushSetupError> {
        let subject = subject.into();
        if !(subject.starts_with("mailto:") || subject.starts_with("https:")) {
            return Err(WebPushSetupError::InvalidSubject);
        }
        let roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| WebPushSetupError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new_with_resolver(PublicResolver {
            allow_private: options.allow_private,
            timeout: options.connect_timeout,
        });
        http.enforce_http(false);
        http.set_connect_timeout(Some(options.connect_timeout));
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
        let builder = if options.allow_http {
            builder.https_or_http()
        } else {
            builder.https_only()
        };
        let connector = builder.enable_http1().enable_http2().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Self {
            key,
            subject,
            options,
            client,
        })
    }

    /// The VAPID key (its public half is what browsers subscribe with).
    pub fn key(&self) -> &VapidKey {
        &self.key
    }

    fn request(
        &self,
        endpoint: &str,
        p256dh: &str,
        auth: &str,
        n: &Notification,
    ) -> Result<Request<Full<Bytes>>, PushError> {
        let uri: Uri = endpoint
            .parse()
            .map_err(|_| PushError::Rejected("invalid endpoint".into()))?;
        match (uri.scheme_str(), uri.authority()) {
            (Some(s), Some(_)) if s.eq_ignore_ascii_case("https") => {}
            (Some(s), Some(_)) if s.eq_ignore_ascii_case("http") => {
                if !self.options.allow_http {
                    return Err(PushError::Rejected("endpoint must be https".into()));
                }
            }
            _ => return Err(PushError::Rejected("invalid endpoint".into())),
        }
        // The connector skips its resolver for IP literals: check those here.
        let host = uri.host().unwrap_or_default();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = host.parse::<IpAddr>() {
            if !(self.options.allow_private || is_public_ip(ip)) {
                return Err(PushError::NotPublic);
            }
        }
        let authorization = self
            .key
            .authorization(endpoint, &self.subject)
            .map_err(|_| PushError::Rejected("invalid endpoint".into()))?;
        let body = ece::encrypt(p256dh, auth, &n.payload())?;
        Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header("ttl", n.ttl)
            .header(header::CONTENT_ENCODING, "aes128gcm")
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header("urgency", if n.urgent { "high" } else { "normal" })
            .header(header::AUTHORIZATION, authorization)
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| PushError::Rejected("invalid request".into()))
    }
}

/// What a push service's status means (RFC 8030 §5, §7).
fn classify(status: StatusCode) -> Result<(), PushError> {
    match status.as_u16() {
        200..=299 => Ok(()),
        404 | 410 => Err(PushError::Gone),
        429 | 500..=599 => Err(PushError::Transient(format!(
            "push service answered {}",
            status.as_u16()
        ))),
        code => Err(PushError::Rejected(format!("push service answered {code}"))),
    }
}

#[async_trait]
impl PushProvider for WebPushProvider {
    async fn send(&self, sub: &PushSubscription, n: &Notification) -> Result<(), PushError> {
        let PushSubscription::Web {
            endpoint,
            p256dh,
            auth,
        } = sub
        else {
            return Err(PushError::Rejected("unsupported platform".into()));
        };
        let request = self.request(endpoint, p256dh, auth, n)?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                if refused_address(&e) {
                    PushError::NotPublic
                } else if e.is_connect() {
                    PushError::Transient("connection to push service failed".into())
                } else {
                    PushError::Transient("push request failed".into())
                }
            })?;
            let status = response.status();
            // Drain a small body so the connection can be reused; its content is not needed.
            let _ = Limited::new(response.into_body(), MAX_RESPONSE_BODY)
                .collect()
                .await;
            Ok::<_, PushError>(status)
        };
        let status = tokio::time::timeout(self.options.timeout, exchange)
            .await
            .map_err(|_| PushError::Transient("push request timed out".into()))??;
        let outcome = classify(status);
        if let Err(e) = &outcome {
            tracing::debug!(kind = ?n.event.kind(), error = %e, "web push failed");
        }
        outcome
    }
}

impl fmt::Debug for WebPushProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebPushProvider")
            .field("key", &self.key)
            .field("subject", &self.subject)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UserId;
    use crate::push::PushEvent;

    fn provider(allow_http: bool) -> WebPushProvider {
        with_private(allow_http, false)
    }

    fn with_private(allow_http: bool, allow_private: bool) -> WebPushProvider {
        WebPushProvider::new(
            VapidKey::generate(),
            "mailto:admin@localhost",
            WebPushOptions {
                allow_http,
                allow_private,
                ..WebPushOptions::default()
            },
        )
        .expect("provider")
    }

    fn note() -> Notification {
        let user = UserId::new(12345678).expect("uid");
        Notification {
            event: PushEvent::ContactRequest { from: user },
            user,
            ttl: 60,
            urgent: false,
        }
    }

    #[test]
    fn status_mapping() {
        for code in [200, 201, 202] {
            assert!(classify(StatusCode::from_u16(code).expect("code")).is_ok());
        }
        for code in [404, 410] {
            assert!(matches!(
                classify(StatusCode::from_u16(code).expect("code")),
                Err(PushError::Gone)
            ));
        }
        for code in [429, 500, 502, 503] {
            assert!(matches!(
                classify(StatusCode::from_u16(code).expect("code")),
                Err(PushError::Transient(_))
            ));
        }
        for code in [301, 400, 401, 403, 413] {
            match classify(StatusCode::from_u16(code).expect("code")) {
                Err(PushError::Rejected(m)) => assert!(m.contains(&code.to_string())),
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    #[test]
    fn subject_must_be_a_contact_uri() {
        assert!(matches!(
            WebPushProvider::new(VapidKey::generate(), "admin", WebPushOptions::default()),
            Err(WebPushSetupError::InvalidSubject)
        ));
        let p = provider(false);
        assert!(!format!("{p:?}").contains(&p.key().private_base64url()));
    }

    #[tokio::test]
    async fn refused_before_any_request() {
        let p = provider(false);
        let user_key = VapidKey::generate().public_base64url();
        let web = |endpoint: &str| PushSubscription::Web {
            endpoint: endpoint.into(),
            p256dh: user_key.clone(),
            auth: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        };
        for (sub, why) in [
            (
                PushSubscription::Android { token: "t".into() },
                "unsupported platform",
            ),
            (
                PushSubscription::Ios { token: "t".into() },
                "unsupported platform",
            ),
            (web("http://127.0.0.1:9/p"), "endpoint must be https"),
            (web("/relative"), "invalid endpoint"),
            (web("ftp://push.example/p"), "invalid endpoint"),
            (web("not a uri"), "invalid endpoint"),
        ] {
            match p.send(&sub, &note()).await {
                Err(PushError::Rejected(m)) => assert_eq!(m, why),
                other => panic!("{why}: {other:?}"),
            }
        }
        let bad_key = PushSubscription::Web {
            endpoint: "https://push.example/p".into(),
            p256dh: "AAAA".into(),
            auth: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        };
        assert!(matches!(
            p.send(&bad_key, &note()).await,
            Err(PushError::Rejected(_))
        ));
    }

    #[tokio::test]
    async fn unreachable_service_is_transient() {
        // Bind then drop a listener: its port refuses connections.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let p = with_private(true, true);
        let sub = PushSubscription::Web {
            endpoint: format!("http://127.0.0.1:{port}/p"),
            p256dh: VapidKey::generate().public_base64url(),
            auth: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        };
        match p.send(&sub, &note()).await {
            Err(PushError::Transient(m)) => assert!(!m.contains("127.0.0.1"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn private_hosts_are_never_connected_to() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((_stream, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        let p = provider(true);
        for endpoint in [
            format!("http://localhost:{port}/p"),
            format!("http://127.0.0.1:{port}/p"),
            format!("http://[::ffff:127.0.0.1]:{port}/p"),
        ] {
            let sub = PushSubscription::Web {
                endpoint,
                p256dh: VapidKey::generate().public_base64url(),
                auth: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            };
            let outcome = p.send(&sub, &note()).await;
            assert!(matches!(outcome, Err(PushError::NotPublic)), "{outcome:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0);
        task.abort();
    }
}
