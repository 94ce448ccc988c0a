//! One pass over a client frame's text: the fields any frame of docs/protocol.md §5.4/§5.7 may carry,
//! each kept as the JSON it was (a [`Json`]) so that a mistyped field can still be reported
//! against the frame's `type` and `client_id`. No tree is built: strings are borrowed from the
//! text unless they contain escapes, arrays and unknown fields are skipped, `candidate` is kept
//! as its raw text and `payload` is a string or the call payload object.
//!
//! Duplicate keys keep the last value, as a JSON object does.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON value of a known field, as far as a frame needs it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    /// A negative integer.
    Int(i64),
    /// A non-negative integer.
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    /// An array (skipped).
    Array,
    /// An object (skipped).
    Object,
}

/// Why a field could not be used: wrong JSON type, or out of range.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Mistyped;

/// `Option<&str>` semantics of serde: absent or null → `None`, a string → `Some`.
pub(crate) fn opt_str<'s>(v: &'s Option<Json<'_>>) -> Result<Option<&'s str>, Mistyped> {
    match v {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Str(s)) => Ok(Some(s)),
        Some(_) => Err(Mistyped),
    }
}

/// Like [`opt_str`], moving the string out (no copy of a borrowed one).
pub(crate) fn take_str<'a>(v: &mut Option<Json<'a>>) -> Result<Option<Cow<'a, str>>, Mistyped> {
    match v.take() {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Str(s)) => Ok(Some(s)),
        Some(_) => Err(Mistyped),
    }
}

/// `Option<i64>` semantics: an integer in range; floats are mistyped.
pub(crate) fn opt_i64(v: &Option<Json<'_>>) -> Result<Option<i64>, Mistyped> {
    match v {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Int(n)) => Ok(Some(*n)),
        Some(Json::UInt(n)) => i64::try_from(*n).map(Some).map_err(|_| Mistyped),
        Some(_) => Err(Mistyped),
    }
}

/// `Option<u64>` semantics: a non-negative integer.
pub(crate) fn opt_u64(v: &Option<Json<'_>>) -> Result<Option<u64>, Mistyped> {
    match v {
        None | Some(Json::Null) => Ok(None),
        Some(Json::UInt(n)) => Ok(Some(*n)),
        Some(_) => Err(Mistyped),
    }
}

/// `Option<&RawValue>`: absent or JSON null → `None`.
pub(crate) fn opt_raw(v: Option<&RawValue>) -> Option<&RawValue> {
    v.filter(|r| r.get() != "null")
}

/// The call `payload` object (§5.7): `signal`, `sdp`, `candidate`, `media`; others skipped.
#[derive(Debug, Default)]
pub(crate) struct PayloadFields<'a> {
    pub(crate) signal: Option<Json<'a>>,
    pub(crate) sdp: Option<Json<'a>>,
    pub(crate) candidate: Option<&'a RawValue>,
    pub(crate) media: Option<Json<'a>>,
}

/// `payload`: a message's string, the call payload object, or anything else.
#[derive(Debug)]
pub(crate) enum Payload<'a> {
    Object(PayloadFields<'a>),
    Other(Json<'a>),
}

/// The known fields of a client frame.
#[derive(Debug, Default)]
pub(crate) struct Fields<'a> {
    pub(crate) kind: Option<Json<'a>>,
    pub(crate) client_id: Option<Json<'a>>,
    pub(crate) target: Option<Json<'a>>,
    pub(crate) chat_id: Option<Json<'a>>,
    pub(crate) payload: Option<Payload<'a>>,
    pub(crate) signature: Option<Json<'a>>,
    pub(crate) before: Option<Json<'a>>,
    pub(crate) limit: Option<Json<'a>>,
    pub(crate) message_id: Option<Json<'a>>,
    pub(crate) seq: Option<Json<'a>>,
    pub(crate) up_to_seq: Option<Json<'a>>,
    pub(crate) status: Option<Json<'a>>,
    pub(crate) call_id: Option<Json<'a>>,
    pub(crate) media: Option<Json<'a>>,
    pub(crate) sdp: Option<Json<'a>>,
    pub(crate) candidate: Option<&'a RawValue>,
}

impl<'a> Fields<'a> {
    /// Reads a frame's text: `Err` when it is not JSON or not an object.
    pub(crate) fn read(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// A key of a frame object (or of a call payload).
enum Key {
    Type,
    ClientId,
    Target,
    ChatId,
    Payload,
    Signature,
    Before,
    Limit,
    MessageId,
    Seq,
    UpToSeq,
    Status,
    CallId,
    Media,
    Sdp,
    Candidate,
    Signal,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, k: &str) -> Result<Key, E> {
                Ok(match k {
                    "type" => Key::Type,
                    "client_id" => Key::ClientId,
                    "target" => Key::Target,
                    "chat_id" => Key::ChatId,
                    "payload" => Key::Payload,
                    "signature" => Key::Signature,
                    "before" => Key::Before,
                    "limit" => Key::Limit,
                    "message_id" => Key::MessageId,
                    "seq" => Key::Seq,
                    "up_to_seq" => Key::UpToSeq,
                    "status" => Key::Status,
                    "call_id" => Key::CallId,
                    "media" => Key::Media,
                    "sdp" => Key::Sdp,
                    "candidate" => Key::Candidate,
                    "signal" => Key::Signal,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// Visits any JSON value as a [`Json`].
struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json<'de>, E> {
        Ok(if v < 0 {
            Json::Int(v)
        } else {
            Json::UInt(v.unsigned_abs())
        })
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json<'de>, E> {
        Ok(Json::UInt(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json<'de>, E> {
        Ok(Json::Float(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Json::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Json::Object)
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

/// Visits `payload`: an object is read as [`PayloadFields`], anything else as a [`Json`].
struct PayloadVisitor;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = Payload<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Payload<'de>, E> {
        Ok(Payload::Other(Json::Null))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Payload<'de>, E> {
        JsonVisitor.visit_bool(v).map(Payload::Other)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Payload<'de>, E> {
        JsonVisitor.visit_i64(v).map(Payload::Other)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Payload<'de>, E> {
        JsonVisitor.visit_u64(v).map(Payload::Other)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Payload<'de>, E> {
        JsonVisitor.visit_f64(v).map(Payload::Other)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Payload<'de>, E> {
        JsonVisitor.visit_borrowed_str(v).map(Payload::Other)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Payload<'de>, E> {
        JsonVisitor.visit_str(v).map(Payload::Other)
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Payload<'de>, E> {
        JsonVisitor.visit_string(v).map(Payload::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Payload<'de>, A::Error> {
        JsonVisitor.visit_seq(seq).map(Payload::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Payload<'de>, A::Error> {
        let mut p = PayloadFields::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Signal => p.signal = Some(map.next_value()?),
                Key::Sdp => p.sdp = Some(map.next_value()?),
                Key::Candidate => p.candidate = Some(map.next_value()?),
                Key::Media => p.media = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Payload::Object(p))
    }
}

impl<'de> Deserialize<'de> for Payload<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PayloadVisitor)
    }
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut f = Fields::default();
                while let Some(key) = map.next_key::<Key>()? {
                    let slot = match key {
                        Key::Type => &mut f.kind,
                        Key::ClientId => &mut f.client_id,
                        Key::Target => &mut f.target,
                        Key::ChatId => &mut f.chat_id,
                        Key::Signature => &mut f.signature,
                        Key::Before => &mut f.before,
                        Key::Limit => &mut f.limit,
                        Key::MessageId => &mut f.message_id,
                        Key::Seq => &mut f.seq,
                        Key::UpToSeq => &mut f.up_to_seq,
                        Key::Status => &mut f.status,
                        Key::CallId => &mut f.call_id,
                        Key::Media => &mut f.media,
                        Key::Sdp => &mut f.sdp,
                        Key::Payload => {
                            f.payload = Some(map.next_value()?);
                            continue;
                        }
                        Key::Candidate => {
                            f.candidate = Some(map.next_value()?);
                            continue;
                        }
                        Key::Signal | Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value()?);
                }
                Ok(f)
            }
        }
        d.deserialize_map(V)
    }
}
