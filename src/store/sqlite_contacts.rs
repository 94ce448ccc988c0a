//! [`ContactStore`] of the SQLite backend: one row per pair (`user_lo < user_hi`).

use async_trait::async_trait;

use super::{be, contact_from_row, is_unique_violation, pair, uid_of, SqliteStore};
use crate::model::{Timestamp, UserId};
use crate::store::{Contact, ContactStore, StoreError, StoreResult};

#[async_trait]
impl ContactStore for SqliteStore {
    async fn relationship(&self, a: UserId, b: UserId) -> StoreResult<Option<Contact>> {
        let (lo, hi) = pair(a, b);
        let row = sqlx::query("SELECT * FROM contacts WHERE user_lo = ? AND user_hi = ?")
            .bind(lo)
            .bind(hi)
            .fetch_optional(&self.pool)
            .await
            .map_err(be)?;
        row.as_ref().map(contact_from_row).transpose()
    }

    async fn request_contact(
        &self,
        from: UserId,
        to: UserId,
        secret: bool,
        at: Timestamp,
    ) -> StoreResult<()> {
        let (lo, hi) = pair(from, to);
        let res = sqlx::query(
            "INSERT INTO contacts (user_lo, user_hi, requester, accepted, secret, requested_at) \
             VALUES (?, ?, ?, 0, ?, ?)",
        )
        .bind(lo)
        .bind(hi)
        .bind(i64::from(from.get()))
        .bind(secret)
        .bind(at.millis())
        .execute(&self.writer)
        .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict("contact")),
            Err(e) => Err(be(e)),
        }
    }

    async fn accept_contact(&self, requester: UserId, target: UserId) -> StoreResult<bool> {
        let (lo, hi) = pair(requester, target);
        let res = sqlx::query(
            "UPDATE contacts SET accepted = 1 WHERE user_lo = ? AND user_hi = ? AND requester = ? AND accepted = 0",
        )
        .bind(lo)
        .bind(hi)
        .bind(i64::from(requester.get()))
        .execute(&self.writer)
        .await
        .map_err(be)?;
        Ok(res.rows_affected() == 1)
    }

    async fn remove_contact(&self, a: UserId, b: UserId) -> StoreResult<Option<Contact>> {
        let (lo, hi) = pair(a, b);
        let row = sqlx::query("DELETE FROM contacts WHERE user_lo = ? AND user_hi = ? RETURNING *")
            .bind(lo)
            .bind(hi)
            .fetch_optional(&self.writer)
            .await
            .map_err(be)?;
        row.as_ref().map(contact_from_row).transpose()
    }

    async fn contacts_of(
        &self,
        user: UserId,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(Vec<UserId>, u64)> {
        let me = i64::from(user.get());
        let total: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM contacts WHERE user_lo = ?1 AND accepted = 1) + \
                    (SELECT COUNT(*) FROM contacts WHERE user_hi = ?1 AND accepted = 1)",
        )
        .bind(me)
        .fetch_one(&self.pool)
        .await
        .map_err(be)?;
        let rows = sqlx::query(
            "SELECT other FROM (\
               SELECT user_hi AS other FROM contacts WHERE user_lo = ?1 AND accepted = 1 \
               UNION ALL \
               SELECT user_lo AS other FROM contacts WHERE user_hi = ?1 AND accepted = 1) \
             ORDER BY other LIMIT ?2 OFFSET ?3",
        )
        .bind(me)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        let ids = rows
            .iter()
            .map(|r| uid_of(r, "other"))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((ids, total.max(0) as u64))
    }

    async fn pending_of(&self, user: UserId) -> StoreResult<Vec<Contact>> {
        let rows = sqlx::query(
            "SELECT * FROM contacts WHERE (user_lo = ?1 OR user_hi = ?1) AND accepted = 0 ORDER BY requested_at",
        )
        .bind(i64::from(user.get()))
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        rows.iter().map(contact_from_row).collect()
    }
}
