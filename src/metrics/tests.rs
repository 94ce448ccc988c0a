//! Unit tests of the metric families: bounded labels, frame types, build info.
use std::collections::BTreeMap;

use super::*;

#[test]
fn renders_families_with_bounded_labels() {
    let m = Metrics::new().expect("metrics");
    m.http(&http::Method::GET, "/status", 200, 0.001);
    m.frame(true, "relay");
    m.frame(true, "attacker-chosen-type-123");
    m.message_stored(false);
    m.limited(Limit::Http);
    let text = String::from_utf8(m.render().expect("render")).expect("utf8");
    assert!(text
        .contains("melo_http_requests_total{method=\"GET\",route=\"/status\",status=\"200\"} 1"));
    assert!(text.contains("melo_http_request_duration_seconds_bucket"));
    assert!(text.contains("melo_ws_frames_total{direction=\"in\",type=\"relay\"} 1"));
    assert!(text.contains("melo_ws_frames_total{direction=\"in\",type=\"other\"} 1"));
    assert!(!text.contains("attacker"));
    assert!(text.contains("melo_messages_stored_total{kind=\"dm\"} 1"));
    assert!(text.contains("melo_rate_limited_total{kind=\"http\"} 1"));
    assert!(text.contains("# TYPE melo_ws_connections gauge"));
}

/// The `type` label and value of every `melo_ws_frames_total` series of `direction`.
fn frame_series(text: &str, direction: &str) -> BTreeMap<String, f64> {
    let prefix = format!("melo_ws_frames_total{{direction=\"{direction}\",type=\"");
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .filter_map(|rest| {
            let (kind, value) = rest.split_once("\"} ")?;
            Some((kind.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Every frame type the server decodes has its own `in` label and every type it sends its
/// own `out` label; the labels are those types and `other`, nothing else.
#[test]
fn frame_labels_are_the_frame_types() {
    let m = Metrics::new().expect("metrics");
    for kind in frames::client_types() {
        m.frame(true, kind);
    }
    for kind in frames::server_types() {
        m.frame(false, kind);
    }
    // Names no code knows (some were labels once) count as `other`.
    for kind in ["relay_message", "ack", "typing", "set_status", "call_offer"] {
        m.frame(true, kind);
    }
    let text = String::from_utf8(m.render().expect("render")).expect("utf8");
    for (direction, types, others) in [
        ("in", frames::client_types().collect::<Vec<_>>(), 5.0),
        ("out", frames::server_types().collect(), 0.0),
    ] {
        let mut want: BTreeMap<String, f64> =
            types.iter().map(|t| ((*t).to_owned(), 1.0)).collect();
        want.insert("other".to_owned(), others);
        assert_eq!(frame_series(&text, direction), want, "{direction}");
    }
    // The dispatcher's types: `get_history` and the call frames are labelled by name.
    let received = frame_series(&text, "in");
    for kind in [
        "get_history",
        "ack_read",
        "call_signal",
        "ice",
        "call_end_state",
    ] {
        assert_eq!(received.get(kind), Some(&1.0), "{kind}");
    }
}

#[test]
fn build_info_names_this_build() {
    let m = Metrics::new().expect("metrics");
    let text = String::from_utf8(m.render().expect("render")).expect("utf8");
    let line = text
        .lines()
        .find(|l| l.starts_with("melo_build_info{"))
        .expect("build_info");
    assert!(line.ends_with("} 1"), "{line}");
    let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(line.contains(&version), "{line}");
    assert!(
        line.contains(&format!("features=\"{}\"", features())),
        "{line}"
    );
}

/// An embedder's registry that already has the `process_*` families keeps them.
#[cfg(target_os = "linux")]
#[test]
fn an_embedders_process_families_are_kept() {
    let r = Registry::new();
    let theirs = process::ProcessCollector::new().expect("collector");
    r.register(Box::new(theirs)).expect("register");
    let m = Metrics::with_registry(r).expect("metrics");
    let text = String::from_utf8(m.render().expect("render")).expect("utf8");
    let declared = text
        .lines()
        .filter(|l| *l == "# TYPE process_open_fds gauge")
        .count();
    assert_eq!(declared, 1, "{text}");
}

#[test]
fn unknown_status_and_method_are_bucketed() {
    assert_eq!(status_label(418), "other");
    assert_eq!(status_label(429), "429");
    let m = http::Method::from_bytes(b"BREW").expect("method");
    assert_eq!(method_label(&m), "other");
}
