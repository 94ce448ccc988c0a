//! DM receipts (PROTOCOL §5.3): one `delivered` per DM however many devices of the recipient
//! acknowledge it, never a `delivered` after the `read`, and the same once the node that stored
//! the message has forgotten it (a restart over the same store).

mod common;

use std::sync::Arc;

use common::realtime::{connect, delivery, http_send, online, pair, relay, second_device, Target};
use common::ws::{is, WsClient};
use common::{test_config, TestServer};
use melo::{MemoryStore, Store};
use serde_json::{json, Value};

fn status_of<'a>(status: &'a str, id: &'a str) -> impl Fn(&Value) -> bool + 'a {
    move |f| is(f, "msg_status") && f["status"] == status && f["message_id"] == id
}

/// Reads frames on `ws` until the `status` of `id`, and returns the other statuses of `id` seen
/// on the way.
async fn until_status(ws: &mut WsClient, status: &str, id: &str) -> Vec<String> {
    let mut before = Vec::new();
    loop {
        let f = ws
            .recv_where(
                &format!("msg_status {status} of {id}"),
                |f| is(f, "msg_status") && f["message_id"] == id,
                common::ws::WAIT,
            )
            .await;
        let s = f["status"].as_str().unwrap_or_default().to_owned();
        if s == status {
            return before;
        }
        before.push(s);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_delivered_per_dm_and_none_after_read() {
    let s = TestServer::start().await;
    let t = Target::of(&s);
    let (a, b) = pair(&t, "Alice", "Bob").await;
    let b2 = second_device(&t, &b).await;
    let mut wa = online(&t, &a).await;
    let mut wb = online(&t, &b).await;
    let mut wb2 = online(&t, &b2).await;

    // Both of B's devices acknowledge M1: A hears `delivered` once.
    let m1 = relay(&mut wa, &a, &b, "D-1", "d-1").await;
    for ws in [&mut wb, &mut wb2] {
        assert_eq!(delivery(ws, &a, &b).await["message_id"], m1.as_str());
        ws.ack_all().await;
    }
    assert!(until_status(&mut wa, "delivered", &m1).await.is_empty());
    wa.expect_no(
        "a second delivered of M1",
        status_of("delivered", &m1),
        t.quiet,
    )
    .await;

    // B reads M2 before any device acknowledges it: `delivered` then `read`, and the
    // acknowledgements that follow add nothing.
    let m2 = relay(&mut wa, &a, &b, "D-2", "d-2").await;
    for ws in [&mut wb, &mut wb2] {
        assert_eq!(delivery(ws, &a, &b).await["message_id"], m2.as_str());
    }
    wb.send_json(&json!({"type": "ack_read", "message_id": m2}))
        .await;
    assert!(until_status(&mut wa, "delivered", &m2).await.is_empty());
    assert!(until_status(&mut wa, "read", &m2).await.is_empty());
    wb.ack_all().await;
    wb2.ack_all().await;
    wa.expect_no(
        "a delivered of M2 after its read",
        status_of("delivered", &m2),
        t.quiet,
    )
    .await;

    wa.ack_and_close().await;
    wb.close().await;
    wb2.close().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_of_dms_stored_before_a_restart() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let s = TestServer::start_with(test_config(), store.clone()).await;
    let t = Target::of(&s);
    let (a, b) = pair(&t, "Alice", "Bob").await;
    let b2 = second_device(&t, &b).await;
    let m1 = http_send(&t, &a, &b, "R-1").await;
    let m2 = http_send(&t, &a, &b, "R-2").await;
    s.stop().await;

    // A new node over the same store knows nothing of M1 and M2 but what the store says.
    let s = TestServer::start_with(test_config(), store).await;
    let t = Target::of(&s);
    let (mut wb, sync) = connect(&t, &b).await;
    assert_eq!(sync.backlog.len(), 2, "{:?}", sync.backlog);
    wb.send_json(&json!({"type": "ack_read", "message_id": m2}))
        .await;
    wb.ack_all().await;
    wb.ping().await;
    // B's other device has both messages and the copy of B's own `read`.
    let (wb2, sync) = connect(&t, &b2).await;
    let deliveries = sync.backlog.iter().filter(|f| is(f, "relay_delivery"));
    assert_eq!(deliveries.count(), 2, "{:?}", sync.backlog);
    wb2.ack_and_close().await;
    wb.close().await;

    let (mut wa, sync) = connect(&t, &a).await;
    let count = |status: &str, id: &str| {
        sync.backlog
            .iter()
            .filter(|f| status_of(status, id)(f))
            .count()
    };
    assert_eq!(
        (count("delivered", &m1), count("read", &m1)),
        (1, 0),
        "{:?}",
        sync.backlog
    );
    assert_eq!(
        (count("delivered", &m2), count("read", &m2)),
        (1, 1),
        "{:?}",
        sync.backlog
    );
    wa.expect_no("a later status", |f| is(f, "msg_status"), t.quiet)
        .await;
    wa.ack_and_close().await;
    s.stop().await;
}
