//! Durable event fan-out: queue one entry per device, then hand the frames to the hub.

use bytes::Bytes;

use super::{Core, Result};
use crate::model::{SessionId, UserId};

impl Core {
    /// Queues the durable frame `base` (serialized without `seq`) for every active device of
    /// each listed user, except the session `skip`, in one store write; then delivers live.
    pub(crate) async fn emit(
        &self,
        targets: &[(UserId, Bytes)],
        skip: Option<SessionId>,
    ) -> Result<()> {
        // Events can carry PII (nicknames, keys): the queue keeps them sealed, sealed once per
        // frame; live delivery uses the plaintext.
        let mut entries: Vec<(SessionId, Bytes)> = Vec::new();
        let mut live: Vec<(UserId, &Bytes)> = Vec::new();
        for (user, frame) in targets {
            let sealed = Bytes::from(self.pii.seal("queue", "event", "", frame)?);
            for s in self.session_ids(*user).await?.iter() {
                if Some(*s) != skip {
                    entries.push((*s, sealed.clone()));
                    live.push((*user, frame));
                }
            }
        }
        if entries.is_empty() {
            return Ok(());
        }
        let seqs = self.store.enqueue_events(&entries).await?;
        // One delivery (and one cluster note) per frame body.
        let mut batch: Vec<(UserId, SessionId, i64)> = Vec::new();
        let mut body: Option<&Bytes> = None;
        for (((session, _), (user, frame)), seq) in entries.iter().zip(live).zip(seqs) {
            if body.is_some_and(|b| !std::ptr::eq(b, frame)) {
                if let Some(b) = body {
                    self.send_durable_many(b, std::mem::take(&mut batch));
                }
            }
            body = Some(frame);
            batch.push((user, *session, seq));
        }
        if let Some(b) = body {
            self.send_durable_many(b, batch);
        }
        Ok(())
    }

    /// Opens an event sealed by [`Core::emit`].
    pub(crate) fn open_event(&self, sealed: &[u8]) -> Result<Bytes> {
        Ok(Bytes::from(self.pii.open("queue", "event", "", sealed)?))
    }
}
