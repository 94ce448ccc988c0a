//! The frame `type` lists ([`client_types`], [`server_types`]) are exactly the types the code
//! decodes and sends: the metrics label frames by them (`melo_ws_frames_total{type}`).

use std::collections::{BTreeMap, BTreeSet};

use super::call::{CallForward, CallKind};
use super::*;
use crate::model::{MessageId, Timestamp, UserId};
use crate::service::WsReason;

fn uid(n: u32) -> UserId {
    UserId::new(n).expect("uid")
}

/// The index of `f`'s variant. Exhaustive: a new variant does not compile until it has an
/// index here, and then [`every_server_frame_type_is_listed`] fails until it has an example.
fn variant(f: &ServerFrame<'_>) -> usize {
    match f {
        ServerFrame::RelayDelivery(_) => 0,
        ServerFrame::MsgStatus(_) => 1,
        ServerFrame::Gap(_) => 2,
        ServerFrame::SubscriptionRequest(_) => 3,
        ServerFrame::SubscriptionConfirmed(_) => 4,
        ServerFrame::SubscriptionRemoved(_) => 5,
        ServerFrame::Edit(_) => 6,
        ServerFrame::Delete(_) => 7,
        ServerFrame::Pin(_) => 8,
        ServerFrame::React(_) => 9,
        ServerFrame::ChatMember(_) => 10,
        ServerFrame::KeyChanged(_) => 11,
        ServerFrame::Pong(_) => 12,
        ServerFrame::SyncDone(_) => 13,
        ServerFrame::Error(_) => 14,
        ServerFrame::History(_) => 15,
        ServerFrame::StatusChange(_) => 16,
        ServerFrame::TypingStart(_) => 17,
        ServerFrame::TypingStop(_) => 18,
        ServerFrame::SlowMode(_) => 19,
        ServerFrame::CallState(_) => 20,
        ServerFrame::Call(_) => 21,
        ServerFrame::MessagesRead(_) => 22,
    }
}

/// Variants of [`ServerFrame`] (one more than the last index of [`variant`]).
const VARIANTS: usize = 23;

/// The `type` of an encoded frame.
fn type_of(frame: &ServerFrame<'_>) -> String {
    let v: serde_json::Value = serde_json::from_slice(&to_bytes(frame)).expect("json");
    v["type"].as_str().expect("a string type").to_owned()
}

#[test]
fn every_server_frame_type_is_listed() {
    let (me, peer, ts) = (uid(53_380_488), uid(87_654_321), Timestamp::from_millis(1));
    let mid: MessageId = "01932f6e5a7b7c3d9e4b2a1f0c9d8e7f".parse().expect("id");
    let contacts = BTreeMap::new();
    let message = RelayDelivery {
        message_id: mid,
        from: me,
        to: Some(peer),
        chat_id: None,
        payload: "p",
        signature: None,
        ts,
        self_copy: false,
        system: false,
    };
    let status = MsgStatus {
        message_id: mid,
        status: "queued",
        from: me,
        to: Some(peer),
        chat_id: None,
        client_id: None,
        ts,
        duplicate: false,
        self_copy: false,
    };
    let contact = ContactEvent {
        from_id: me,
        from_phone: None,
        from_nickname: None,
        secret: None,
        ts,
    };
    let event = MessageEvent {
        message_id: mid,
        from: me,
        to: Some(peer),
        chat_id: None,
        payload: None,
        pinned: None,
        reaction: None,
        ts,
        self_copy: false,
    };
    let typing = || Typing {
        user_id: me,
        chat_id: None,
        timestamp: ts,
    };
    let mut examples = vec![
        ServerFrame::RelayDelivery(message),
        ServerFrame::MsgStatus(status),
        ServerFrame::Gap(Gap {
            from_seq: 1,
            to_seq: 2,
            count: 2,
            reason: "expired",
            ts,
        }),
        ServerFrame::SubscriptionRequest(contact),
        ServerFrame::SubscriptionConfirmed(contact),
        ServerFrame::SubscriptionRemoved(contact),
        ServerFrame::Edit(event),
        ServerFrame::Delete(event),
        ServerFrame::Pin(event),
        ServerFrame::React(event),
        ServerFrame::ChatMember(ChatMemberEvent {
            chat_id: 5,
            user_id: peer,
            action: "added",
            role: "member",
            by: me,
            ts,
        }),
        ServerFrame::KeyChanged(KeyChanged {
            user_id: me,
            public_e2e_key: "k",
            ts,
        }),
        ServerFrame::Pong(Pong {
            contacts_status: &contacts,
            server_version: "0",
            timestamp: ts,
        }),
        ServerFrame::SyncDone(SyncDone {
            count: 0,
            last_seq: 0,
            ts,
        }),
        ServerFrame::Error(ErrorFrame {
            reason: WsReason::InvalidFrame,
            message: "m",
            reference: None,
        }),
        ServerFrame::History(History {
            target: Some(peer),
            chat_id: None,
            messages: &[],
            items: &[],
            has_more: false,
            next_before: None,
        }),
        ServerFrame::StatusChange(StatusChange {
            user_id: me,
            status: "online",
            timestamp: ts,
        }),
        ServerFrame::TypingStart(typing()),
        ServerFrame::TypingStop(typing()),
        ServerFrame::MessagesRead(MessagesRead {
            user_id: me,
            chat_id: 5,
            last_read_message_id: "01932f6e5a7b7c3d9e4b2a1f0c9d8e7f",
            timestamp: ts,
        }),
        ServerFrame::SlowMode(SlowMode {
            status: "rate_limited",
            chat_id: Some(5),
            client_id: None,
            retry_after: 1,
            ts,
        }),
        ServerFrame::CallState(CallState {
            call_id: "c",
            state: "ringing",
            from: me,
            to: peer,
            ts,
            reason: None,
        }),
    ];
    // A forwarded call frame keeps the sender's type: one of each.
    examples.extend(CallKind::ALL.iter().map(|kind| {
        ServerFrame::Call(CallForward {
            kind: *kind,
            call_id: "c",
            from: me,
            target: peer,
            media: None,
            payload: None,
            sdp: None,
            candidate: None,
            client_id: None,
            ts,
        })
    }));
    let covered: BTreeSet<usize> = examples.iter().map(variant).collect();
    assert_eq!(covered, (0..VARIANTS).collect(), "one example per variant");
    let listed: BTreeSet<&str> = server_types().collect();
    assert_eq!(listed.len(), server_types().count(), "a type listed twice");
    let sent: BTreeSet<String> = examples.iter().map(type_of).collect();
    let listed: BTreeSet<String> = listed.into_iter().map(str::to_owned).collect();
    // Every type sent is listed, and every listed type is sent.
    assert_eq!(sent, listed);
}

#[test]
fn every_client_frame_type_is_listed_and_decoded() {
    let listed: Vec<&str> = client_types().collect();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "a type listed twice");
    // 9 plain types and the 15 of §5.7.
    assert_eq!(listed.len(), 24);
    for kind in &listed {
        // A bare frame of a listed type is decoded as that type: accepted, or refused for its
        // fields, never `unknown_type`.
        let text = format!(r#"{{"type":"{kind}"}}"#);
        let i = Incoming::decode(&text);
        assert_eq!(i.kind.as_deref(), Some(*kind));
        if let Err(r) = &i.frame {
            assert_ne!(r.reason, WsReason::UnknownType, "{kind}");
        }
    }
    // Names some clients guess, or the server sends, are not client frames.
    for kind in [
        "relay_message",
        "ack",
        "typing",
        "set_status",
        "call_offer",
        "ice_candidate",
        "relay_delivery",
        "pong",
    ] {
        let text = format!(r#"{{"type":"{kind}"}}"#);
        let r = Incoming::decode(&text).frame.expect_err(kind);
        assert_eq!(r.reason, WsReason::UnknownType, "{kind}");
    }
}

#[test]
fn wire_kinds_round_trip() {
    for k in client::ClientKind::ALL {
        assert_eq!(client::ClientKind::of(k.as_str()), Some(*k));
    }
    for k in CallKind::ALL {
        assert_eq!(CallKind::of(k.as_str()), Some(*k));
        // Serialized (a forwarded `type`, a `payload.signal`) as spelled.
        assert_eq!(
            serde_json::to_value(k).expect("json"),
            serde_json::json!(k.as_str())
        );
    }
}
