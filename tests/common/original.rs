//! A deployment of the original Python server, as the importer finds it: a fresh MariaDB
//! database with the original's schema (its nine tables as SQLAlchemy and `init_db` made them,
//! with the `unique_id` column as VARCHAR(8) or, as older deployments have it, INT), filled
//! with values encrypted the way the original encrypted them (AES-256-GCM, no AAD, URL-safe
//! base64 with padding of nonce || ciphertext || tag), and its Redis logical database.
//!
//! Included by `tests/import_original.rs` with `#[path]` (with `zk_audit/backends.rs` as
//! `crate::backends`); not part of `common/mod.rs`, so the other test crates do not compile it.

use aes_gcm::aead::{Aead, OsRng};
use aes_gcm::{AeadCore, Aes256Gcm, KeyInit};
use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;
use sqlx::mysql::MySqlPool;

use crate::backends::MysqlDb;

/// The original's tables, as its models and start-up migrations made them: no UNIQUE(user_id, target_id) on
/// `subscriptions` and no UNIQUE(chat_id, user_id) on `chat_members`, so duplicates happen.
fn ddl(uid_int: bool) -> Vec<String> {
    let uid = if uid_int { "INT" } else { "VARCHAR(8)" };
    vec![
        format!(
            "CREATE TABLE users (
                id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                unique_id {uid} NOT NULL,
                hashed_phone VARCHAR(64) NULL,
                encrypted_phone TEXT NULL,
                encrypted_name TEXT NULL,
                encrypted_nickname TEXT NULL,
                encrypted_username TEXT NULL,
                encrypted_bio TEXT NULL,
                encrypted_avatar LONGTEXT NULL,
                avatar_mime VARCHAR(64) NULL,
                encrypted_avatar_mime TEXT NULL,
                hashed_password VARCHAR(255) NOT NULL,
                encrypted_device_id TEXT NULL,
                e2e_key_updated DATETIME NULL,
                encrypted_e2e_key_updated TEXT NULL,
                last_activity DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
                encrypted_last_activity TEXT NULL,
                UNIQUE INDEX ix_users_unique_id (unique_id),
                UNIQUE INDEX ix_users_hashed_phone (hashed_phone)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        ),
        "CREATE TABLE e2e_keys (
            user_id INT NOT NULL PRIMARY KEY,
            encrypted_public_key TEXT NOT NULL,
            updated_at DATETIME DEFAULT CURRENT_TIMESTAMP,
            FOREIGN KEY (user_id) REFERENCES users (id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            .into(),
        "CREATE TABLE subscriptions (
            id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            user_id INT NULL,
            target_id INT NULL,
            status VARCHAR(20) DEFAULT 'pending',
            INDEX ix_subscriptions_id (id),
            INDEX ix_subscriptions_user_id (user_id),
            INDEX ix_subscriptions_target_id (target_id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            .into(),
        "CREATE TABLE secret_e2e_keys (
            user_id INT NOT NULL PRIMARY KEY,
            client_encrypted_secret TEXT NOT NULL,
            updated_at DATETIME DEFAULT CURRENT_TIMESTAMP,
            FOREIGN KEY (user_id) REFERENCES users (id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            .into(),
        "CREATE TABLE chats (
            id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            name VARCHAR(255) NOT NULL,
            encrypted_name TEXT NULL,
            type VARCHAR(20) DEFAULT 'chat',
            owner_id INT NULL,
            created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
            encrypted_created_at TEXT NULL,
            is_public TINYINT(1) DEFAULT 0,
            invite_code VARCHAR(64) NULL UNIQUE,
            encrypted_invite_code TEXT NULL,
            slow_mode_seconds INT DEFAULT 0,
            INDEX ix_chats_owner_id (owner_id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            .into(),
        "CREATE TABLE chat_members (
            id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            chat_id INT NULL,
            user_id INT NULL,
            role VARCHAR(20) DEFAULT 'member',
            joined_at DATETIME DEFAULT CURRENT_TIMESTAMP,
            encrypted_joined_at TEXT NULL,
            INDEX ix_chat_members_chat_id (chat_id),
            INDEX ix_chat_members_user_id (user_id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            .into(),
        "CREATE TABLE user_sessions (
            id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            user_id INT NULL,
            session_token VARCHAR(255) NULL,
            device_type VARCHAR(20) NOT NULL,
            device_name VARCHAR(100) NULL,
            ip_address VARCHAR(45) NULL,
            user_agent TEXT NULL,
            created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
            last_activity DATETIME DEFAULT CURRENT_TIMESTAMP,
            is_active TINYINT(1) DEFAULT 1,
            encrypted_device_type TEXT NULL,
            encrypted_device_name TEXT NULL,
            encrypted_ip_address TEXT NULL,
            encrypted_user_agent TEXT NULL,
            encrypted_created_at TEXT NULL,
            encrypted_last_activity TEXT NULL,
            UNIQUE INDEX ix_user_sessions_session_token (session_token),
            INDEX ix_user_sessions_user_id (user_id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            .into(),
        "CREATE TABLE user_statuses (
            user_id INT NOT NULL PRIMARY KEY,
            status VARCHAR(20) DEFAULT 'offline',
            last_seen DATETIME DEFAULT CURRENT_TIMESTAMP,
            encrypted_last_seen TEXT NULL,
            is_typing_in_chat INT NULL,
            typing_started_at DATETIME NULL,
            updated_at DATETIME DEFAULT CURRENT_TIMESTAMP,
            encrypted_updated_at TEXT NULL
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            .into(),
        "CREATE TABLE message_read_statuses (
            id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            user_id INT NULL,
            chat_id INT NULL,
            last_read_message_id VARCHAR(36) NOT NULL,
            read_at DATETIME DEFAULT CURRENT_TIMESTAMP,
            updated_at DATETIME DEFAULT CURRENT_TIMESTAMP,
            encrypted_last_read_message_id TEXT NULL,
            encrypted_read_at TEXT NULL,
            encrypted_updated_at TEXT NULL,
            INDEX ix_mrs_user_id (user_id),
            INDEX ix_mrs_chat_id (chat_id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            .into(),
    ]
}

/// The original's `ENCRYPTION_KEY_STR` and its encryption.
pub struct OriginalKey {
    raw: [u8; 32],
}

impl OriginalKey {
    pub fn random() -> Self {
        Self {
            raw: rand::random(),
        }
    }

    /// URL-safe base64 with padding, as the original's settings hold it.
    pub fn text(&self) -> String {
        URL_SAFE.encode(self.raw)
    }

    /// `base64url_with_padding(nonce[12] || ciphertext || tag[16])`, no AAD.
    pub fn encrypt(&self, plain: &[u8]) -> String {
        let cipher = Aes256Gcm::new_from_slice(&self.raw).expect("32-byte key");
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        out.extend(cipher.encrypt(&nonce, plain).expect("encrypt"));
        URL_SAFE.encode(out)
    }

    /// A value as the original stored an avatar: the image bytes decoded as Latin-1, then
    /// encrypted as UTF-8 text.
    pub fn encrypt_latin1(&self, bytes: &[u8]) -> String {
        let text: String = bytes.iter().map(|b| char::from(*b)).collect();
        self.encrypt(text.as_bytes())
    }
}

/// One user row to insert; `None` columns are NULL. Encrypted columns are given encrypted.
#[derive(Default, Clone)]
pub struct UserRow {
    pub unique_id: String,
    pub hashed_phone: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub nickname: Option<String>,
    pub username: Option<String>,
    pub bio: Option<String>,
    pub avatar: Option<String>,
    pub password_hash: String,
    pub public_key: Option<String>,
    pub secret_backup: Option<String>,
}

/// A fresh original database on the MariaDB of `MELO_TEST_MYSQL_URL`.
pub struct OriginalDb {
    pub db: Option<MysqlDb>,
    /// `mysql+aiomysql://…` as the original's settings would name it.
    pub url: String,
    pub pool: MySqlPool,
}

impl OriginalDb {
    pub async fn create(mysql_url: &str, uid_int: bool) -> Self {
        let (db, url) = MysqlDb::create_empty(mysql_url).await;
        let pool = MySqlPool::connect(&url)
            .await
            .expect("connect to the original's test database");
        for stmt in ddl(uid_int) {
            sqlx::query(&stmt)
                .execute(&pool)
                .await
                .unwrap_or_else(|e| panic!("original DDL: {e}\n{stmt}"));
        }
        let url = url.replacen("mysql://", "mysql+aiomysql://", 1);
        Self {
            db: Some(db),
            url,
            pool,
        }
    }

    /// Inserts a user (and its E2E key and secret backup rows); returns its `id`.
    pub async fn user(&self, u: &UserRow) -> i64 {
        let res = sqlx::query(
            "INSERT INTO users (unique_id, hashed_phone, encrypted_phone, encrypted_name, \
             encrypted_nickname, encrypted_username, encrypted_bio, encrypted_avatar, avatar_mime, \
             hashed_password, e2e_key_updated, last_activity) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'image/png', ?, '2024-03-01 10:00:00', '2024-05-01 12:00:00')",
        )
        .bind(&u.unique_id)
        .bind(&u.hashed_phone)
        .bind(&u.phone)
        .bind(&u.name)
        .bind(&u.nickname)
        .bind(&u.username)
        .bind(&u.bio)
        .bind(&u.avatar)
        .bind(&u.password_hash)
        .execute(&self.pool)
        .await
        .expect("insert user");
        let id = res.last_insert_id() as i64;
        if let Some(k) = &u.public_key {
            sqlx::query("INSERT INTO e2e_keys (user_id, encrypted_public_key) VALUES (?, ?)")
                .bind(id)
                .bind(k)
                .execute(&self.pool)
                .await
                .expect("insert e2e key");
        }
        if let Some(s) = &u.secret_backup {
            sqlx::query(
                "INSERT INTO secret_e2e_keys (user_id, client_encrypted_secret) VALUES (?, ?)",
            )
            .bind(id)
            .bind(s)
            .execute(&self.pool)
            .await
            .expect("insert secret backup");
        }
        id
    }

    /// Inserts a subscription edge; returns its id.
    pub async fn edge(&self, user: i64, target: i64, status: &str) -> i64 {
        sqlx::query("INSERT INTO subscriptions (user_id, target_id, status) VALUES (?, ?, ?)")
            .bind(user)
            .bind(target)
            .bind(status)
            .execute(&self.pool)
            .await
            .expect("insert subscription")
            .last_insert_id() as i64
    }

    /// Inserts a chat with an explicit id.
    #[allow(clippy::too_many_arguments)]
    pub async fn chat(
        &self,
        id: i64,
        name: &str,
        kind: &str,
        owner: i64,
        public: bool,
        code: Option<&str>,
        slow: i64,
    ) {
        sqlx::query(
            "INSERT INTO chats (id, name, type, owner_id, created_at, is_public, invite_code, \
             slow_mode_seconds) VALUES (?, ?, ?, ?, '2024-02-01 09:30:00', ?, ?, ?)",
        )
        .bind(id)
        .bind(name)
        .bind(kind)
        .bind(owner)
        .bind(public)
        .bind(code)
        .bind(slow)
        .execute(&self.pool)
        .await
        .expect("insert chat");
    }

    /// Inserts a membership row; returns its id.
    pub async fn member(&self, chat: i64, user: i64, role: &str) -> i64 {
        sqlx::query("INSERT INTO chat_members (chat_id, user_id, role) VALUES (?, ?, ?)")
            .bind(chat)
            .bind(user)
            .bind(role)
            .execute(&self.pool)
            .await
            .expect("insert member")
            .last_insert_id() as i64
    }

    /// Inserts a read marker; returns its id.
    pub async fn read_marker(&self, user: i64, chat: i64, message: &str) -> i64 {
        sqlx::query(
            "INSERT INTO message_read_statuses (user_id, chat_id, last_read_message_id) \
             VALUES (?, ?, ?)",
        )
        .bind(user)
        .bind(chat)
        .bind(message)
        .execute(&self.pool)
        .await
        .expect("insert read marker")
        .last_insert_id() as i64
    }

    /// Closes the pool and drops the database.
    pub async fn drop_now(mut self) {
        self.pool.close().await;
        if let Some(db) = self.db.take() {
            db.drop_database().await;
        }
    }
}

/// The original's Redis: a logical database of its own on the server of `MELO_TEST_REDIS_URL`
/// (the original's key names cannot take a prefix). Flushed when made and when dropped.
pub struct OriginalRedis {
    pub url: String,
}

/// The logical database the import test uses; no other test selects it.
pub const REDIS_DB: u32 = 9;

impl OriginalRedis {
    pub async fn create(redis_url: &str) -> Self {
        let base = redis_url.trim_end_matches('/');
        let base = match base.rsplit_once('/') {
            // `redis://host:port/N`: replace the database number.
            Some((b, n)) if !b.ends_with('/') && n.bytes().all(|c| c.is_ascii_digit()) => b,
            _ => base,
        };
        let url = format!("{base}/{REDIS_DB}");
        let r = Self { url };
        let mut con = r.conn().await;
        redis::cmd("FLUSHDB")
            .exec_async(&mut con)
            .await
            .expect("FLUSHDB of the original's Redis database");
        r
    }

    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("MELO_TEST_REDIS_URL is set but Redis is unreachable: {e}"))
    }

    /// `SET key value [EX ttl]`.
    pub async fn set(&self, key: &str, value: &str, ttl: Option<u64>) {
        let mut con = self.conn().await;
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value);
        if let Some(t) = ttl {
            cmd.arg("EX").arg(t);
        }
        cmd.exec_async(&mut con).await.expect("SET");
    }

    /// `RPUSH key values…`.
    pub async fn rpush(&self, key: &str, values: &[&str]) {
        let mut con = self.conn().await;
        redis::cmd("RPUSH")
            .arg(key)
            .arg(values)
            .exec_async(&mut con)
            .await
            .expect("RPUSH");
    }
}

impl Drop for OriginalRedis {
    fn drop(&mut self) {
        let url = self.url.clone();
        let _ = std::thread::spawn(move || -> redis::RedisResult<()> {
            let mut con = redis::Client::open(url)?.get_connection()?;
            redis::cmd("FLUSHDB").exec(&mut con)
        })
        .join();
    }
}
