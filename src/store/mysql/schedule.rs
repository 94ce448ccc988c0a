//! [`ScheduleStore`] of [`MysqlStore`].
//!
//! A claim is one `UPDATE … ORDER BY due_at LIMIT n` that writes a random token and the lease
//! end on due, free rows: InnoDB locks the rows it updates and re-checks the condition on the
//! latest committed version of a row another claim holds, so two nodes claiming at once never
//! take the same row. The claimed rows are then read back by their token. Creating a schedule
//! locks the owner's user row first, so an owner's concurrent creations run one after the other
//! and cannot both pass the pending bound (and an erasure, which deletes that row, cannot
//! interleave).

use async_trait::async_trait;
use sqlx::Row;

use super::{be, is_unique_violation, MysqlStore, TxError};
use crate::model::{Timestamp, UserId};
use crate::store::sql::rows::{clamp, corrupt, uid, Cells};
use crate::store::sql::schedule::{schedule, token, SCHEDULE_COLS};
use crate::store::{
    Claim, ScheduleId, ScheduleOutcome, ScheduleStore, ScheduledMessage, StoreError, StoreResult,
};

#[async_trait]
impl ScheduleStore for MysqlStore {
    async fn create_schedule(
        &self,
        s: &ScheduledMessage,
        max_pending: u64,
    ) -> StoreResult<ScheduleOutcome> {
        self.retry(move || async move {
            let mut tx = self.pool.begin().await?;
            let owner = uid(s.owner);
            let exists = sqlx::query("SELECT uid FROM users WHERE uid = ? FOR UPDATE")
                .bind(owner)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                tx.rollback().await?;
                return Ok(ScheduleOutcome::NoUser);
            }
            if let Some(cid) = &s.client_id {
                let first = sqlx::query(
                    "SELECT id FROM scheduled_messages WHERE session_id = ? AND client_id = ?",
                )
                .bind(s.session.0)
                .bind(cid.as_bytes())
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(first) = first {
                    tx.rollback().await?;
                    let id = ScheduleId::from_bytes(&first.bytes("id")?)
                        .ok_or_else(|| corrupt("schedule id"))?;
                    return Ok(ScheduleOutcome::Duplicate(id));
                }
            }
            let row = sqlx::query(
                "SELECT COUNT(*) AS n, MIN(due_at) AS first FROM scheduled_messages \
                 WHERE owner_uid = ?",
            )
            .bind(owner)
            .fetch_one(&mut *tx)
            .await?;
            let count: i64 = row.try_get("n")?;
            let earliest: Option<i64> = row.try_get("first")?;
            if u64::try_from(count).unwrap_or(0) >= max_pending {
                tx.rollback().await?;
                let first = earliest.map_or(s.due_at, Timestamp::from_millis);
                return Ok(ScheduleOutcome::Full(first));
            }
            let inserted = sqlx::query(
                "INSERT INTO scheduled_messages (id, owner_uid, session_id, to_uid, chat_id, \
                 payload, signature, client_id, due_at, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(s.id.to_bytes().to_vec())
            .bind(owner)
            .bind(s.session.0)
            .bind(s.target.map(uid))
            .bind(s.chat_id)
            .bind(&s.payload)
            .bind(s.signature.as_deref())
            .bind(s.client_id.as_deref().map(str::as_bytes))
            .bind(s.due_at.millis())
            .bind(s.created_at.millis())
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => {
                    tx.rollback().await?;
                    return Err(TxError::Store(StoreError::Conflict("schedule_id")));
                }
                Err(e) => return Err(e.into()),
            }
            tx.commit().await?;
            Ok(ScheduleOutcome::Created)
        })
        .await
    }

    async fn schedules_of(
        &self,
        owner: UserId,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(Vec<ScheduledMessage>, u64)> {
        let rows = sqlx::query(&format!(
            "SELECT {SCHEDULE_COLS} FROM scheduled_messages WHERE owner_uid = ? \
             ORDER BY due_at, id LIMIT ? OFFSET ?"
        ))
        .bind(uid(owner))
        .bind(clamp(limit))
        .bind(clamp(offset))
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        let list = rows.iter().map(schedule).collect::<StoreResult<Vec<_>>>()?;
        let total: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM scheduled_messages WHERE owner_uid = ?")
                .bind(uid(owner))
                .fetch_one(&self.pool)
                .await
                .map_err(be)?;
        Ok((list, u64::try_from(total).unwrap_or(0)))
    }

    async fn cancel_schedule(
        &self,
        owner: UserId,
        id: ScheduleId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        self.retry(move || async move {
            let res = sqlx::query(
                "DELETE FROM scheduled_messages WHERE id = ? AND owner_uid = ? \
                 AND (claim_token IS NULL OR claim_until <= ?)",
            )
            .bind(id.to_bytes().to_vec())
            .bind(uid(owner))
            .bind(now.millis())
            .execute(&self.pool)
            .await?;
            Ok(res.rows_affected() == 1)
        })
        .await
    }

    async fn claim_due(&self, claim: Claim, limit: u64) -> StoreResult<Vec<ScheduledMessage>> {
        self.retry(move || async move {
            sqlx::query(
                "UPDATE scheduled_messages SET claim_token = ?, claim_until = ? \
                 WHERE due_at <= ? AND (claim_until IS NULL OR claim_until <= ?) \
                 ORDER BY due_at, id LIMIT ?",
            )
            .bind(token(claim.token))
            .bind(claim.until.millis())
            .bind(claim.now.millis())
            .bind(claim.now.millis())
            .bind(clamp(limit))
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await?;
        let rows = sqlx::query(&format!(
            "SELECT {SCHEDULE_COLS} FROM scheduled_messages WHERE claim_token = ? \
             ORDER BY due_at, id"
        ))
        .bind(token(claim.token))
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        rows.iter().map(schedule).collect()
    }

    async fn finish_schedule(&self, id: ScheduleId, claim_token: u64) -> StoreResult<bool> {
        self.retry(move || async move {
            let res =
                sqlx::query("DELETE FROM scheduled_messages WHERE id = ? AND claim_token = ?")
                    .bind(id.to_bytes().to_vec())
                    .bind(token(claim_token))
                    .execute(&self.pool)
                    .await?;
            Ok(res.rows_affected() == 1)
        })
        .await
    }

    async fn defer_schedule(
        &self,
        id: ScheduleId,
        claim_token: u64,
        not_before: Timestamp,
    ) -> StoreResult<bool> {
        self.retry(move || async move {
            let res = sqlx::query(
                "UPDATE scheduled_messages SET claim_token = NULL, claim_until = ? \
                 WHERE id = ? AND claim_token = ?",
            )
            .bind(not_before.millis())
            .bind(id.to_bytes().to_vec())
            .bind(token(claim_token))
            .execute(&self.pool)
            .await?;
            Ok(res.rows_affected() == 1)
        })
        .await
    }

    async fn next_due_after(&self, after: Timestamp) -> StoreResult<Option<Timestamp>> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT due_at FROM scheduled_messages WHERE due_at > ? ORDER BY due_at LIMIT 1",
        )
        .bind(after.millis())
        .fetch_optional(&self.pool)
        .await
        .map_err(be)?;
        Ok(next.map(Timestamp::from_millis))
    }
}
