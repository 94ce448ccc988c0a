//! `GET /metrics` over real sockets (PROTOCOL §4.1): families move with traffic, labels carry
//! route templates and fixed words only, and the route answers `feature_disabled` when off.

mod common;

use std::sync::Arc;

use common::realtime::{make_contacts, online, relay, Target};
use common::ws::WAIT;
use common::{new_user, test_config, Client, TestServer};
use melo::{Ephemeral, MemoryEphemeral, MemoryStore, Store};
use serde_json::json;

/// The value of the sample `name{labels}` (exact label text), or 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

async fn scrape(c: &Client) -> String {
    let r = c.get("/metrics", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    String::from_utf8(r.raw.to_vec()).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_with_traffic() {
    let s = TestServer::start().await;
    let t = Target::of(&s);
    let c = &s.client;
    let before = scrape(c).await;
    let status = "melo_http_requests_total{method=\"GET\",route=\"/status\",status=\"200\"}";
    for _ in 0..2 {
        assert_eq!(c.get("/status", None).await.status, 200);
    }
    let a = new_user(c, "ma").await;
    let b = new_user(c, "mb").await;
    make_contacts(&t, &a, &b).await;
    // A path parameter is labelled by its template, never by the id in the path.
    let r = c.get(&format!("/avatar/{}", b.uid), Some(&a.token)).await;
    assert_eq!(r.status, 404);
    assert_eq!(c.get("/no/such/route", None).await.status, 404);

    let mut wa = online(&t, &a).await;
    let mut wb = online(&t, &b).await;
    let mid = relay(&mut wa, &a, &b, "Q1QtMQ==", "m-1").await;
    let d = wb.recv_type("relay_delivery", WAIT).await;
    assert_eq!(d["message_id"], mid.as_str());
    let during = scrape(c).await;
    assert_eq!(sample(&during, "melo_ws_connections"), 2.0, "{during}");
    // `/status` counts users with a socket on this node, for a signed-in caller only.
    let st = c.get("/status", Some(&a.token)).await;
    assert_eq!(st.body["services"]["websocket"], true);
    assert_eq!(st.body["websocket"]["connections"], 2, "{}", st.body);
    wb.send_json(&json!({"type": "ack_received", "message_id": mid}))
        .await;
    wa.recv_type("msg_status", WAIT).await;

    let after = scrape(c).await;
    assert_eq!(sample(&after, status) - sample(&before, status), 3.0);
    // Between the two scrapes: B's `ack_received` in, A's `msg_status` `delivered` out, each
    // under its own type.
    let moved = |series: &str| sample(&after, series) - sample(&during, series);
    assert_eq!(
        moved("melo_ws_frames_total{direction=\"in\",type=\"ack_received\"}"),
        1.0
    );
    assert_eq!(
        moved("melo_ws_frames_total{direction=\"out\",type=\"msg_status\"}"),
        1.0
    );
    assert_eq!(
        moved("melo_ws_frames_total{direction=\"in\",type=\"other\"}"),
        0.0
    );
    assert!(
        sample(
            &after,
            "melo_http_requests_total{method=\"GET\",route=\"/avatar/{user_unique_id}\",status=\"404\"}"
        ) >= 1.0,
        "{after}"
    );
    assert!(
        sample(
            &after,
            "melo_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}"
        ) >= 1.0
    );
    assert!(
        sample(
            &after,
            "melo_http_request_duration_seconds_count{method=\"GET\",route=\"/status\"}"
        ) >= 3.0
    );
    assert_eq!(
        sample(&after, "melo_messages_stored_total{kind=\"dm\"}"),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            "melo_ws_frames_total{direction=\"in\",type=\"relay\"}"
        ),
        1.0
    );
    assert!(
        sample(
            &after,
            "melo_ws_frames_total{direction=\"out\",type=\"relay_delivery\"}"
        ) >= 1.0
    );
    assert!(
        sample(
            &after,
            "melo_ws_frames_total{direction=\"out\",type=\"sync_done\"}"
        ) >= 2.0
    );
    assert!(sample(&after, "melo_deliveries_total{path=\"live\"}") >= 1.0);
    assert_eq!(
        sample(&after, "melo_receipts_total{status=\"delivered\"}"),
        1.0
    );
    assert!(sample(&after, "melo_ws_backlog_entries_count") >= 2.0);
    assert!(
        sample(
            &after,
            "melo_store_operation_duration_seconds_count{op=\"store_message\"}"
        ) >= 1.0
    );
    assert!(
        sample(
            &after,
            "melo_ephemeral_operation_duration_seconds_count{op=\"rate_limit\"}"
        ) >= 1.0
    );
    assert_eq!(
        sample(&after, "melo_store_errors_total{op=\"store_message\"}"),
        0.0
    );
    // No uid, phone or token in any label.
    for secret in [&a.uid, &b.uid, &a.phone, &a.token] {
        assert!(!after.contains(secret.as_str()), "{secret} in metrics");
    }

    wa.ack_and_close().await;
    wb.ack_and_close().await;
    // Closed sockets leave the gauges (the server notices the close asynchronously).
    let mut open = -1.0;
    for _ in 0..100 {
        let text = scrape(c).await;
        open = sample(&text, "melo_ws_connections");
        if open == 0.0 && sample(&text, "melo_ws_unacked_frames") == 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(open, 0.0);
    s.stop().await;
}

/// `/status` tells an anonymous caller (or one whose token does not verify) whether the server
/// and its backends are up, and nothing about its users: no count of who is online.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_only_for_signed_in_callers() {
    let s = TestServer::start().await;
    let t = Target::of(&s);
    let c = &s.client;
    let a = new_user(c, "sa").await;
    let b = new_user(c, "sb").await;
    make_contacts(&t, &a, &b).await;
    let wa = online(&t, &a).await;
    for token in [None, Some("not-a-token")] {
        let st = c.get("/status", token).await;
        assert_eq!(st.status, 200);
        assert_eq!(st.body["status"], "ok", "{}", st.body);
        assert_eq!(st.body["services"]["database"], true);
        assert_eq!(st.body["websocket"]["port"], st.body["ws_port"]);
        assert!(st.body["http_port"].is_u64(), "{}", st.body);
        let websocket = st.body["websocket"].as_object().expect("websocket");
        assert_eq!(
            websocket.keys().collect::<Vec<_>>(),
            ["port"],
            "{}",
            st.body
        );
        // No count anywhere in the answer.
        assert!(
            !String::from_utf8_lossy(&st.raw).contains("connections"),
            "{}",
            st.body
        );
    }
    let st = c.get("/status", Some(&b.token)).await;
    assert_eq!(st.body["websocket"]["connections"], 1, "{}", st.body);
    wa.ack_and_close().await;
    s.stop().await;
}

#[tokio::test]
async fn rate_limit_refusals_are_counted() {
    let mut config = test_config();
    config.limits.rate_limit_calls = 2;
    let s = TestServer::start_with(config, Arc::new(MemoryStore::new())).await;
    let c = &s.client;
    for _ in 0..2 {
        assert_eq!(c.get("/status", None).await.status, 200);
    }
    c.get("/status", None)
        .await
        .assert_error(429, "rate_limited");
    // /metrics itself is exempt from the budget.
    let text = scrape(c).await;
    assert_eq!(sample(&text, "melo_rate_limited_total{kind=\"http\"}"), 1.0);
    assert_eq!(
        sample(
            &text,
            "melo_http_requests_total{method=\"GET\",route=\"/status\",status=\"429\"}"
        ),
        1.0
    );
    s.stop().await;
}

#[tokio::test]
async fn disabled_metrics_answer_feature_disabled() {
    let mut config = test_config();
    config.metrics_enabled = false;
    let s = TestServer::start_with(config, Arc::new(MemoryStore::new())).await;
    s.client
        .get("/metrics", None)
        .await
        .assert_error(404, "feature_disabled");
    s.stop().await;
}

/// `/readyz` is answered from one check a second: a burst of probes pings the store once or
/// twice, not once per probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_probes_share_one_check() {
    let s = TestServer::start().await;
    let c = &s.client;
    let pings = "melo_store_operation_duration_seconds_count{op=\"ping\"}";
    let before = sample(&scrape(c).await, pings);
    let probes = (0..60).map(|_| c.get("/readyz", None));
    for r in futures_util::future::join_all(probes).await {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let after = sample(&scrape(c).await, pings);
    assert!(
        (1.0..=5.0).contains(&(after - before)),
        "60 probes pinged the store {} times",
        after - before
    );
    s.stop().await;
}

/// Two nodes on one bus (the in-memory one): each exports its bus's health. Messages from the
/// other node are counted and aged, each node asked the other to announce its sockets when it
/// first heard it (and was asked), nothing is dropped, and the publish queue drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_health_is_exported() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let eph: Arc<dyn Ephemeral> = Arc::new(MemoryEphemeral::new());
    let n1 = TestServer::start_node(test_config(), store.clone(), eph.clone()).await;
    let n2 = TestServer::start_node(test_config(), store, eph).await;
    let (t1, t2) = (Target::of(&n1), Target::of(&n2));
    let a = new_user(&n1.client, "ba").await;
    let b = new_user(&n2.client, "bb").await;
    make_contacts(&t1, &a, &b).await;
    let mut wa = online(&t1, &a).await;
    let mut wb = online(&t2, &b).await;
    // Delivered live across the nodes, or from B's queue (which a new socket re-reads).
    let mid = relay(&mut wa, &a, &b, "QlUtMQ==", "bu-1").await;
    let d = wb.recv_type("relay_delivery", WAIT).await;
    assert_eq!(d["message_id"], mid.as_str());
    let settled = |text: &str| {
        sample(text, "melo_bus_publish_queue_notes") == 0.0
            && sample(text, "melo_bus_messages_total{direction=\"in\"}") >= 1.0
            && sample(text, "melo_bus_resyncs_total{direction=\"in\"}") >= 1.0
            && sample(text, "melo_bus_resyncs_total{direction=\"out\"}") >= 1.0
    };
    for (node, c) in [("node 1", &n1.client), ("node 2", &n2.client)] {
        // Within a heartbeat (5 s) each node hears the other, asks it for its sockets and is
        // asked for its own.
        let mut text = String::new();
        for _ in 0..300 {
            text = scrape(c).await;
            if settled(&text) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(settled(&text), "{node}: {text}");
        let received = sample(&text, "melo_bus_messages_total{direction=\"in\"}");
        assert!(received >= 1.0, "{node}: {text}");
        let aged = sample(&text, "melo_bus_message_age_seconds_count");
        assert!(
            aged >= 1.0 && aged <= received + 1.0,
            "{node}: {aged} of {received}"
        );
        // Messages older than 30 s are refused: every age is within the last finite bucket.
        assert_eq!(
            sample(&text, "melo_bus_message_age_seconds_bucket{le=\"30\"}"),
            aged,
            "{node}: {text}"
        );
        for reason in ["queue_full", "seal_failed", "publish_failed"] {
            let series = format!("melo_bus_dropped_notes_total{{reason=\"{reason}\"}}");
            assert!(text.contains(&series), "{series}");
            assert_eq!(sample(&text, &series), 0.0, "{node}: {series}");
        }
    }
    wa.ack_and_close().await;
    wb.ack_and_close().await;
    n1.stop().await;
    n2.stop().await;
}
