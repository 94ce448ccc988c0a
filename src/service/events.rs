//! Durable event fan-out: queue one entry per device, then hand the frames to the hub.

use bytes::Bytes;

use super::hub::with_seq;
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
        let mut entries: Vec<(SessionId, Bytes)> = Vec::new();
        let mut owners: Vec<UserId> = Vec::new();
        for (user, frame) in targets {
            for s in self.store.sessions_of(*user).await? {
                if Some(s.id) != skip {
                    entries.push((s.id, frame.clone()));
                    owners.push(*user);
                }
            }
        }
        if entries.is_empty() {
            return Ok(());
        }
        let seqs = self.store.enqueue_events(&entries).await?;
        for (((session, frame), user), seq) in entries.iter().zip(&owners).zip(seqs) {
            self.hub
                .send_durable(*user, *session, seq, with_seq(frame, seq));
        }
        Ok(())
    }
}
