//! [`ContactStore`] of the MySQL backend: one row per pair (`user_lo < user_hi`).

use async_trait::async_trait;

use super::{be, is_unique_violation, MysqlStore};
use crate::model::{Timestamp, UserId};
use crate::store::sql::rows::{self, clamp, pair, uid, Cells, CONTACT_COLS};
use crate::store::{Contact, ContactStore, StoreError, StoreResult};

#[async_trait]
impl ContactStore for MysqlStore {
    async fn relationship(&self, a: UserId, b: UserId) -> StoreResult<Option<Contact>> {
        let (lo, hi) = pair(a, b);
        let row = sqlx::query(&format!(
            "SELECT {CONTACT_COLS} FROM contacts WHERE user_lo = ? AND user_hi = ?"
        ))
        .bind(lo)
        .bind(hi)
        .fetch_optional(&self.pool)
        .await
        .map_err(be)?;
        row.as_ref().map(rows::contact).transpose()
    }

    async fn request_contact(
        &self,
        from: UserId,
        to: UserId,
        secret: bool,
        at: Timestamp,
    ) -> StoreResult<()> {
        let (lo, hi) = pair(from, to);
        self.retry(move || async move {
            let res = sqlx::query(
                "INSERT INTO contacts (user_lo, user_hi, requester, accepted, secret, \
                 requested_at) VALUES (?, ?, ?, 0, ?, ?)",
            )
            .bind(lo)
            .bind(hi)
            .bind(uid(from))
            .bind(secret)
            .bind(at.millis())
            .execute(&self.pool)
            .await;
            match res {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict("contact").into()),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn accept_contact(&self, requester: UserId, target: UserId) -> StoreResult<bool> {
        let (lo, hi) = pair(requester, target);
        self.retry(move || async move {
            let res = sqlx::query(
                "UPDATE contacts SET accepted = 1 \
                 WHERE user_lo = ? AND user_hi = ? AND requester = ? AND accepted = 0",
            )
            .bind(lo)
            .bind(hi)
            .bind(uid(requester))
            .execute(&self.pool)
            .await?;
            Ok(res.rows_affected() == 1)
        })
        .await
    }

    async fn remove_contact(&self, a: UserId, b: UserId) -> StoreResult<Option<Contact>> {
        let (lo, hi) = pair(a, b);
        self.retry(move || async move {
            let mut tx = self.pool.begin().await?;
            let row = sqlx::query(&format!(
                "SELECT {CONTACT_COLS} FROM contacts WHERE user_lo = ? AND user_hi = ? FOR UPDATE"
            ))
            .bind(lo)
            .bind(hi)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                tx.rollback().await?;
                return Ok(None);
            };
            let contact = rows::contact(&row)?;
            sqlx::query("DELETE FROM contacts WHERE user_lo = ? AND user_hi = ?")
                .bind(lo)
                .bind(hi)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(contact))
        })
        .await
    }

    async fn contacts_of(
        &self,
        user: UserId,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(Vec<UserId>, u64)> {
        let me = uid(user);
        // Two index seeks (primary key by user_lo, `contacts_hi` by user_hi).
        let total: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM contacts WHERE user_lo = ? AND accepted = 1) + \
                    (SELECT COUNT(*) FROM contacts WHERE user_hi = ? AND accepted = 1)",
        )
        .bind(me)
        .bind(me)
        .fetch_one(&self.pool)
        .await
        .map_err(be)?;
        let rows = sqlx::query(
            "SELECT other FROM (\
               SELECT user_hi AS other FROM contacts WHERE user_lo = ? AND accepted = 1 \
               UNION ALL \
               SELECT user_lo AS other FROM contacts WHERE user_hi = ? AND accepted = 1) t \
             ORDER BY other LIMIT ? OFFSET ?",
        )
        .bind(me)
        .bind(me)
        .bind(clamp(limit))
        .bind(clamp(offset))
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        let ids = rows
            .iter()
            .map(|r| r.uid("other"))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((ids, total.max(0) as u64))
    }

    async fn pending_of(&self, user: UserId) -> StoreResult<Vec<Contact>> {
        let me = uid(user);
        let rows = sqlx::query(&format!(
            "SELECT {CONTACT_COLS} FROM (\
               SELECT {CONTACT_COLS} FROM contacts WHERE user_lo = ? AND accepted = 0 \
               UNION ALL \
               SELECT {CONTACT_COLS} FROM contacts WHERE user_hi = ? AND accepted = 0) t \
             ORDER BY requested_at"
        ))
        .bind(me)
        .bind(me)
        .fetch_all(&self.pool)
        .await
        .map_err(be)?;
        rows.iter().map(rows::contact).collect()
    }
}
