//! Reading the original server's data: its MySQL tables page by page (or as one ordered stream
//! where duplicates must be seen together), and its device tokens from Redis with `SCAN`.
//!
//! Text columns are read as bytes (a deployment may use a binary collation) and every
//! `DATETIME` as seconds since the epoch computed by the server (`TIMESTAMPDIFF`, independent
//! of the session's time zone; the original stored naive UTC).

use std::collections::HashSet;
use std::str::FromStr;

use futures_util::{Stream, TryStreamExt};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions, MySqlRow};
use sqlx::{MySqlPool, Row};

use super::ImportError;

/// Seconds since the epoch of a `DATETIME` column, as SQL.
fn secs(col: &str) -> String {
    format!("TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', {col})")
}

/// How the original's `users.unique_id` column is typed (older deployments made it an integer,
/// which lost leading zeros).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UidColumn {
    /// `VARCHAR(8)`: the uid as text.
    Text,
    /// An integer column: the uid left-padded to 8 digits.
    Integer,
}

/// One `users` row with its E2E public key and secret-key backup.
#[derive(Debug, Default)]
pub(crate) struct UserRow {
    pub(crate) id: i64,
    pub(crate) unique_id: Option<String>,
    pub(crate) phone: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) nickname: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) bio: Option<String>,
    pub(crate) avatar: Option<String>,
    pub(crate) password_hash: Option<String>,
    pub(crate) registered_secs: Option<i64>,
    pub(crate) last_activity_secs: Option<i64>,
    pub(crate) public_key: Option<String>,
    pub(crate) secret: Option<String>,
    pub(crate) secret_secs: Option<i64>,
}

/// One `subscriptions` row.
#[derive(Debug, Clone)]
pub(crate) struct EdgeRow {
    pub(crate) id: i64,
    pub(crate) user: Option<i64>,
    pub(crate) target: Option<i64>,
    pub(crate) status: String,
}

/// One `chats` row.
#[derive(Debug)]
pub(crate) struct ChatRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) owner: Option<i64>,
    pub(crate) created_secs: Option<i64>,
    pub(crate) is_public: bool,
    pub(crate) invite_code: Option<String>,
    pub(crate) slow_mode: i64,
}

/// One `chat_members` row.
#[derive(Debug, Clone)]
pub(crate) struct MemberRow {
    pub(crate) id: i64,
    pub(crate) chat: Option<i64>,
    pub(crate) user: Option<i64>,
    pub(crate) role: String,
    pub(crate) joined_secs: Option<i64>,
}

/// One `message_read_statuses` row.
#[derive(Debug, Clone)]
pub(crate) struct MarkerRow {
    pub(crate) id: i64,
    pub(crate) user: Option<i64>,
    pub(crate) chat: Option<i64>,
    pub(crate) message_id: String,
}

fn text(r: &MySqlRow, col: &str) -> Result<Option<String>, sqlx::Error> {
    let v: Option<Vec<u8>> = r.try_get(col)?;
    Ok(v.map(|b| match String::from_utf8(b) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }))
}

fn src(e: sqlx::Error) -> ImportError {
    ImportError::Source(one_line(&e.to_string()))
}

/// A database error as one line (server messages may span several).
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The original's MySQL database, read only.
#[derive(Debug)]
pub struct OriginalDb {
    pool: MySqlPool,
    uid_column: UidColumn,
    tables: HashSet<String>,
}

/// `mysql+aiomysql://…`, `mysql+pymysql://…` (SQLAlchemy's forms) and `mariadb://…` as
/// `mysql://…`.
pub(crate) fn normalize_url(url: &str) -> Result<String, ImportError> {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(ImportError::Usage(
            "the original's database URL must look like mysql://user:password@host/db".into(),
        ));
    };
    let base = scheme.split('+').next().unwrap_or_default();
    match base {
        "mysql" | "mariadb" => Ok(format!("mysql://{rest}")),
        _ => Err(ImportError::Usage(
            "the original's database URL must start with mysql:// (or mysql+driver://, mariadb://)"
                .into(),
        )),
    }
}

impl OriginalDb {
    /// Connects (two connections at most), and finds the tables and the uid column's type.
    pub async fn connect(url: &str) -> Result<Self, ImportError> {
        let url = normalize_url(url)?;
        let opts = MySqlConnectOptions::from_str(&url)
            .map_err(|_| ImportError::Usage("the original's database URL does not parse".into()))?;
        let pool = MySqlPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(opts)
            .await
            .map_err(src)?;
        let tables: HashSet<String> = sqlx::query(
            "SELECT CAST(TABLE_NAME AS CHAR) AS t FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE()",
        )
        .fetch_all(&pool)
        .await
        .map_err(src)?
        .iter()
        .filter_map(|r| text(r, "t").ok().flatten())
        .map(|t| t.to_ascii_lowercase())
        .collect();
        for needed in ["users", "subscriptions", "chats", "chat_members"] {
            if !tables.contains(needed) {
                return Err(ImportError::Schema(format!(
                    "the database has no `{needed}` table: is this the original server's database?"
                )));
            }
        }
        let ty = sqlx::query(
            "SELECT CAST(DATA_TYPE AS CHAR) AS t FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'users' AND COLUMN_NAME = 'unique_id'",
        )
        .fetch_optional(&pool)
        .await
        .map_err(src)?
        .and_then(|r| text(&r, "t").ok().flatten())
        .ok_or_else(|| ImportError::Schema("`users` has no `unique_id` column".into()))?;
        let uid_column = match ty.to_ascii_lowercase().as_str() {
            "int" | "integer" | "bigint" | "mediumint" | "smallint" | "tinyint" => {
                UidColumn::Integer
            }
            _ => UidColumn::Text,
        };
        Ok(Self {
            pool,
            uid_column,
            tables,
        })
    }

    /// How `users.unique_id` is typed.
    pub fn uid_column(&self) -> UidColumn {
        self.uid_column
    }

    /// Whether the database has this (optional) table.
    pub(crate) fn has_table(&self, name: &str) -> bool {
        self.tables.contains(name)
    }

    /// Users with `id > after`, ascending, at most `limit`.
    pub(crate) async fn users(&self, after: i64, limit: u32) -> Result<Vec<UserRow>, ImportError> {
        let keys = if self.has_table("e2e_keys") {
            "k.encrypted_public_key"
        } else {
            "NULL"
        };
        let (secret, secret_at) = if self.has_table("secret_e2e_keys") {
            ("s.client_encrypted_secret", secs("s.updated_at"))
        } else {
            ("NULL", "NULL".to_owned())
        };
        let mut joins = String::new();
        if self.has_table("e2e_keys") {
            joins.push_str(" LEFT JOIN e2e_keys k ON k.user_id = u.id");
        }
        if self.has_table("secret_e2e_keys") {
            joins.push_str(" LEFT JOIN secret_e2e_keys s ON s.user_id = u.id");
        }
        let sql = format!(
            "SELECT CAST(u.id AS SIGNED) AS id, CAST(u.unique_id AS CHAR) AS unique_id, \
             u.encrypted_phone AS phone, u.encrypted_name AS name, \
             u.encrypted_nickname AS nickname, u.encrypted_username AS username, \
             u.encrypted_bio AS bio, u.encrypted_avatar AS avatar, \
             u.hashed_password AS password_hash, {} AS registered, {} AS last_activity, \
             {keys} AS public_key, {secret} AS secret, {secret_at} AS secret_at \
             FROM users u{joins} WHERE u.id > ? ORDER BY u.id LIMIT ?",
            secs("u.e2e_key_updated"),
            secs("u.last_activity"),
        );
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(src)?;
        rows.iter()
            .map(|r| -> Result<UserRow, sqlx::Error> {
                Ok(UserRow {
                    id: r.try_get("id")?,
                    unique_id: text(r, "unique_id")?,
                    phone: text(r, "phone")?,
                    name: text(r, "name")?,
                    nickname: text(r, "nickname")?,
                    username: text(r, "username")?,
                    bio: text(r, "bio")?,
                    avatar: text(r, "avatar")?,
                    password_hash: text(r, "password_hash")?,
                    registered_secs: r.try_get("registered")?,
                    last_activity_secs: r.try_get("last_activity")?,
                    public_key: text(r, "public_key")?,
                    secret: text(r, "secret")?,
                    secret_secs: r.try_get("secret_at")?,
                })
            })
            .collect::<Result<_, _>>()
            .map_err(src)
    }

    /// Every contact edge, ordered by its unordered pair of users, then by id: the duplicates
    /// of a pair (either direction) come together. One streamed query (no page re-sorts).
    pub(crate) fn edges(&self) -> impl Stream<Item = Result<EdgeRow, ImportError>> + Send + '_ {
        sqlx::query(
            "SELECT CAST(id AS SIGNED) AS id, CAST(user_id AS SIGNED) AS user_id, \
             CAST(target_id AS SIGNED) AS target_id, status FROM subscriptions \
             ORDER BY LEAST(COALESCE(user_id, 0), COALESCE(target_id, 0)), \
             GREATEST(COALESCE(user_id, 0), COALESCE(target_id, 0)), id",
        )
        .fetch(&self.pool)
        .map_err(src)
        .and_then(|r| async move {
            Ok(EdgeRow {
                id: r.try_get("id").map_err(src)?,
                user: r.try_get("user_id").map_err(src)?,
                target: r.try_get("target_id").map_err(src)?,
                status: text(&r, "status").map_err(src)?.unwrap_or_default(),
            })
        })
    }

    /// Chats with `id > after`, ascending, at most `limit`.
    pub(crate) async fn chats(&self, after: i64, limit: u32) -> Result<Vec<ChatRow>, ImportError> {
        let sql = format!(
            "SELECT CAST(id AS SIGNED) AS id, name, type AS kind, CAST(owner_id AS SIGNED) AS owner, \
             {} AS created, CAST(COALESCE(is_public, 0) AS SIGNED) AS is_public, invite_code, \
             CAST(COALESCE(slow_mode_seconds, 0) AS SIGNED) AS slow_mode \
             FROM chats WHERE id > ? ORDER BY id LIMIT ?",
            secs("created_at")
        );
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(src)?;
        rows.iter()
            .map(|r| -> Result<ChatRow, sqlx::Error> {
                Ok(ChatRow {
                    id: r.try_get("id")?,
                    name: text(r, "name")?.unwrap_or_default(),
                    kind: text(r, "kind")?.unwrap_or_else(|| "chat".into()),
                    owner: r.try_get("owner")?,
                    created_secs: r.try_get("created")?,
                    is_public: r.try_get::<i64, _>("is_public")? != 0,
                    invite_code: text(r, "invite_code")?,
                    slow_mode: r.try_get("slow_mode")?,
                })
            })
            .collect::<Result<_, _>>()
            .map_err(src)
    }

    /// Every membership row ordered by (chat, user, id): duplicates come together.
    pub(crate) fn members(&self) -> impl Stream<Item = Result<MemberRow, ImportError>> + Send + '_ {
        sqlx::query(
            "SELECT CAST(id AS SIGNED) AS id, CAST(chat_id AS SIGNED) AS chat_id, \
             CAST(user_id AS SIGNED) AS user_id, role, \
             TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', joined_at) AS joined \
             FROM chat_members ORDER BY chat_id, user_id, id",
        )
        .fetch(&self.pool)
        .map_err(src)
        .and_then(|r| async move {
            Ok(MemberRow {
                id: r.try_get("id").map_err(src)?,
                chat: r.try_get("chat_id").map_err(src)?,
                user: r.try_get("user_id").map_err(src)?,
                role: text(&r, "role").map_err(src)?.unwrap_or_default(),
                joined_secs: r.try_get("joined").map_err(src)?,
            })
        })
    }

    /// Every read marker ordered by (user, chat, newest update first, id).
    pub(crate) fn markers(&self) -> impl Stream<Item = Result<MarkerRow, ImportError>> + Send + '_ {
        sqlx::query(
            "SELECT CAST(id AS SIGNED) AS id, CAST(user_id AS SIGNED) AS user_id, \
             CAST(chat_id AS SIGNED) AS chat_id, last_read_message_id AS message_id \
             FROM message_read_statuses \
             ORDER BY user_id, chat_id, COALESCE(updated_at, read_at) DESC, id DESC",
        )
        .fetch(&self.pool)
        .map_err(src)
        .and_then(|r| async move {
            Ok(MarkerRow {
                id: r.try_get("id").map_err(src)?,
                user: r.try_get("user_id").map_err(src)?,
                chat: r.try_get("chat_id").map_err(src)?,
                message_id: text(&r, "message_id").map_err(src)?.unwrap_or_default(),
            })
        })
    }

    /// Whether the original has a membership row of `user` (its `users.id`) in `chat`.
    pub(crate) async fn is_member(&self, chat: i64, user: i64) -> Result<bool, ImportError> {
        Ok(
            sqlx::query(
                "SELECT 1 AS x FROM chat_members WHERE chat_id = ? AND user_id = ? LIMIT 1",
            )
            .bind(chat)
            .bind(user)
            .fetch_optional(&self.pool)
            .await
            .map_err(src)?
            .is_some(),
        )
    }

    /// Closes the connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
