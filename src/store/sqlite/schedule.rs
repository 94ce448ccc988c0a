//! [`ScheduleStore`] of [`SqliteStore`]: every write is one transaction on the writer thread,
//! which is also what makes a claim atomic (one writer, `IMMEDIATE` transactions).

use async_trait::async_trait;
use rusqlite::params;

use super::db::{be, unique_violation};
use super::rows::{all, exec, one};
use super::SqliteStore;
use crate::model::{Timestamp, UserId};
use crate::store::sql::rows::{clamp, uid, Cells};
use crate::store::sql::schedule::{schedule, token, SCHEDULE_COLS};
use crate::store::{
    Claim, ScheduleId, ScheduleOutcome, ScheduleStore, ScheduledMessage, StoreError, StoreResult,
};

#[async_trait]
impl ScheduleStore for SqliteStore {
    async fn create_schedule(
        &self,
        s: &ScheduledMessage,
        max_pending: u64,
    ) -> StoreResult<ScheduleOutcome> {
        let s = s.clone();
        self.db
            .write(move |t| {
                let owner = uid(s.owner);
                if one(t, "SELECT 1 AS x FROM users WHERE uid = ?1", [owner], |r| {
                    r.int("x")
                })?
                .is_none()
                {
                    return Ok(ScheduleOutcome::NoUser);
                }
                if let Some(cid) = &s.client_id {
                    let first = one(
                        t,
                        "SELECT id FROM scheduled_messages WHERE session_id = ?1 AND client_id = ?2",
                        params![s.session.0, cid],
                        |r| r.bytes("id"),
                    )?;
                    if let Some(first) = first {
                        let id = ScheduleId::from_bytes(&first)
                            .ok_or_else(|| crate::store::sql::rows::corrupt("schedule id"))?;
                        return Ok(ScheduleOutcome::Duplicate(id));
                    }
                }
                let (count, earliest) = one(
                    t,
                    "SELECT COUNT(*) AS n, MIN(due_at) AS first FROM scheduled_messages \
                     WHERE owner_uid = ?1",
                    [owner],
                    |r| Ok((r.int("n")?, r.opt_int("first")?)),
                )?
                .unwrap_or((0, None));
                if u64::try_from(count).unwrap_or(0) >= max_pending {
                    let first = earliest.map_or(s.due_at, Timestamp::from_millis);
                    return Ok(ScheduleOutcome::Full(first));
                }
                let inserted = t
                    .prepare_cached(
                        "INSERT INTO scheduled_messages (id, owner_uid, session_id, to_uid, \
                         chat_id, payload, signature, client_id, due_at, created_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    )
                    .map_err(be)?
                    .execute(params![
                        s.id.to_bytes(),
                        owner,
                        s.session.0,
                        s.target.map(uid),
                        s.chat_id,
                        s.payload,
                        s.signature,
                        s.client_id,
                        s.due_at.millis(),
                        s.created_at.millis(),
                    ]);
                match inserted {
                    Ok(_) => Ok(ScheduleOutcome::Created),
                    Err(e) if unique_violation(&e).is_some() => {
                        Err(StoreError::Conflict("schedule_id"))
                    }
                    Err(e) => Err(be(e)),
                }
            })
            .await
    }

    async fn schedules_of(
        &self,
        owner: UserId,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(Vec<ScheduledMessage>, u64)> {
        self.db
            .read(move |c| {
                let owner = uid(owner);
                let rows = all(
                    c,
                    &format!(
                        "SELECT {SCHEDULE_COLS} FROM scheduled_messages WHERE owner_uid = ?1 \
                         ORDER BY due_at, id LIMIT ?2 OFFSET ?3"
                    ),
                    [owner, clamp(limit), clamp(offset)],
                    |r| schedule(r),
                )?;
                let total = one(
                    c,
                    "SELECT COUNT(*) AS n FROM scheduled_messages WHERE owner_uid = ?1",
                    [owner],
                    |r| r.int("n"),
                )?
                .unwrap_or(0);
                Ok((rows, u64::try_from(total).unwrap_or(0)))
            })
            .await
    }

    async fn cancel_schedule(
        &self,
        owner: UserId,
        id: ScheduleId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        self.db
            .write(move |t| {
                let n = exec(
                    t,
                    "DELETE FROM scheduled_messages WHERE id = ?1 AND owner_uid = ?2 \
                     AND (claim_token IS NULL OR claim_until <= ?3)",
                    params![id.to_bytes(), uid(owner), now.millis()],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn claim_due(&self, claim: Claim, limit: u64) -> StoreResult<Vec<ScheduledMessage>> {
        self.db
            .write(move |t| {
                let now = claim.now.millis();
                let rows = all(
                    t,
                    &format!(
                        "SELECT {SCHEDULE_COLS} FROM scheduled_messages WHERE due_at <= ?1 \
                         AND (claim_until IS NULL OR claim_until <= ?1) \
                         ORDER BY due_at, id LIMIT ?2"
                    ),
                    [now, clamp(limit)],
                    |r| schedule(r),
                )?;
                for r in &rows {
                    exec(
                        t,
                        "UPDATE scheduled_messages SET claim_token = ?1, claim_until = ?2 \
                         WHERE id = ?3",
                        params![token(claim.token), claim.until.millis(), r.id.to_bytes()],
                    )?;
                }
                Ok(rows)
            })
            .await
    }

    async fn finish_schedule(&self, id: ScheduleId, claim_token: u64) -> StoreResult<bool> {
        self.db
            .write(move |t| {
                let n = exec(
                    t,
                    "DELETE FROM scheduled_messages WHERE id = ?1 AND claim_token = ?2",
                    params![id.to_bytes(), token(claim_token)],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn defer_schedule(
        &self,
        id: ScheduleId,
        claim_token: u64,
        not_before: Timestamp,
    ) -> StoreResult<bool> {
        self.db
            .write(move |t| {
                let n = exec(
                    t,
                    "UPDATE scheduled_messages SET claim_token = NULL, claim_until = ?1 \
                     WHERE id = ?2 AND claim_token = ?3",
                    params![not_before.millis(), id.to_bytes(), token(claim_token)],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn next_due_after(&self, after: Timestamp) -> StoreResult<Option<Timestamp>> {
        self.db
            .read(move |c| {
                one(
                    c,
                    "SELECT due_at FROM scheduled_messages WHERE due_at > ?1 \
                     ORDER BY due_at LIMIT 1",
                    [after.millis()],
                    |r| r.time("due_at"),
                )
            })
            .await
    }
}
