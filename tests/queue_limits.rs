//! Queue overflow and expiry reach a reconnecting device as `gap` frames (PROTOCOL §5.3).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::realtime::{connect, online, pair, relay, Target};
use common::{test_config, TestServer};
use melo::MemoryStore;

async fn server(queue_max: u64, queue_ttl: u64) -> TestServer {
    let mut cfg = test_config();
    cfg.messages.queue_max = queue_max;
    cfg.messages.queue_ttl = queue_ttl;
    cfg.messages.sweep_interval_secs = 1;
    TestServer::start_with(cfg, Arc::new(MemoryStore::new())).await
}

#[tokio::test]
async fn overflow_becomes_one_gap_then_the_newest_entries() {
    let s = server(5, 3600).await;
    let t = Target::of(&s);
    let (a, b) = pair(&t, "Alice", "Bob").await;
    let mut wa = online(&t, &a).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(relay(&mut wa, &a, &b, &format!("m{i}"), &format!("c{i}")).await);
    }
    // Let a sweep run (every second).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (mut wb, sync) = connect(&t, &b).await;
    let frames = &sync.backlog;
    assert_eq!(frames.len(), 5, "gap + 4 newest: {frames:?}");
    let gap = &frames[0];
    assert_eq!(gap["type"], "gap", "{gap}");
    assert_eq!(gap["reason"], "overflow");
    assert_eq!(gap["count"], 6);
    assert_eq!(gap["to_seq"], gap["seq"]);
    let first = gap["from_seq"].as_i64().expect("from_seq");
    let to = gap["to_seq"].as_i64().expect("to_seq");
    assert_eq!(to - first + 1, 6);
    for (i, f) in frames[1..].iter().enumerate() {
        assert_eq!(f["type"], "relay_delivery");
        assert_eq!(f["message_id"], ids[6 + i].as_str());
        assert_eq!(
            f["seq"].as_i64(),
            Some(to + 1 + i as i64),
            "consecutive after the gap"
        );
    }
    assert_eq!(sync.count, 5);
    wb.ack_all().await;
    wb.close().await;
    wa.close().await;
    s.stop().await;
}

#[tokio::test]
async fn expired_entries_become_a_gap() {
    let s = server(10_000, 1).await;
    let t = Target::of(&s);
    let (a, b) = pair(&t, "Alice", "Bob").await;
    let mut wa = online(&t, &a).await;
    for i in 0..3 {
        relay(&mut wa, &a, &b, &format!("old{i}"), &format!("o{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let (wb, sync) = connect(&t, &b).await;
    assert_eq!(sync.backlog.len(), 1, "{:?}", sync.backlog);
    let gap = &sync.backlog[0];
    assert_eq!(
        (&gap["type"], &gap["reason"], &gap["count"]),
        (&"gap".into(), &"expired".into(), &3.into())
    );
    wb.ack_and_close().await;
    wa.close().await;
    s.stop().await;
}

/// Entries dropped by the sweep while in flight must not hold the 256-frame window shut.
#[tokio::test]
async fn a_full_window_of_dropped_entries_does_not_stall_the_socket() {
    let s = server(5, 3600).await;
    let t = Target::of(&s);
    let (a, b) = pair(&t, "Alice", "Bob").await;
    let (mut wb, _) = connect(&t, &b).await;
    for i in 0..300 {
        common::realtime::http_send(&t, &a, &b, &format!("m{i}")).await;
    }
    // B receives a full window and does not ack; the sweep then drops those entries.
    let mut last = 0;
    for _ in 0..256 {
        let f = wb
            .recv_type("relay_delivery", Duration::from_secs(10))
            .await;
        last = f["seq"].as_i64().expect("seq");
    }
    wb.expect_no_frame("relay_delivery", Duration::from_millis(300))
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Acking one dropped entry by seq frees the window: new messages arrive again.
    wb.send_json(&serde_json::json!({"type": "ack_received", "seq": last}))
        .await;
    let id = common::realtime::http_send(&t, &a, &b, "after").await;
    let f = wb
        .recv_where(
            "the new message",
            |f| f["type"] == "relay_delivery" && f["message_id"] == id.as_str(),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(f["payload"], "after");
    wb.close().await;
    s.stop().await;
}
