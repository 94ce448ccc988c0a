-- Melo SQLite schema. Every PII column holds an AES-256-GCM sealed blob (see crypto::Pii);
-- phone lookups go through the keyed blind index `phone_index`.

CREATE TABLE users (
    uid           INTEGER PRIMARY KEY,
    phone_index   BLOB    NOT NULL UNIQUE,
    phone         BLOB    NOT NULL,
    name          BLOB    NOT NULL,
    nickname      BLOB    NOT NULL,
    username      BLOB,
    bio           BLOB,
    public_key    BLOB,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE secret_keys (
    uid        INTEGER PRIMARY KEY REFERENCES users(uid) ON DELETE CASCADE,
    ciphertext BLOB    NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE sessions (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    uid                  INTEGER NOT NULL,
    device_id            TEXT    NOT NULL,
    device_type          TEXT    NOT NULL,
    device_name          BLOB    NOT NULL,
    ip                   BLOB    NOT NULL,
    created_at           INTEGER NOT NULL,
    last_activity        BLOB    NOT NULL,
    device_token_hash    BLOB,
    device_token_expires INTEGER,
    active               INTEGER NOT NULL DEFAULT 1
);
-- At most one active session per (user, device).
CREATE UNIQUE INDEX sessions_active_device ON sessions(uid, device_id) WHERE active = 1;
CREATE INDEX sessions_uid ON sessions(uid, active);

-- One relationship per pair: user_lo < user_hi.
CREATE TABLE contacts (
    user_lo      INTEGER NOT NULL,
    user_hi      INTEGER NOT NULL,
    requester    INTEGER NOT NULL,
    accepted     INTEGER NOT NULL DEFAULT 0,
    secret       INTEGER NOT NULL DEFAULT 0,
    requested_at INTEGER NOT NULL,
    PRIMARY KEY (user_lo, user_hi)
) WITHOUT ROWID;
CREATE INDEX contacts_hi ON contacts(user_hi, user_lo);
