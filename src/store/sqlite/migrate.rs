//! Embedded migrations (`migrations/sqlite`), applied on the writer connection when the store
//! opens. The bookkeeping table is sqlx's `_sqlx_migrations`, with the same columns and
//! checksums, so databases made by earlier releases (which ran sqlx's migrator) carry on.

use std::time::Instant;

use rusqlite::{params, Connection};

use super::db::be;
use crate::store::{Migrations, StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The version of the newest migration.
pub(super) fn latest() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Applies every migration not applied yet, each in its own transaction ([`Migrations::Apply`]),
/// or only checks that none is missing ([`Migrations::Verify`]); refuses a database with a
/// failed migration or one whose applied migrations differ from this release's.
pub(super) fn run(conn: &mut Connection, mode: Migrations) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
            success BOOLEAN NOT NULL,
            checksum BLOB NOT NULL,
            execution_time BIGINT NOT NULL
        );",
    )
    .map_err(be)?;
    let applied: Vec<(i64, Vec<u8>, bool)> = conn
        .prepare("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
        .map_err(be)?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(be)?
        .collect::<Result<_, _>>()
        .map_err(be)?;
    if let Some((v, _, _)) = applied.iter().find(|(_, _, ok)| !ok) {
        return Err(StoreError::Backend(
            format!("migration {v} failed earlier: the database needs repair").into(),
        ));
    }
    if mode == Migrations::Verify {
        if let Some((v, _, _)) = applied
            .iter()
            .find(|(v, _, _)| MIGRATOR.iter().all(|m| m.version != *v))
        {
            return Err(StoreError::Backend(
                format!(
                    "the database has migration {v}, which this release does not know: it was \
                     migrated by a newer release"
                )
                .into(),
            ));
        }
    }
    for m in MIGRATOR.iter() {
        if let Some((_, sum, _)) = applied.iter().find(|(v, _, _)| *v == m.version) {
            if sum.as_slice() != m.checksum.as_ref() {
                return Err(StoreError::Backend(
                    format!("migration {} differs from the one applied", m.version).into(),
                ));
            }
            continue;
        }
        if mode == Migrations::Verify {
            return Err(StoreError::Backend(
                format!(
                    "the database lacks migration {} ({}) of this release: run `melo migrate` \
                     first (or start without --no-migrate)",
                    m.version, m.description
                )
                .into(),
            ));
        }
        let started = Instant::now();
        let tx = conn.transaction().map_err(be)?;
        tx.execute_batch(&m.sql).map_err(be)?;
        tx.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (?1, ?2, TRUE, ?3, ?4)",
            params![
                m.version,
                m.description.as_ref(),
                m.checksum.as_ref(),
                started.elapsed().as_nanos() as i64
            ],
        )
        .map_err(be)?;
        tx.commit().map_err(be)?;
        tracing::info!(version = m.version, description = %m.description, "applied migration");
    }
    Ok(())
}
