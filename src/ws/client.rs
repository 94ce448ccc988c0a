//! Client → server frames (docs/protocol.md §5.4, §5.7): decode ([`Incoming`]), then one service call
//! per [`ClientFrame`] variant, then one answer built from a [`ServerFrame`].

use super::conn::{Conn, End};
use crate::model::{AckSelector, Timestamp};
use crate::service::frames::client::{AckReceived, GetHistory};
use crate::service::frames::{
    self, ClientFrame, Conversation, History, Incoming, MsgStatus, Pong, ServerFrame, SlowMode,
};
use crate::service::{Error, HistoryQuery, SendOutcome, SendRequest};

/// Frames that do not count against the frame budget (§3.4).
fn is_ack(kind: &str) -> bool {
    kind == "ack_received" || kind == "ack_read"
}

/// Frames that do not make an idle socket active (§5.6).
fn is_quiet(kind: &str) -> bool {
    matches!(kind, "ping" | "ack_received" | "ack_read" | "presence")
}

impl Conn {
    /// Handles one text frame.
    pub(super) async fn on_text(&mut self, text: &str) -> Result<(), End> {
        let Incoming {
            kind,
            reference,
            frame,
        } = Incoming::decode(text);
        let reference = reference.as_deref();
        let Some(kind) = kind else {
            // Not JSON, not an object, or no string `type`: refused before anything else.
            return match frame {
                Err(r) => self.error(r.reason, &r.message, reference).await,
                Ok(_) => Ok(()),
            };
        };
        self.app.services.core().metrics.frame(true, &kind);
        if !is_ack(&kind) && !self.admit_frame(reference).await? {
            return Ok(());
        }
        if !is_quiet(&kind) {
            self.activity().await;
        }
        match frame {
            Ok(frame) => self.dispatch(frame, reference).await,
            Err(r) => self.error(r.reason, &r.message, reference).await,
        }
    }

    async fn dispatch(
        &mut self,
        frame: ClientFrame<'_>,
        reference: Option<&str>,
    ) -> Result<(), End> {
        match frame {
            ClientFrame::Ping => self.pong().await,
            ClientFrame::Relay(f) => self.send_message(f.into_request(), reference).await,
            ClientFrame::ChatMessage(f) => self.send_message(f.into_request(), reference).await,
            ClientFrame::GetHistory(f) => self.history(f, reference).await,
            ClientFrame::AckReceived(f) => {
                self.ack(f);
                Ok(())
            }
            ClientFrame::AckRead(id) => {
                let r = self.feed.read(id).await;
                self.answer(r, "ack_read", reference).await
            }
            ClientFrame::TypingStart(to) => self.typing(to, true, reference).await,
            ClientFrame::TypingStop(to) => self.typing(to, false, reference).await,
            ClientFrame::Presence { away } => {
                self.set_away(away).await;
                Ok(())
            }
            ClientFrame::Call(f) => {
                let calls = self.app.services.calls.clone();
                let r = calls.handle(&self.auth, f).await;
                self.answer(r, "call frame", reference).await
            }
        }
    }

    /// Answers a failed service call with an `error` (logging server-side failures).
    async fn answer(
        &mut self,
        result: Result<(), Error>,
        during: &'static str,
        reference: Option<&str>,
    ) -> Result<(), End> {
        match result {
            Ok(()) => Ok(()),
            Err(e) => self.fail(&e, during, reference).await,
        }
    }

    /// The `error` frame of a service error, from the error table.
    async fn fail(
        &mut self,
        e: &Error,
        during: &'static str,
        reference: Option<&str>,
    ) -> Result<(), End> {
        e.log(during);
        self.error(e.row().ws, &e.ws_message(), reference).await
    }

    fn ack(&mut self, f: AckReceived) {
        if let Some(n) = f.up_to_seq {
            self.feed.ack(AckSelector::UpTo(n));
        }
        if let Some(n) = f.seq {
            self.feed.ack(AckSelector::Seq(n));
        }
        if let Some(id) = f.message_id {
            self.feed.ack(AckSelector::Message(id));
        }
    }

    async fn typing(
        &mut self,
        to: Conversation,
        start: bool,
        reference: Option<&str>,
    ) -> Result<(), End> {
        let presence = self.app.services.presence.clone();
        let r = match to {
            Conversation::Direct(to) if start => {
                let r = presence.typing_start(&self.auth, to).await;
                // Remembered (bounded) to send typing_stop when the last socket closes.
                if r.is_ok() && self.typing_peers.len() < 64 {
                    self.typing_peers.insert(to);
                }
                r
            }
            Conversation::Direct(to) => {
                self.typing_peers.remove(&to);
                presence.typing_stop(&self.auth, to).await
            }
            Conversation::Chat(chat) => presence.typing_chat(&self.auth, chat, start).await,
        };
        self.answer(r, "typing", reference).await
    }

    async fn pong(&mut self) -> Result<(), End> {
        let presence = self.app.services.presence.clone();
        let contacts = match presence.contacts_status(self.auth.user).await {
            Ok(c) => c,
            Err(e) => return self.fail(&e, "ping", Some("ping")).await,
        };
        let frame = frames::to_bytes(&ServerFrame::Pong(Pong {
            contacts_status: &contacts,
            server_version: &self.app.services.core().config.server_version,
            timestamp: Timestamp::now(),
        }));
        self.send_bytes(frame).await
    }

    async fn send_message(&mut self, req: SendRequest, reference: Option<&str>) -> Result<(), End> {
        let client_id = req.client_id.clone();
        let chat_id = req.chat_id;
        let messages = self.app.services.messages.clone();
        match messages.send(&self.auth, req).await {
            Ok(out) => self.queued(&out, client_id.as_deref()).await,
            Err(Error::SlowMode { retry_after }) => {
                let frame = frames::to_bytes(&ServerFrame::SlowMode(SlowMode {
                    status: "rate_limited",
                    chat_id,
                    client_id: client_id.as_deref(),
                    retry_after,
                    ts: Timestamp::now(),
                }));
                self.send_bytes(frame).await
            }
            Err(e) => self.fail(&e, "message", reference).await,
        }
    }

    async fn queued(&mut self, out: &SendOutcome, client_id: Option<&str>) -> Result<(), End> {
        let frame = frames::to_bytes(&ServerFrame::MsgStatus(MsgStatus {
            message_id: out.message_id,
            status: "queued",
            from: self.auth.user,
            to: out.to,
            chat_id: out.chat_id,
            client_id,
            ts: out.ts,
            duplicate: out.duplicate,
            self_copy: false,
        }));
        self.send_bytes(frame).await
    }

    async fn history(&mut self, f: GetHistory, reference: Option<&str>) -> Result<(), End> {
        let q = HistoryQuery::Cursor {
            before: f.before,
            limit: f.limit,
        };
        let messages = self.app.services.messages.clone();
        let (target, chat_id, result) = match f.to {
            Conversation::Direct(p) => (Some(p), None, messages.dm_history(&self.auth, p, q).await),
            Conversation::Chat(c) => (None, Some(c), messages.chat_history(&self.auth, c, q).await),
        };
        let mut page = match result {
            Ok(page) => page,
            Err(e) => return self.fail(&e, "history", reference).await,
        };
        page.fit_frame(frames::MAX_FRAME_OUT);
        let frame = frames::to_bytes(&ServerFrame::History(History {
            target,
            chat_id,
            messages: &page.messages,
            items: &page.items,
            has_more: page.has_more,
            next_before: page.next_before,
        }));
        self.send_bytes(frame).await
    }
}
