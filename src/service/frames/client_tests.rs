//! Every client frame of docs/protocol.md §5.4 and §5.7, from the documented examples, decodes into
//! its variant; malformed frames get the §5.2 reasons.

use std::borrow::Cow;

use super::call::{CallKind, MAX_CALL_FRAME, MAX_SDP};
use super::client::{AckReceived, GetHistory};
use super::*;
use crate::model::{MessageId, UserId};
use crate::service::WsReason;

const MID: &str = "01932f6e5a7b7c3d9e4b2a1f0c9d8e7f";

fn uid(n: u32) -> UserId {
    UserId::new(n).expect("uid")
}

fn frame(text: &str) -> ClientFrame<'_> {
    match Incoming::decode(text).frame {
        Ok(f) => f,
        Err(r) => panic!("{text} refused: {r:?}"),
    }
}

/// The reason, message and `ref` of a refused frame.
fn refused(text: &str) -> (WsReason, String, Option<String>) {
    let i = Incoming::decode(text);
    match i.frame {
        Ok(f) => panic!("{text} accepted as {f:?}"),
        Err(r) => (
            r.reason,
            r.message.into_owned(),
            i.reference.map(Cow::into_owned),
        ),
    }
}

fn call(text: &str) -> CallFrame<'_> {
    match frame(text) {
        ClientFrame::Call(c) => c,
        other => panic!("{text}: {other:?}"),
    }
}

#[test]
fn every_message_frame_of_5_4() {
    assert!(matches!(frame(r#"{"type":"ping"}"#), ClientFrame::Ping));
    let text = r#"{"type":"relay","target":"87654321","payload":"eyJjaXBoZXJ0ZXh0Ijoi…","client_id":"a-1"}"#;
    let ClientFrame::Relay(r) = frame(text) else {
        panic!("relay")
    };
    assert_eq!(r.to, Conversation::Direct(uid(87_654_321)));
    assert_eq!(r.payload, "eyJjaXBoZXJ0ZXh0Ijoi…");
    assert!(
        matches!(r.payload, Cow::Borrowed(_)),
        "the payload is not copied"
    );
    assert_eq!(r.client_id.as_deref(), Some("a-1"));
    let req = r.into_request();
    assert_eq!(
        (req.target, req.chat_id, req.signature),
        (Some(uid(87_654_321)), None, None)
    );
    let text = r#"{"type":"chat_message","chat_id":"5","text":"hi","client_id":"c-9"}"#;
    let ClientFrame::ChatMessage(m) = frame(text) else {
        panic!("chat_message")
    };
    assert_eq!(m.to, Conversation::Chat(5));
    assert_eq!(
        m.into_request().payload,
        text,
        "the payload is the frame's text"
    );
    assert!(matches!(
        frame(r#"{"type":"get_history","target":"87654321","limit":2}"#),
        ClientFrame::GetHistory(GetHistory {
            to: Conversation::Direct(_),
            before: None,
            limit: 2
        })
    ));
    let ClientFrame::GetHistory(h) = frame(&format!(
        r#"{{"type":"get_history","chat_id":5,"before":"{MID}"}}"#
    )) else {
        panic!("get_history")
    };
    assert_eq!(
        (h.to, h.before, h.limit),
        (Conversation::Chat(5), MID.parse().ok(), 50)
    );
    assert!(matches!(
        frame(r#"{"type":"ack_received","up_to_seq":42}"#),
        ClientFrame::AckReceived(AckReceived {
            message_id: None,
            seq: None,
            up_to_seq: Some(42)
        })
    ));
    let ClientFrame::AckReceived(a) = frame(&format!(
        r#"{{"type":"ack_received","message_id":"{MID}","seq":7,"other":"x","from":"1"}}"#
    )) else {
        panic!("ack_received")
    };
    assert_eq!(
        (a.message_id, a.seq),
        (MID.parse::<MessageId>().ok(), Some(7))
    );
    assert!(matches!(
        frame(&format!(r#"{{"type":"ack_read","message_id":"{MID}","target":5}}"#)),
        ClientFrame::AckRead(id) if id.to_string() == MID
    ));
    assert!(matches!(
        frame(r#"{"type":"typing_start","target":"53380488"}"#),
        ClientFrame::TypingStart(Conversation::Direct(u)) if u == uid(53_380_488)
    ));
    assert!(matches!(
        frame(r#"{"type":"typing_stop","chat_id":5}"#),
        ClientFrame::TypingStop(Conversation::Chat(5))
    ));
    assert!(matches!(
        frame(r#"{"type":"presence","status":"away"}"#),
        ClientFrame::Presence { away: true }
    ));
    assert!(matches!(
        frame(r#"{"type":"presence","status":"online"}"#),
        ClientFrame::Presence { away: false }
    ));
}

#[test]
fn every_call_frame_of_5_7() {
    let c = call(r#"{"type":"call_start","target":"87654321","media":"audio"}"#);
    assert_eq!(
        (c.kind, c.signal, c.media),
        (CallKind::CallStart, Signal::Start, Some(Media::Audio))
    );
    assert_eq!(c.target, uid(87_654_321));
    let c = call(
        r#"{"type":"call_signal","target":"87654321","payload":{"signal":"offer","sdp":"v=0…"}}"#,
    );
    assert_eq!((c.kind, c.signal), (CallKind::CallSignal, Signal::Offer));
    let p = c.payload.as_ref().expect("payload");
    assert_eq!(
        (p.signal, p.sdp.as_deref()),
        (Some(CallKind::Offer), Some("v=0…"))
    );
    for (signal, role) in [
        ("offer", Signal::Offer),
        ("answer", Signal::Answer),
        ("candidate", Signal::Candidate),
        ("ice", Signal::Candidate),
        ("ringing", Signal::Ringing),
        ("accept", Signal::Accept),
        ("reject", Signal::Reject),
        ("hangup", Signal::Hangup),
    ] {
        let text = format!(
            r#"{{"type":"call_signal","target":"87654321","payload":{{"signal":"{signal}"}}}}"#
        );
        assert_eq!(call(&text).signal, role, "{text}");
    }
    let standalone = [
        (
            r#"{"type":"offer","target":"87654321","sdp":"v=0"}"#,
            Signal::Offer,
        ),
        (
            r#"{"type":"answer","target":"87654321","sdp":"v=0"}"#,
            Signal::Answer,
        ),
        (
            r#"{"type":"candidate","target":"87654321","candidate":{"candidate":"c","sdpMid":"0"}}"#,
            Signal::Candidate,
        ),
        (
            r#"{"type":"ice","target":"87654321","candidate":{"c":1}}"#,
            Signal::Candidate,
        ),
        (r#"{"type":"ringing","target":"87654321"}"#, Signal::Ringing),
        (
            r#"{"type":"call_accept","target":"87654321"}"#,
            Signal::Accept,
        ),
        (r#"{"type":"accept","target":"87654321"}"#, Signal::Accept),
        (
            r#"{"type":"call_reject","target":"87654321"}"#,
            Signal::Reject,
        ),
        (r#"{"type":"reject","target":"87654321"}"#, Signal::Reject),
        (
            r#"{"type":"hangup","target":"87654321","call_id":"abc"}"#,
            Signal::Hangup,
        ),
        (r#"{"type":"call_end","target":"87654321"}"#, Signal::Hangup),
        (
            r#"{"type":"call_connected","target":"87654321"}"#,
            Signal::Connected,
        ),
        (
            r#"{"type":"call_end_state","target":"87654321"}"#,
            Signal::EndState,
        ),
    ];
    for (text, role) in standalone {
        let c = call(text);
        assert_eq!(c.signal, role, "{text}");
        assert_eq!(Some(c.kind), CallKind::of(c.kind.as_str()));
    }
    let c = call(
        r#"{"type":"candidate","target":"87654321","candidate":{"candidate":"c","sdpMid":"0"}}"#,
    );
    assert_eq!(
        c.candidate.map(|r| r.get()),
        Some(r#"{"candidate":"c","sdpMid":"0"}"#),
        "candidate stays an opaque object"
    );
    // Every §5.7 type is a call frame; nothing else is.
    assert_eq!(CallKind::ALL.len(), 15);
    assert_eq!(CallKind::of("relay"), None);
}

#[test]
fn malformed_frames_get_the_5_2_reasons() {
    use WsReason::*;
    let r = |t: &str| {
        let (reason, _, reference) = refused(t);
        (reason, reference)
    };
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(r("not json"), (InvalidJson, None));
    assert_eq!(r("[1,2]"), (InvalidJson, None));
    assert_eq!(r(r#""str""#), (InvalidJson, None));
    assert_eq!(r(r#"{"type":"ping"} x"#), (InvalidJson, None));
    assert_eq!(r("{}"), (InvalidFrame, None));
    assert_eq!(
        r(r#"{"type":5,"client_id":"c-1"}"#),
        (InvalidFrame, s("c-1"))
    );
    assert_eq!(
        r(r#"{"type":"bogus","client_id":"c-2"}"#),
        (UnknownType, s("bogus"))
    );
    // Mistyped fields.
    assert_eq!(
        r(r#"{"type":"relay","target":87654321,"payload":"x","client_id":"m-1"}"#),
        (InvalidFrame, s("m-1"))
    );
    assert_eq!(
        r(r#"{"type":"relay","target":"123","payload":"x"}"#),
        (InvalidFrame, s("relay"))
    );
    assert_eq!(
        r(r#"{"type":"relay","target":"87654321","payload":5}"#).0,
        InvalidFrame
    );
    assert_eq!(r(r#"{"type":"relay","target":"87654321"}"#).0, InvalidFrame);
    assert_eq!(
        r(r#"{"type":"relay","target":"87654321","payload":"x","client_id":7}"#),
        (InvalidFrame, s("relay"))
    );
    assert_eq!(
        refused(r#"{"type":"relay","target":"87654321","chat_id":1,"payload":"x"}"#).1,
        "exactly one of target and chat_id"
    );
    assert_eq!(
        r(r#"{"type":"chat_message","chat_id":1.5}"#).0,
        InvalidFrame
    );
    assert_eq!(
        r(r#"{"type":"get_history","target":"87654321","limit":0}"#).0,
        InvalidFrame
    );
    assert_eq!(
        r(r#"{"type":"get_history","target":"87654321","limit":-1}"#).0,
        InvalidFrame
    );
    assert_eq!(
        r(r#"{"type":"get_history","chat_id":5,"before":"x"}"#).0,
        InvalidFrame
    );
    assert_eq!(
        r(r#"{"type":"ack_received"}"#),
        (InvalidFrame, s("ack_received"))
    );
    assert_eq!(r(r#"{"type":"ack_received","seq":"1"}"#).0, InvalidFrame);
    assert_eq!(
        r(r#"{"type":"ack_received","up_to_seq":1.0}"#).0,
        InvalidFrame
    );
    assert_eq!(
        r(r#"{"type":"ack_read","message_id":"xyz"}"#).0,
        InvalidFrame
    );
    assert_eq!(r(r#"{"type":"typing_start"}"#).0, InvalidFrame);
    assert_eq!(
        r(r#"{"type":"presence","status":"busy"}"#),
        (InvalidFrame, s("presence"))
    );
    assert_eq!(r(r#"{"type":"call_start","target":"1"}"#).0, InvalidFrame);
    assert_eq!(r(r#"{"type":"call_start"}"#).0, InvalidFrame);
    assert_eq!(
        r(r#"{"type":"call_start","target":"87654321","media":"hologram"}"#).0,
        InvalidFrame
    );
    assert_eq!(
        r(r#"{"type":"offer","target":"87654321","sdp":5}"#).0,
        InvalidFrame
    );
    assert_eq!(
        r(r#"{"type":"ice","target":"87654321","candidate":"c"}"#).0,
        InvalidFrame
    );
    assert_eq!(
        r(r#"{"type":"hangup","target":"87654321","call_id":5}"#).0,
        InvalidFrame
    );
    assert_eq!(
        r(r#"{"type":"call_signal","target":"87654321"}"#).0,
        InvalidFrame
    );
    assert_eq!(
        r(r#"{"type":"call_signal","target":"87654321","payload":{"signal":"dance"}}"#).0,
        InvalidFrame
    );
    assert_eq!(
        r(r#"{"type":"call_signal","target":"87654321","payload":{"signal":"call_start"}}"#).0,
        InvalidFrame
    );
}

#[test]
fn fields_a_type_does_not_use_are_ignored() {
    // Whatever they hold, and duplicates keep the last value as a JSON object does.
    assert!(matches!(
        frame(r#"{"type":"ping","payload":{"a":[1,{"b":null}]},"seq":"x","target":7}"#),
        ClientFrame::Ping
    ));
    assert!(matches!(
        frame(r#"{"type":"relay","target":"87654321","payload":"x","seq":"no","limit":{}}"#),
        ClientFrame::Relay(_)
    ));
    // Unused fields are skipped, not decoded: not even numbers out of f64 range fail them.
    assert!(matches!(
        frame(r#"{"type":"ping","x":[1e400],"y":"\ud800"}"#),
        ClientFrame::Ping
    ));
    assert_eq!(
        refused(r#"{"type":"ping","seq":1e400}"#).0,
        WsReason::InvalidJson
    );
    assert!(matches!(
        frame(r#"{"type":"presence","status":"busy","status":"away"}"#),
        ClientFrame::Presence { away: true }
    ));
    // Escaped strings are decoded (and only they are copied).
    let ClientFrame::Relay(r) =
        frame(r#"{"type":"re\u006cay","target":"87654321","payload":"a\"b"}"#)
    else {
        panic!("relay")
    };
    assert_eq!(r.payload, "a\"b");
}

#[test]
fn sdp_and_call_frame_limits() {
    let sdp = "v".repeat(MAX_SDP);
    let ok = format!(r#"{{"type":"offer","target":"87654321","sdp":"{sdp}"}}"#);
    assert_eq!(call(&ok).sdp.as_deref().map(str::len), Some(MAX_SDP));
    let over = format!(r#"{{"type":"offer","target":"87654321","sdp":"{sdp}v"}}"#);
    assert_eq!(refused(&over).0, WsReason::InvalidFrame);
    assert_eq!(refused(&over).1, "sdp is at most 64 KiB");
    let nested = format!(
        r#"{{"type":"call_signal","target":"87654321","payload":{{"signal":"answer","sdp":"{sdp}v"}}}}"#
    );
    assert_eq!(refused(&nested).1, "sdp is at most 64 KiB");
    // A whole call frame over 128 KiB, even in fields that would be dropped.
    let pad = "p".repeat(MAX_CALL_FRAME);
    let big =
        format!(r#"{{"type":"candidate","target":"87654321","candidate":{{}},"junk":"{pad}"}}"#);
    assert_eq!(refused(&big).1, "a call frame is at most 128 KiB");
    // The same size is fine for a message frame (its limit is the socket's, 1 MiB).
    let relay = format!(r#"{{"type":"relay","target":"87654321","payload":"{pad}"}}"#);
    assert!(matches!(frame(&relay), ClientFrame::Relay(_)));
}
