//! Unit tests of the cluster notes and presence merge.
use super::*;
use crate::crypto::Pii;
use crate::model::MessageId;

fn uid(n: u32) -> UserId {
    UserId::new(n).expect("uid")
}

fn cluster() -> Cluster {
    Cluster::new(
        crate::metrics::Metrics::new()
            .expect("metrics")
            .bus_meters(),
    )
}

#[test]
fn notes_round_trip() {
    let notes = [
        Note::Durable {
            base: Bytes::from_static(br#"{"type":"x"}"#),
            meta: EntryMeta::default(),
            to: vec![(uid(10_000_001), SessionId(7), 3)],
        },
        Note::Durable {
            base: Bytes::from_static(br#"{"type":"relay_delivery"}"#),
            meta: EntryMeta {
                message: Some(MessageId::new()),
                receipt: true,
            },
            to: vec![
                (uid(10_000_001), SessionId(7), 3),
                (uid(10_000_002), SessionId(9), 4),
            ],
        },
        Note::Ephemeral {
            user: uid(10_000_003),
            skip: Some(SessionId(2)),
            frame: Bytes::from_static(b"{}"),
        },
        Note::Ephemeral {
            user: uid(10_000_003),
            skip: None,
            frame: Bytes::from_static(b"{}"),
        },
        Note::ToSession {
            user: uid(10_000_004),
            session: SessionId(5),
            frame: Bytes::from_static(b"{\"a\":1}"),
        },
        Note::Close {
            user: uid(10_000_005),
            session: SessionId(6),
            code: 1008,
            reason: "token_revoked",
        },
        Note::Invalidate(Invalidate::Sessions(uid(10_000_006))),
        Note::Invalidate(Invalidate::Contacts(uid(10_000_006), uid(10_000_007))),
        Note::Invalidate(Invalidate::ChatMembers(42)),
        Note::Presence {
            user: uid(10_000_008),
            state: NodePresence::Away,
            sessions: vec![SessionId(3), SessionId(4)],
        },
        Note::Heartbeat,
        Note::Resync,
    ];
    for n in notes {
        let (origin, back) = Note::decode(n.encode(99)).expect("decodes");
        assert_eq!((origin, back), (99, n));
    }
}

#[test]
fn bundles_round_trip() {
    let notes: Vec<Bytes> = (0..3)
        .map(|i| Note::Invalidate(Invalidate::ChatMembers(i)).encode(7))
        .collect();
    assert_eq!(unbundle(bundle(&notes)), notes);
    let single = Note::Heartbeat.encode(7);
    assert_eq!(unbundle(single.clone()), vec![single]);
    assert!(unbundle(Bytes::from_static(b"\x02\0\0\0\x05\0\0\0\x09ab")).is_empty());
}

#[test]
fn garbage_is_ignored() {
    for raw in [
        &b""[..],
        b"\x01",
        b"\x02\0\0\0\0\0\0\0\x01\x07",
        b"\x01\0\0\0\0\0\0\0\x01\x01\xff\xff\xff\xff",
        b"\x01\0\0\0\0\0\0\0\x01\x09",
    ] {
        assert!(
            Note::decode(Bytes::copy_from_slice(raw)).is_none(),
            "{raw:?}"
        );
    }
}

#[test]
fn remote_presence_merges_live_nodes_only() {
    let c = cluster();
    let u = uid(10_000_009);
    assert_eq!(c.remote_away(u), None);
    c.set_remote(5, u, NodePresence::Away, vec![SessionId(1)]);
    assert_eq!(c.remote_away(u), None, "node 5 never heard from");
    assert!(!c.remote_has_session(u, SessionId(1)));
    c.heard.insert(5, Instant::now());
    assert_eq!(c.remote_away(u), Some(true));
    assert!(c.remote_has_session(u, SessionId(1)));
    assert!(!c.remote_has_session(u, SessionId(2)));
    c.set_remote(6, u, NodePresence::Online, vec![SessionId(2)]);
    c.heard.insert(6, Instant::now());
    assert_eq!(c.remote_away(u), Some(false));
    c.set_remote(6, u, NodePresence::Offline, Vec::new());
    c.set_remote(5, u, NodePresence::Offline, Vec::new());
    assert_eq!(c.remote_away(u), None);
    assert!(c.remote.is_empty());
}

#[test]
fn bus_messages_are_sealed() {
    use crate::crypto::{DataKeys, JwtKey, StaticKeys};
    let keys = StaticKeys::new(JwtKey::generate(0).expect("key"), DataKeys::generate());
    let other = Pii::new(std::sync::Arc::new(
        keys.with_data_keys(DataKeys::generate()),
    ));
    let pii = Pii::new(std::sync::Arc::new(keys));
    let note = Note::Ephemeral {
        user: uid(10_000_001),
        skip: None,
        frame: Bytes::from_static(br#"{"type":"x","from_nickname":"zebnick"}"#),
    }
    .encode(3);
    let msg = bundle(&[note.clone(), note]);
    let sealed = seal(&pii, &msg).expect("seal");
    assert!(!sealed.windows(7).any(|w| w == b"zebnick"), "ciphertext");
    assert_eq!(open(&pii, &sealed), Some(msg.clone()));
    assert_eq!(open(&other, &sealed), None, "another deployment's keys");
    assert_eq!(open(&pii, &msg), None, "an unsealed message");
}

#[test]
fn replayed_and_stale_bus_messages_are_refused() {
    use crate::crypto::{DataKeys, JwtKey, StaticKeys};
    let keys = StaticKeys::new(JwtKey::generate(0).expect("key"), DataKeys::generate());
    let pii = Pii::new(std::sync::Arc::new(keys));
    let (a, b, receiver) = (cluster(), cluster(), cluster());
    let a1 = a.seal_message(&pii, ALL, b"one").expect("seal");
    let a2 = a.seal_message(&pii, ALL, b"two").expect("seal");
    let b1 = b.seal_message(&pii, ALL, b"bee").expect("seal");
    assert_eq!(
        receiver
            .open_message(&pii, &a1)
            .map(|(_, b, _)| b)
            .as_deref(),
        Some(&b"one"[..])
    );
    assert_eq!(receiver.open_message(&pii, &a1), None, "a replay");
    assert_eq!(
        receiver
            .open_message(&pii, &b1)
            .map(|(_, b, _)| b)
            .as_deref(),
        Some(&b"bee"[..])
    );
    assert_eq!(
        receiver
            .open_message(&pii, &a2)
            .map(|(_, b, _)| b)
            .as_deref(),
        Some(&b"two"[..])
    );
    assert_eq!(receiver.open_message(&pii, &a1), None, "an older one");
    // A message sealed a minute ago (stamped by hand) is stale.
    let mut old = Vec::new();
    old.extend_from_slice(&77u64.to_be_bytes());
    old.extend_from_slice(&ALL.to_be_bytes());
    old.extend_from_slice(&1u64.to_be_bytes());
    old.extend_from_slice(&(crate::model::Timestamp::now().millis() - 60_000).to_be_bytes());
    old.extend_from_slice(b"late");
    let old = seal(&pii, &old).expect("seal");
    assert_eq!(receiver.open_message(&pii, &old), None, "stale");
    // Too short to carry a stamp.
    let short = seal(&pii, b"x").expect("seal");
    assert_eq!(receiver.open_message(&pii, &short), None);
}

/// A node's message counter that skips ahead means its messages (and the cache invalidations
/// they carried) were lost: the receiver is told, once, so it flushes its caches. A note the
/// sender itself dropped (full publish queue) shows up as such a skip too.
#[test]
fn lost_bus_messages_are_detected() {
    use crate::crypto::{DataKeys, JwtKey, StaticKeys};
    let keys = StaticKeys::new(JwtKey::generate(0).expect("key"), DataKeys::generate());
    let pii = Pii::new(std::sync::Arc::new(keys));
    let metrics = crate::metrics::Metrics::new().expect("metrics");
    let (a, receiver) = (cluster(), Cluster::new(metrics.bus_meters()));
    let m1 = a.seal_message(&pii, ALL, b"one").expect("seal");
    let m2 = a.seal_message(&pii, ALL, b"two").expect("seal");
    let _lost = a.seal_message(&pii, ALL, b"lost").expect("seal");
    let m4 = a.seal_message(&pii, ALL, b"four").expect("seal");
    // The first message heard from a node says nothing about earlier ones.
    assert_eq!(
        receiver.open_message(&pii, &m2).map(|(_, _, gap)| gap),
        Some(false)
    );
    assert_eq!(receiver.open_message(&pii, &m1), None, "older");
    assert_eq!(
        receiver.open_message(&pii, &m4).map(|(_, _, gap)| gap),
        Some(true)
    );
    assert_eq!(receiver.gaps(), 1);
    // A note dropped before it was sealed also leaves a hole in the counter.
    a.note_dropped(ALL);
    let m6 = a.seal_message(&pii, ALL, b"six").expect("seal");
    assert_eq!(
        receiver.open_message(&pii, &m6).map(|(_, _, gap)| gap),
        Some(true)
    );
    assert_eq!(receiver.gaps(), 2);
    // Exported: two gaps on the shared topic, of one message each; three messages received.
    let text = String::from_utf8(metrics.render().expect("render")).expect("utf-8");
    for line in [
        "melo_bus_gaps_total{topic=\"all\"} 2",
        "melo_bus_gaps_total{topic=\"node\"} 0",
        "melo_bus_missed_messages_total 2",
        "melo_bus_message_age_seconds_count 3",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
}

/// A message addressed to one node opens there only; the counters of the shared topic and of a
/// node's own topic are separate, so interleaving them shows no loss, and a message moved from
/// one node's topic to another's is refused.
#[test]
fn addressed_messages_open_only_at_their_node() {
    use crate::crypto::{DataKeys, JwtKey, StaticKeys};
    let keys = StaticKeys::new(JwtKey::generate(0).expect("key"), DataKeys::generate());
    let pii = Pii::new(std::sync::Arc::new(keys));
    let (a, b, c) = (cluster(), cluster(), cluster());
    let to_b = a.seal_message(&pii, b.node(), b"for b").expect("seal");
    let to_all = a.seal_message(&pii, ALL, b"for all").expect("seal");
    let to_b2 = a
        .seal_message(&pii, b.node(), b"for b again")
        .expect("seal");
    let to_c = a.seal_message(&pii, c.node(), b"for c").expect("seal");
    let open = |at: &Cluster, m: &[u8]| at.open_message(&pii, m);
    assert_eq!(
        open(&b, &to_b),
        Some((a.node(), Bytes::from_static(b"for b"), false))
    );
    assert_eq!(open(&b, &to_all).map(|(_, _, gap)| gap), Some(false));
    assert_eq!(
        open(&b, &to_b2).map(|(_, _, gap)| gap),
        Some(false),
        "no false loss"
    );
    assert_eq!(open(&b, &to_c), None, "meant for another node");
    assert_eq!(open(&c, &to_b), None, "moved to another node's topic");
    assert!(open(&c, &to_c).is_some());
    assert_eq!(b.gaps(), 0);
    // On a node's own topic the counter starts at 1: a first message numbered 2 shows a loss.
    let d = cluster();
    let _lost = a.seal_message(&pii, d.node(), b"lost").expect("seal");
    let second = a.seal_message(&pii, d.node(), b"second").expect("seal");
    assert_eq!(open(&d, &second).map(|(_, _, gap)| gap), Some(true));
}

/// Durable frames go to the nodes that hold a socket of one of their devices, each with its
/// own devices; nodes not heard from lately and devices without a socket elsewhere get none.
#[test]
fn durable_frames_are_routed_to_the_nodes_holding_their_sockets() {
    let c = cluster();
    let (u1, u2, u3) = (uid(10_000_011), uid(10_000_012), uid(10_000_013));
    let d = |u, s: i64, seq| (u, SessionId(s), seq);
    assert!(c.route(vec![d(u1, 1, 5)]).is_empty(), "no other node");
    c.heard.insert(5, Instant::now());
    c.heard.insert(7, Instant::now());
    c.set_remote(5, u1, NodePresence::Online, vec![SessionId(1)]);
    c.set_remote(7, u2, NodePresence::Online, vec![SessionId(2)]);
    c.set_remote(9, u3, NodePresence::Online, vec![SessionId(3)]);
    // One node: the list as it is.
    assert_eq!(
        c.route(vec![d(u1, 1, 5), d(u1, 4, 6)]),
        vec![(5, vec![d(u1, 1, 5), d(u1, 4, 6)])]
    );
    // Two nodes: each its own devices. Node 9 was never heard from.
    let mut routed = c.route(vec![d(u1, 1, 5), d(u2, 2, 6), d(u3, 3, 7)]);
    routed.sort_by_key(|(n, _)| *n);
    assert_eq!(routed, vec![(5, vec![d(u1, 1, 5)]), (7, vec![d(u2, 2, 6)])]);
    assert!(c.route(vec![d(u3, 3, 7)]).is_empty());
    // A node that went quiet gets nothing.
    c.heard.insert(7, Instant::now() - NODE_TIMEOUT);
    assert_eq!(c.route(vec![d(u2, 2, 6)]), Vec::new());
}
