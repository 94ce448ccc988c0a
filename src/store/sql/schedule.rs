//! Row decoding of `scheduled_messages`, shared by the SQL backends.

use super::rows::{corrupt, Cells};
use crate::model::SessionId;
use crate::store::{ScheduleId, ScheduledMessage, StoreResult};

/// Columns of a scheduled message row.
pub(crate) const SCHEDULE_COLS: &str = "id, owner_uid, session_id, to_uid, chat_id, payload, \
     signature, client_id, due_at, created_at";

/// A claim token as the signed 64-bit column holds it (the same bits).
pub(crate) fn token(t: u64) -> i64 {
    i64::from_ne_bytes(t.to_ne_bytes())
}

pub(crate) fn schedule(r: &impl Cells) -> StoreResult<ScheduledMessage> {
    let id = ScheduleId::from_bytes(&r.bytes("id")?).ok_or_else(|| corrupt("schedule id"))?;
    let (target, chat_id) = (r.opt_uid("to_uid")?, r.opt_int("chat_id")?);
    if target.is_some() == chat_id.is_some() {
        return Err(corrupt("scheduled message target"));
    }
    Ok(ScheduledMessage {
        id,
        owner: r.uid("owner_uid")?,
        session: SessionId(r.int("session_id")?),
        target,
        chat_id,
        payload: r.text("payload")?,
        signature: r.opt_text("signature")?,
        client_id: r.opt_text("client_id")?,
        due_at: r.time("due_at")?,
        created_at: r.time("created_at")?,
    })
}
