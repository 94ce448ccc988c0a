//! Web Push end to end: `WebPushProvider` → a real local push service that verifies VAPID and
//! decrypts the body as a browser would.

#![cfg(feature = "web-push")]
#![allow(clippy::unwrap_used)]

#[path = "common/push_service.rs"]
mod push_service;

use std::time::Duration;

use melo::model::{MessageId, UserId};
use melo::push::{
    Notification, PushError, PushEvent, PushProvider, PushSubscription, VapidKey, WebPushOptions,
    WebPushProvider,
};
use push_service::PushService;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(5);

fn provider(allow_http: bool) -> WebPushProvider {
    WebPushProvider::new(
        VapidKey::generate(),
        "mailto:admin@localhost",
        WebPushOptions {
            allow_http,
            // The test push service listens on 127.0.0.1.
            allow_private: true,
            ..WebPushOptions::default()
        },
    )
    .unwrap()
}

fn subscription(service: &PushService, path: &str) -> PushSubscription {
    serde_json::from_value(service.subscription_json(path)).unwrap()
}

fn user() -> UserId {
    UserId::new(12345678).unwrap()
}

fn message_note() -> Notification {
    Notification {
        event: PushEvent::Message {
            message_id: MessageId::new(),
            chat_id: None,
        },
        user: user(),
        ttl: 86_400,
        urgent: false,
    }
}

fn call_note() -> Notification {
    Notification {
        event: PushEvent::Call {
            call_id: "c1".into(),
            from: user(),
        },
        user: user(),
        ttl: 30,
        urgent: true,
    }
}

#[tokio::test]
async fn delivers_encrypted_vapid_signed_notifications() {
    let service = PushService::start().await;
    let push = provider(true);
    let sub = subscription(&service, "/push/device-1");
    let notes = [message_note(), call_note()];
    for n in &notes {
        push.send(&sub, n).await.unwrap();
    }
    let got = service.wait_for(2, WAIT).await;
    assert_eq!(got.len(), 2);
    for (r, n) in got.iter().zip(&notes) {
        assert!(r.vapid_ok, "{:?}", r.error);
        assert_eq!(r.error, None);
        assert_eq!(r.path, "/push/device-1");
        assert_eq!(r.content_encoding.as_deref(), Some("aes128gcm"));
        assert_eq!(r.ttl, Some(n.ttl));
        let expected: Value = serde_json::from_slice(&n.payload()).unwrap();
        assert_eq!(r.payload, expected);
    }
    assert_eq!(got[0].urgency.as_deref(), Some("normal"));
    assert_eq!(got[1].urgency.as_deref(), Some("high"));
    assert_eq!(got[1].payload["type"], "call");
}

#[tokio::test]
async fn status_codes_map_to_errors() {
    let service = PushService::start().await;
    let push = provider(true);
    for (path, status) in [
        ("/gone", 410),
        ("/missing", 404),
        ("/broken", 500),
        ("/slow-down", 429),
        ("/bad", 400),
        ("/forbidden", 403),
    ] {
        service.respond_with(path, status);
    }
    let n = message_note();
    assert!(matches!(
        push.send(&subscription(&service, "/gone"), &n).await,
        Err(PushError::Gone)
    ));
    assert!(matches!(
        push.send(&subscription(&service, "/missing"), &n).await,
        Err(PushError::Gone)
    ));
    for path in ["/broken", "/slow-down"] {
        match push.send(&subscription(&service, path), &n).await {
            Err(e @ PushError::Transient(_)) => {
                assert!(!e.to_string().contains(&service.origin()), "{e}")
            }
            other => panic!("{path}: {other:?}"),
        }
    }
    for (path, code) in [("/bad", "400"), ("/forbidden", "403")] {
        match push.send(&subscription(&service, path), &n).await {
            Err(PushError::Rejected(m)) => {
                assert!(m.contains(code), "{m}");
                assert!(!m.contains(&service.origin()) && !m.contains(path), "{m}");
            }
            other => panic!("{path}: {other:?}"),
        }
    }
    // All of them reached the service with valid VAPID and a decryptable body.
    let got = service.wait_for(6, WAIT).await;
    assert!(got.iter().all(|r| r.vapid_ok && r.error.is_none()));
}

#[tokio::test]
async fn slow_service_times_out_as_transient() {
    let service = PushService::start().await;
    service.delay("/slow", Duration::from_secs(5));
    let push = WebPushProvider::new(
        VapidKey::generate(),
        "mailto:admin@localhost",
        WebPushOptions {
            timeout: Duration::from_millis(300),
            allow_http: true,
            allow_private: true,
            ..WebPushOptions::default()
        },
    )
    .unwrap();
    match push
        .send(&subscription(&service, "/slow"), &message_note())
        .await
    {
        Err(PushError::Transient(m)) => assert!(m.contains("timed out"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn plain_http_is_refused_unless_allowed() {
    let service = PushService::start().await;
    let push = provider(false);
    match push
        .send(&subscription(&service, "/push/1"), &message_note())
        .await
    {
        Err(PushError::Rejected(m)) => assert!(!m.contains(&service.origin()), "{m}"),
        other => panic!("{other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(service.received().is_empty());
}

#[tokio::test]
async fn bad_subscriptions_are_rejected_without_a_request() {
    let service = PushService::start().await;
    let push = provider(true);
    let n = message_note();
    let bad = [
        PushSubscription::Web {
            endpoint: service.endpoint("/p"),
            p256dh: "not-a-key".into(),
            auth: service.auth(),
        },
        PushSubscription::Web {
            // A valid base64url 65-byte string that is not a curve point.
            endpoint: service.endpoint("/p"),
            p256dh: format!("B{}", "A".repeat(86)),
            auth: service.auth(),
        },
        PushSubscription::Web {
            endpoint: service.endpoint("/p"),
            p256dh: service.p256dh(),
            auth: "c2hvcnQ".into(),
        },
        PushSubscription::Web {
            endpoint: "push/p".into(),
            p256dh: service.p256dh(),
            auth: service.auth(),
        },
        PushSubscription::Android { token: "t".into() },
        PushSubscription::Ios { token: "t".into() },
    ];
    for sub in &bad {
        assert!(
            matches!(push.send(sub, &n).await, Err(PushError::Rejected(_))),
            "{sub:?}"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(service.received().is_empty());
}
