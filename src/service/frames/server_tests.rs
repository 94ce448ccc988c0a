//! Every server frame of docs/protocol.md §5 encodes with `type` first and the documented fields.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::*;
use crate::model::{Message, MessageId, Timestamp, UserId};
use crate::service::hub::with_seq;
use crate::service::{ContactStatus, WsReason};

fn uid(n: u32) -> UserId {
    UserId::new(n).expect("uid")
}

fn ts() -> Timestamp {
    Timestamp::from_millis(1_761_038_102_481)
}

fn mid() -> MessageId {
    "01932f6e5a7b7c3d9e4b2a1f0c9d8e7f".parse().expect("id")
}

/// Encodes `frame`, checks that it starts with `{"type":"<kind>"` and has exactly `fields`
/// (besides `type`); returns the text.
fn check(frame: ServerFrame<'_>, kind: &str, fields: &[&str]) -> String {
    let bytes = to_bytes(&frame);
    let text = String::from_utf8(bytes.to_vec()).expect("utf-8");
    assert!(
        text.starts_with(&format!(r#"{{"type":"{kind}""#)),
        "type first: {text}"
    );
    let v: Value = serde_json::from_str(&text).expect("json");
    let keys: BTreeSet<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut want: BTreeSet<&str> = fields.iter().copied().collect();
    want.insert("type");
    assert_eq!(keys, want, "{text}");
    text
}

#[test]
fn durable_frames_of_5_5() {
    let dm = RelayDelivery {
        message_id: mid(),
        from: uid(53_380_488),
        to: Some(uid(87_654_321)),
        chat_id: None,
        payload: "eyJjaXBoZXJ0ZXh0Ijoi…",
        signature: None,
        ts: ts(),
        self_copy: false,
        system: false,
    };
    let text = check(
        ServerFrame::RelayDelivery(dm),
        "relay_delivery",
        &["message_id", "from", "to", "payload", "ts"],
    );
    // Byte for byte what the struct of old wrote.
    assert_eq!(
        text,
        r#"{"type":"relay_delivery","message_id":"01932f6e5a7b7c3d9e4b2a1f0c9d8e7f","from":"53380488","to":"87654321","payload":"eyJjaXBoZXJ0ZXh0Ijoi…","ts":"2025-10-21T09:15:02.481Z"}"#
    );
    // `seq` is spliced in front of `type`.
    let spliced = with_seq(text.as_bytes(), 42);
    assert!(spliced.starts_with(br#"{"seq":42,"type":"relay_delivery","#));
    let chat = RelayDelivery {
        to: None,
        chat_id: Some(5),
        signature: Some("sig"),
        self_copy: true,
        system: false,
        ..dm_like()
    };
    check(
        ServerFrame::RelayDelivery(chat),
        "relay_delivery",
        &[
            "message_id",
            "from",
            "chat_id",
            "payload",
            "signature",
            "ts",
            "self",
        ],
    );
    let status = MsgStatus {
        message_id: mid(),
        status: "delivered",
        from: uid(87_654_321),
        to: Some(uid(53_380_488)),
        chat_id: None,
        client_id: None,
        ts: ts(),
        duplicate: false,
        self_copy: false,
    };
    check(
        ServerFrame::MsgStatus(status),
        "msg_status",
        &["message_id", "status", "from", "to", "ts"],
    );
    let gap = Gap {
        from_seq: 12,
        to_seq: 57,
        count: 46,
        reason: "overflow",
        ts: ts(),
    };
    check(
        ServerFrame::Gap(gap),
        "gap",
        &["from_seq", "to_seq", "count", "reason", "ts"],
    );
    let request = ContactEvent {
        from_id: uid(53_380_488),
        from_phone: Some(None),
        from_nickname: Some("alice"),
        secret: Some(false),
        ts: ts(),
    };
    let text = check(
        ServerFrame::SubscriptionRequest(request),
        "subscription_request",
        &["from_id", "from_phone", "from_nickname", "secret", "ts"],
    );
    assert!(text.contains(r#""from_phone":null"#), "{text}");
    check(
        ServerFrame::SubscriptionConfirmed(ContactEvent {
            secret: None,
            ..request
        }),
        "subscription_confirmed",
        &["from_id", "from_phone", "from_nickname", "ts"],
    );
    check(
        ServerFrame::SubscriptionRemoved(ContactEvent {
            from_phone: None,
            from_nickname: None,
            secret: None,
            ..request
        }),
        "subscription_removed",
        &["from_id", "ts"],
    );
    message_events();
    check(
        ServerFrame::ChatMember(ChatMemberEvent {
            chat_id: 5,
            user_id: uid(33_333_333),
            action: "added",
            role: "member",
            by: uid(53_380_488),
            ts: ts(),
        }),
        "chat_member",
        &["chat_id", "user_id", "action", "role", "by", "ts"],
    );
    check(
        ServerFrame::KeyChanged(KeyChanged {
            user_id: uid(53_380_488),
            public_e2e_key: "-----BEGIN PUBLIC KEY-----",
            ts: ts(),
        }),
        "key_changed",
        &["user_id", "public_e2e_key", "ts"],
    );
}

fn dm_like() -> RelayDelivery<'static> {
    RelayDelivery {
        message_id: mid(),
        from: uid(53_380_488),
        to: Some(uid(87_654_321)),
        chat_id: None,
        payload: "p",
        signature: None,
        ts: ts(),
        self_copy: false,
        system: false,
    }
}

fn message_events() {
    let base = MessageEvent {
        message_id: mid(),
        from: uid(53_380_488),
        to: None,
        chat_id: Some(5),
        payload: None,
        pinned: None,
        reaction: None,
        ts: ts(),
        self_copy: false,
    };
    let common = ["message_id", "from", "chat_id", "ts"];
    let with = |extra: &'static str| {
        let mut v = common.to_vec();
        v.push(extra);
        v
    };
    let edit = MessageEvent {
        payload: Some("<new data>"),
        ..base
    };
    check(ServerFrame::Edit(edit), "edit", &with("payload"));
    check(ServerFrame::Delete(base), "delete", &common);
    let pin = MessageEvent {
        pinned: Some(true),
        ..base
    };
    check(ServerFrame::Pin(pin), "pin", &with("pinned"));
    let react = MessageEvent {
        reaction: Some("👍"),
        self_copy: true,
        ..base
    };
    let mut fields = with("reaction");
    fields.push("self");
    check(ServerFrame::React(react), "react", &fields);
    // A DM event names the peer as `to`.
    let dm = MessageEvent {
        to: Some(uid(87_654_321)),
        chat_id: None,
        ..base
    };
    check(
        ServerFrame::Delete(dm),
        "delete",
        &["message_id", "from", "to", "ts"],
    );
}

#[test]
fn ephemeral_frames() {
    let mut contacts = BTreeMap::new();
    contacts.insert(
        uid(87_654_321),
        ContactStatus {
            status: "online".into(),
            typing: false,
        },
    );
    let text = check(
        ServerFrame::Pong(Pong {
            contacts_status: &contacts,
            server_version: "0.1.0",
            timestamp: ts(),
        }),
        "pong",
        &["contacts_status", "server_version", "timestamp"],
    );
    assert!(
        text.contains(r#""contacts_status":{"87654321":{"status":"online","typing":false}}"#),
        "{text}"
    );
    check(
        ServerFrame::SyncDone(SyncDone {
            count: 3,
            last_seq: 42,
            ts: ts(),
        }),
        "sync_done",
        &["count", "last_seq", "ts"],
    );
    let text = check(
        ServerFrame::Error(ErrorFrame {
            reason: WsReason::NotAContact,
            message: "Not a contact",
            reference: Some("c-17"),
        }),
        "error",
        &["reason", "message", "ref"],
    );
    assert_eq!(
        text,
        r#"{"type":"error","reason":"not_a_contact","message":"Not a contact","ref":"c-17"}"#
    );
    let text = check(
        ServerFrame::History(History {
            target: Some(uid(87_654_321)),
            chat_id: None,
            messages: &[],
            items: &[],
            has_more: true,
            next_before: Some(mid()),
        }),
        "history",
        &[
            "target",
            "chat_id",
            "messages",
            "items",
            "has_more",
            "next_before",
        ],
    );
    assert!(text.contains(r#""chat_id":null"#), "{text}");
    check(
        ServerFrame::StatusChange(StatusChange {
            user_id: uid(87_654_321),
            status: "away",
            timestamp: ts(),
        }),
        "status_change",
        &["user_id", "status", "timestamp"],
    );
    let typing = || Typing {
        user_id: uid(87_654_321),
        chat_id: None,
        timestamp: ts(),
    };
    let fields = ["user_id", "chat_id", "timestamp"];
    check(ServerFrame::TypingStart(typing()), "typing_start", &fields);
    check(ServerFrame::TypingStop(typing()), "typing_stop", &fields);
    // §5.6's read marker, exactly the documented example.
    let text = check(
        ServerFrame::MessagesRead(MessagesRead {
            user_id: uid(87_654_321),
            chat_id: 5,
            last_read_message_id: "01932f6e5a7b7c3d9e4b2a1f0c9d8e7f",
            timestamp: ts(),
        }),
        "messages_read",
        &["user_id", "chat_id", "last_read_message_id", "timestamp"],
    );
    assert_eq!(
        text,
        r#"{"type":"messages_read","user_id":"87654321","chat_id":5,"last_read_message_id":"01932f6e5a7b7c3d9e4b2a1f0c9d8e7f","timestamp":"2025-10-21T09:15:02.481Z"}"#
    );
    // §5.4's slow-mode answer (plus `ts`).
    let text = check(
        ServerFrame::SlowMode(SlowMode {
            status: "rate_limited",
            chat_id: Some(5),
            client_id: None,
            retry_after: 27,
            ts: ts(),
        }),
        "msg_status",
        &["status", "chat_id", "client_id", "retry_after", "ts"],
    );
    assert!(text.contains(r#""client_id":null"#), "{text}");
    // The `queued` reply.
    let queued = MsgStatus {
        message_id: mid(),
        status: "queued",
        from: uid(53_380_488),
        to: None,
        chat_id: Some(5),
        client_id: Some("a-1"),
        ts: ts(),
        duplicate: true,
        self_copy: false,
    };
    check(
        ServerFrame::MsgStatus(queued),
        "msg_status",
        &[
            "message_id",
            "status",
            "from",
            "to",
            "chat_id",
            "client_id",
            "ts",
            "duplicate",
        ],
    );
}

#[test]
fn call_frames() {
    let state = call_state(
        "c1",
        "ended",
        uid(87_654_321),
        uid(53_380_488),
        Some("connection_lost"),
    );
    let text = String::from_utf8(state.to_vec()).expect("utf-8");
    assert!(
        text.starts_with(r#"{"type":"call_state","call_id":"c1","state":"ended","#),
        "{text}"
    );
    assert!(text.ends_with(r#","reason":"connection_lost"}"#), "{text}");
    // Forwarded: the sender's §5.7 fields with call_id, from and ts; nothing else survives.
    let sent = r#"{"type":"call_signal","target":"87654321","client_id":"k-1","x":1,
        "payload":{"signal":"offer","sdp":"v=0","junk":[1,2]},"extra":{"a":"b"}}"#;
    let Ok(ClientFrame::Call(c)) = Incoming::decode(sent).frame else {
        panic!("a call frame")
    };
    let fwd = c.forward("abc", uid(53_380_488), None);
    let text = String::from_utf8(fwd.to_vec()).expect("utf-8");
    assert!(
        text.starts_with(r#"{"type":"call_signal","call_id":"abc","from":"53380488","target":"87654321","payload":{"signal":"offer","sdp":"v=0"},"client_id":"k-1","ts":""#),
        "{text}"
    );
    let v: Value = serde_json::from_str(&text).expect("json");
    assert!(v.get("x").is_none() && v.get("extra").is_none(), "{text}");
    assert!(v["payload"].get("junk").is_none(), "{text}");
    // `call_start` always carries its media; a candidate object is relayed verbatim.
    let sent = r#"{"type":"call_start","target":"87654321","payload":{"media":"video"}}"#;
    let Ok(ClientFrame::Call(c)) = Incoming::decode(sent).frame else {
        panic!("a call frame")
    };
    assert_eq!(c.media(), Media::Video);
    let v: Value =
        serde_json::from_slice(&c.forward("abc", uid(53_380_488), Some(c.media()))).expect("json");
    assert_eq!(v["media"], "video");
    let sent =
        r#"{"type":"ice","target":"87654321","candidate":{"candidate":"c:1","sdpMLineIndex":0}}"#;
    let Ok(ClientFrame::Call(c)) = Incoming::decode(sent).frame else {
        panic!("a call frame")
    };
    let text = String::from_utf8(c.forward("abc", uid(53_380_488), None).to_vec()).expect("utf-8");
    assert!(
        text.contains(r#","candidate":{"candidate":"c:1","sdpMLineIndex":0},"#),
        "{text}"
    );
    let start = CallFrame::synthesized_start("abc", uid(53_380_488), uid(87_654_321), Media::Audio);
    let v: Value = serde_json::from_slice(&start).expect("json");
    let keys: BTreeSet<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["call_id", "from", "media", "target", "ts", "type"]
            .into_iter()
            .collect()
    );
    assert!(start.starts_with(br#"{"type":"call_start","#));
}

/// A system message (docs/hooks.md): sender `00000000` and `"system": true`, taken from the
/// stored message's sender; any other message has no `system` member.
#[test]
fn system_messages_are_marked() {
    let mut m = Message {
        id: mid(),
        from: UserId::SYSTEM,
        to: Some(uid(87_654_321)),
        chat_id: None,
        payload: "welcome".into(),
        signature: None,
        created_at: ts(),
        delivered: false,
        read: false,
        edited_at: None,
        deleted: false,
        pinned: false,
        reactions: Default::default(),
    };
    let text = check(
        ServerFrame::RelayDelivery(RelayDelivery::of(&m, false)),
        "relay_delivery",
        &["message_id", "from", "to", "payload", "ts", "system"],
    );
    assert!(
        text.contains(r#""from":"00000000""#) && text.ends_with(r#","system":true}"#),
        "{text}"
    );
    m.from = uid(53_380_488);
    check(
        ServerFrame::RelayDelivery(RelayDelivery::of(&m, false)),
        "relay_delivery",
        &["message_id", "from", "to", "payload", "ts"],
    );
}
