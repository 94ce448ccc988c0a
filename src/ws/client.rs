//! Client → server frames (PROTOCOL §5.4): parse, authorize through the services, answer.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::conn::{Conn, End};
use crate::model::{AckSelector, MessageId, Timestamp, UserId};
use crate::service::{frames, Error, HistoryQuery, SendOutcome, SendRequest};

/// `target` xor `chat_id`.
enum Conversation {
    Direct(UserId),
    Chat(i64),
}

#[derive(Deserialize)]
struct Addressed {
    #[serde(default)]
    target: Option<UserId>,
    #[serde(default)]
    chat_id: Option<ChatIdInput>,
}

/// A chat id: integer, or a string of decimal digits.
#[derive(Deserialize)]
#[serde(untagged)]
enum ChatIdInput {
    Int(i64),
    Text(String),
}

impl Addressed {
    fn conversation(&self) -> Option<Conversation> {
        match (&self.target, &self.chat_id) {
            (Some(t), None) => Some(Conversation::Direct(*t)),
            (None, Some(ChatIdInput::Int(n))) if *n >= 1 => Some(Conversation::Chat(*n)),
            (None, Some(ChatIdInput::Text(s))) => s
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 1)
                .map(Conversation::Chat),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct RelayFrame {
    #[serde(flatten)]
    to: Addressed,
    payload: String,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    signature: Option<String>,
}

#[derive(Deserialize)]
struct ChatMessageFrame {
    #[serde(flatten)]
    to: Addressed,
    #[serde(default)]
    client_id: Option<String>,
}

#[derive(Deserialize)]
struct HistoryFrame {
    #[serde(flatten)]
    to: Addressed,
    #[serde(default)]
    before: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
}

#[derive(Deserialize)]
struct AckFrame {
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    seq: Option<i64>,
    #[serde(default)]
    up_to_seq: Option<i64>,
}

#[derive(Deserialize)]
struct PresenceFrame {
    status: String,
}

/// The `error` reason of a service error on the socket.
fn reason(e: &Error) -> &'static str {
    match e {
        Error::NotAContact => "not_a_contact",
        Error::NotAMember => "not_a_member",
        Error::Forbidden => "forbidden",
        Error::InvalidTarget => "invalid_target",
        Error::MessageNotFound | Error::NotFound => "unknown_message",
        Error::Validation(_) => "invalid_frame",
        Error::RateLimited { .. } | Error::SlowMode { .. } => "rate_limited",
        _ => "internal_error",
    }
}

fn message(e: &Error) -> String {
    match e {
        Error::Validation(f) => f.first().map_or_else(
            || "invalid frame".into(),
            |f| format!("{} {}", f.field, f.problem),
        ),
        Error::NotAContact => "not an accepted contact".into(),
        Error::NotAMember => "not a member of that chat".into(),
        Error::InvalidTarget => "the target is yourself".into(),
        Error::MessageNotFound => "no such message received by you".into(),
        Error::Unavailable(_) | Error::Internal(_) => "internal error".into(),
        other => other.to_string(),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(v: Value) -> Option<T> {
    serde_json::from_value(v).ok()
}

impl Conn {
    /// Handles one text frame.
    pub(super) async fn on_text(&mut self, text: &str) -> Result<(), End> {
        let value: Value = match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return self
                    .error("invalid_json", "frame is not a JSON object", None)
                    .await
            }
        };
        let kind = value.get("type").and_then(Value::as_str).map(str::to_owned);
        let client_id = value
            .get("client_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let reference = client_id.clone().or_else(|| kind.clone());
        let reference = reference.as_deref();
        let Some(kind) = kind else {
            return self
                .error("invalid_frame", "missing string field `type`", reference)
                .await;
        };
        self.app.services.core().metrics.frame(true, &kind);
        let is_ack = kind == "ack_received" || kind == "ack_read";
        if !is_ack && !self.admit_frame(reference).await? {
            return Ok(());
        }
        if !matches!(
            kind.as_str(),
            "ping" | "ack_received" | "ack_read" | "presence"
        ) {
            self.activity().await;
        }
        match kind.as_str() {
            "ping" => self.pong().await,
            "relay" => match parse::<RelayFrame>(value) {
                Some(f) => {
                    let Some(conv) = f.to.conversation() else {
                        return self
                            .invalid(reference, "exactly one of target and chat_id")
                            .await;
                    };
                    let req = request(conv, f.payload, f.client_id, f.signature);
                    self.send_message(req, reference).await
                }
                None => {
                    self.invalid(
                        reference,
                        "relay needs target or chat_id and a string payload",
                    )
                    .await
                }
            },
            "chat_message" => match parse::<ChatMessageFrame>(value) {
                Some(f) => {
                    let Some(conv) = f.to.conversation() else {
                        return self
                            .invalid(reference, "exactly one of target and chat_id")
                            .await;
                    };
                    let req = request(conv, text.to_owned(), f.client_id, None);
                    self.send_message(req, reference).await
                }
                None => {
                    self.invalid(reference, "chat_message needs target or chat_id")
                        .await
                }
            },
            "get_history" => match parse::<HistoryFrame>(value) {
                Some(f) => self.history(f, reference).await,
                None => {
                    self.invalid(reference, "get_history needs target or chat_id")
                        .await
                }
            },
            "ack_received" => match parse::<AckFrame>(value) {
                Some(f) => {
                    if let Some(n) = f.up_to_seq {
                        self.ack(AckSelector::UpTo(n)).await?;
                    }
                    if let Some(n) = f.seq {
                        self.ack(AckSelector::Seq(n)).await?;
                    }
                    match f.message_id.as_deref().map(str::parse::<MessageId>) {
                        Some(Ok(id)) => self.ack(AckSelector::Message(id)).await,
                        Some(Err(())) => {
                            self.invalid(reference, "message_id must be 32 hex characters")
                                .await
                        }
                        None if f.up_to_seq.is_none() && f.seq.is_none() => {
                            self.invalid(reference, "one of message_id, seq, up_to_seq is required")
                                .await
                        }
                        None => Ok(()),
                    }
                }
                None => {
                    self.invalid(reference, "ack_received fields are mistyped")
                        .await
                }
            },
            "ack_read" => {
                let id = value
                    .get("message_id")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<MessageId>().ok());
                match id {
                    Some(id) => self.read(id, reference).await,
                    None => self.invalid(reference, "ack_read needs a message_id").await,
                }
            }
            "typing_start" | "typing_stop" => {
                match parse::<Addressed>(value).and_then(|a| a.conversation()) {
                    Some(Conversation::Direct(to)) => {
                        let presence = self.app.services.presence.clone();
                        let r = if kind == "typing_start" {
                            let r = presence.typing_start(&self.auth, to).await;
                            // Remembered (bounded) to send typing_stop when the last socket closes.
                            if r.is_ok() && self.typing_peers.len() < 64 {
                                self.typing_peers.insert(to);
                            }
                            r
                        } else {
                            self.typing_peers.remove(&to);
                            presence.typing_stop(&self.auth, to).await
                        };
                        match r {
                            Ok(()) => Ok(()),
                            Err(e) => self.error(reason(&e), &message(&e), reference).await,
                        }
                    }
                    Some(Conversation::Chat(chat)) => {
                        let presence = self.app.services.presence.clone();
                        let start = kind == "typing_start";
                        match presence.typing_chat(&self.auth, chat, start).await {
                            Ok(()) => Ok(()),
                            Err(e) => self.error(reason(&e), &message(&e), reference).await,
                        }
                    }
                    None => {
                        self.invalid(reference, "exactly one of target and chat_id")
                            .await
                    }
                }
            }
            "presence" => match parse::<PresenceFrame>(value).map(|p| p.status) {
                Some(s) if s == "away" => {
                    self.set_away(true).await;
                    Ok(())
                }
                Some(s) if s == "online" => {
                    self.set_away(false).await;
                    Ok(())
                }
                _ => {
                    self.invalid(reference, "status must be online or away")
                        .await
                }
            },
            k if crate::service::is_call_frame(k) => {
                let Value::Object(map) = value else {
                    return Ok(());
                };
                let calls = self.app.services.calls.clone();
                match calls.handle(&self.auth, map).await {
                    Ok(()) => Ok(()),
                    Err(e) => self.error(e.reason(), e.message(), reference).await,
                }
            }
            other => {
                let other = other.to_owned();
                self.error(
                    "unknown_type",
                    &format!("unknown frame type {other:?}"),
                    Some(&other),
                )
                .await
            }
        }
    }

    async fn invalid(&mut self, reference: Option<&str>, why: &str) -> Result<(), End> {
        self.error("invalid_frame", why, reference).await
    }

    async fn pong(&mut self) -> Result<(), End> {
        let contacts = match self
            .app
            .services
            .presence
            .contacts_status(self.auth.user)
            .await
        {
            Ok(c) => c,
            Err(e) => return self.error(reason(&e), &message(&e), Some("ping")).await,
        };
        let frame = json!({
            "type": "pong",
            "contacts_status": contacts,
            "server_version": self.app.services.core().config.server_version,
            "timestamp": Timestamp::now(),
        });
        self.send_bytes(Bytes::from(frame.to_string())).await
    }

    async fn send_message(&mut self, req: SendRequest, reference: Option<&str>) -> Result<(), End> {
        let client_id = req.client_id.clone();
        let chat_id = req.chat_id;
        let messages = self.app.services.messages.clone();
        match messages.send(&self.auth, req).await {
            Ok(out) => self.queued(&out, client_id.as_deref()).await,
            Err(Error::SlowMode { retry_after }) => {
                let frame = json!({
                    "type": "msg_status",
                    "status": "rate_limited",
                    "chat_id": chat_id,
                    "client_id": client_id,
                    "retry_after": retry_after,
                    "ts": Timestamp::now(),
                });
                self.send_bytes(Bytes::from(frame.to_string())).await
            }
            Err(e) => self.error(reason(&e), &message(&e), reference).await,
        }
    }

    async fn queued(&mut self, out: &SendOutcome, client_id: Option<&str>) -> Result<(), End> {
        let frame = frames::to_bytes(&frames::MsgStatus {
            kind: "msg_status",
            message_id: out.message_id,
            status: "queued",
            from: self.auth.user,
            to: out.to,
            chat_id: out.chat_id,
            client_id,
            ts: out.ts,
            duplicate: out.duplicate,
            self_copy: false,
        });
        self.send_bytes(frame).await
    }

    async fn history(&mut self, f: HistoryFrame, reference: Option<&str>) -> Result<(), End> {
        let before = match f.before.as_deref().map(str::parse::<MessageId>) {
            None => None,
            Some(Ok(id)) => Some(id),
            Some(Err(())) => return self.invalid(reference, "before must be a message_id").await,
        };
        let limit = f.limit.unwrap_or(50);
        if !(1..=100).contains(&limit) {
            return self.invalid(reference, "limit must be 1..=100").await;
        }
        let q = HistoryQuery::Cursor { before, limit };
        let messages = self.app.services.messages.clone();
        let (peer, chat, result) = match f.to.conversation() {
            Some(Conversation::Direct(p)) => {
                (Some(p), None, messages.dm_history(&self.auth, p, q).await)
            }
            Some(Conversation::Chat(c)) => {
                (None, Some(c), messages.chat_history(&self.auth, c, q).await)
            }
            None => {
                return self
                    .invalid(reference, "exactly one of target and chat_id")
                    .await
            }
        };
        match result {
            Ok(page) => {
                let frame = json!({
                    "type": "history",
                    "target": peer,
                    "chat_id": chat,
                    "messages": page.messages,
                    "items": page.items,
                    "has_more": page.has_more,
                    "next_before": page.next_before,
                });
                self.send_bytes(Bytes::from(frame.to_string())).await
            }
            Err(e) => self.error(reason(&e), &message(&e), reference).await,
        }
    }

    async fn read(&mut self, id: MessageId, reference: Option<&str>) -> Result<(), End> {
        let messages = self.app.services.messages.clone();
        match messages.read(&self.auth, id).await {
            Ok(()) => self.ack(AckSelector::Message(id)).await,
            Err(e) => self.error(reason(&e), &message(&e), reference).await,
        }
    }
}

fn request(
    conv: Conversation,
    payload: String,
    client_id: Option<String>,
    signature: Option<String>,
) -> SendRequest {
    let (target, chat_id) = match conv {
        Conversation::Direct(t) => (Some(t), None),
        Conversation::Chat(c) => (None, Some(c)),
    };
    SendRequest {
        target,
        chat_id,
        payload,
        client_id,
        signature,
    }
}
