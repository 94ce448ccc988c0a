//! The backends of the audit: a fresh MySQL database per test (named `melo_t_…` like the
//! store's own conformance databases, so a killed run is swept by the next one) and a Redis
//! ephemeral under a unique key prefix. A URL that is set but unusable fails the test.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use melo::{MysqlStore, RedisEphemeral};
use sqlx::mysql::MySqlConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// `MELO_TEST_MYSQL_URL` / `MELO_TEST_REDIS_URL` when set (and not empty).
pub fn env_url(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|u| !u.is_empty())
}

/// `MELO_TEST_MYSQL_URL` and the Redis URL in `redis_var`; `None`, with a note, when either is
/// unset (the caller skips). Used by the test crates that include this file, not by the audit.
#[allow(dead_code)]
pub fn mysql_and_redis(redis_var: &str) -> Option<(String, String)> {
    match (env_url("MELO_TEST_MYSQL_URL"), env_url(redis_var)) {
        (Some(m), Some(r)) => Some((m, r)),
        _ => {
            eprintln!("MELO_TEST_MYSQL_URL / {redis_var} unset: skipping");
            None
        }
    }
}

/// A test database, dropped by [`MysqlDb::drop_now`] or, after a panic, on drop.
pub struct MysqlDb {
    admin: MySqlConnectOptions,
    name: String,
}

impl MysqlDb {
    /// Creates `melo_t_<secs>_<random>` on the server of `url` and opens a store on it.
    pub async fn create(url: &str) -> (Self, Arc<MysqlStore>) {
        let (db, _) = Self::create_empty(url).await;
        let store = MysqlStore::connect_with(db.admin.clone().database(&db.name))
            .await
            .expect("open MysqlStore on the test database");
        (db, Arc::new(store))
    }

    /// Creates `melo_t_<secs>_<random>` on the server of `url`, empty; also returns `url` with
    /// its database replaced by the new one (a `DB_URL` for the example binary).
    pub async fn create_empty(url: &str) -> (Self, String) {
        let url = url.replacen("mariadb:", "mysql:", 1);
        let admin = MySqlConnectOptions::from_str(&url).expect("parse MELO_TEST_MYSQL_URL");
        let mut conn = admin
            .connect()
            .await
            .unwrap_or_else(|e| panic!("MELO_TEST_MYSQL_URL is set but MySQL is unusable: {e}"));
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let name = format!("melo_t_{secs}_{:016x}", rand::random::<u64>());
        sqlx::query(&format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        ))
        .execute(&mut conn)
        .await
        .expect("create the test database");
        conn.close().await.expect("close the admin connection");
        let db_url = with_database(&url, &name);
        (Self { admin, name }, db_url)
    }

    /// Closes `store`'s pool and drops the database.
    pub async fn drop_now(self, store: Arc<MysqlStore>) {
        store.pool().close().await;
        self.drop_database().await;
    }

    /// Drops the database (whoever used it is gone).
    pub async fn drop_database(mut self) {
        let name = std::mem::take(&mut self.name);
        let mut conn = self.admin.connect().await.expect("admin connection");
        sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
            .execute(&mut conn)
            .await
            .expect("drop the test database");
    }
}

impl Drop for MysqlDb {
    /// After a panic: kill the connections still on the database, then drop it, on a thread and
    /// runtime of its own (this runs inside the test's runtime).
    fn drop(&mut self) {
        if self.name.is_empty() {
            return;
        }
        let (admin, name) = (self.admin.clone(), std::mem::take(&mut self.name));
        let dropped = std::thread::spawn(move || -> anyhow::Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let mut conn = admin.connect().await?;
                let ids: Vec<i64> = sqlx::query_scalar(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? \
                     AND ID != CONNECTION_ID()",
                )
                .bind(&name)
                .fetch_all(&mut conn)
                .await?;
                for id in ids {
                    let _ = sqlx::query(&format!("KILL {id}")).execute(&mut conn).await;
                }
                sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
                    .execute(&mut conn)
                    .await?;
                Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the MySQL test database: {dropped:?}");
        }
    }
}

/// The keys of one test under a fresh prefix on a Redis server, deleted on drop (also after a
/// panic).
pub struct RedisKeys {
    pub url: String,
    pub prefix: String,
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        let (url, pattern) = (self.url.clone(), format!("{}*", self.prefix));
        // Blocking I/O: on a thread of its own, not on the test's runtime.
        let done = std::thread::spawn(move || -> redis::RedisResult<()> {
            let mut con = redis::Client::open(url)?.get_connection()?;
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .query(&mut con)?;
                if !keys.is_empty() {
                    redis::cmd("DEL").arg(keys).exec(&mut con)?;
                }
                if next == 0 {
                    return Ok(());
                }
                cursor = next;
            }
        })
        .join();
        if !matches!(done, Ok(Ok(()))) {
            eprintln!("could not delete the Redis test keys: {done:?}");
        }
    }
}

/// A Redis ephemeral on `url` under a fresh prefix, and the guard of its keys.
pub async fn redis(url: &str) -> (Arc<RedisEphemeral>, RedisKeys) {
    let prefix = format!("melo-zk-{}:", uuid::Uuid::now_v7().simple());
    let keys = RedisKeys {
        url: url.to_owned(),
        prefix: prefix.clone(),
    };
    match RedisEphemeral::connect(url).await {
        Ok(e) => (Arc::new(e.with_prefix(prefix)), keys),
        Err(e) => panic!("MELO_TEST_REDIS_URL is set but Redis is unreachable: {e}"),
    }
}

/// `url` with its database (the path) replaced by `name`, the query string kept.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let (scheme, rest) = base.split_once("://").expect("a URL with ://");
    let host = rest.split_once('/').map_or(rest, |(h, _)| h);
    match query {
        Some(q) => format!("{scheme}://{host}/{name}?{q}"),
        None => format!("{scheme}://{host}/{name}"),
    }
}
