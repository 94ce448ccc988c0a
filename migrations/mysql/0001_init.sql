-- Melo MySQL / MariaDB schema: the logical schema of migrations/sqlite (0001..0006) in one step.
--
-- Targets MariaDB 10.11 and MySQL 8. InnoDB, utf8mb4 with the binary collation. Every PII column
-- holds an AES-256-GCM sealed blob (see crypto::Pii) in a *BLOB column; lookups by PII go through
-- keyed blind indexes stored as VARBINARY, which compare byte for byte (no collation, no
-- trailing-space padding). Identifiers compared for equality (`client_id`, `device_id`,
-- reactions) are VARBINARY for the same reason.
--
-- Times are milliseconds since the Unix epoch (BIGINT). Message ids are UUIDv7 as BINARY(16)
-- big-endian, so `ORDER BY id` is time order. Booleans are TINYINT(1).

CREATE TABLE users (
    uid           BIGINT         NOT NULL,
    phone_index   VARBINARY(255) NOT NULL,
    phone         MEDIUMBLOB     NOT NULL,
    name          MEDIUMBLOB     NOT NULL,
    nickname      MEDIUMBLOB     NOT NULL,
    username      MEDIUMBLOB     NULL,
    bio           MEDIUMBLOB     NULL,
    public_key    MEDIUMBLOB     NULL,
    password_hash VARCHAR(255)   NOT NULL,
    created_at    BIGINT         NOT NULL,
    PRIMARY KEY (uid),
    UNIQUE KEY users_phone_index (phone_index)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE secret_keys (
    uid        BIGINT     NOT NULL,
    ciphertext MEDIUMBLOB NOT NULL,
    updated_at BIGINT     NOT NULL,
    PRIMARY KEY (uid),
    CONSTRAINT secret_keys_user FOREIGN KEY (uid) REFERENCES users (uid) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- MySQL has no partial indexes: `active_device` is the device id while the session is active
-- and NULL afterwards, and a UNIQUE key may hold any number of NULLs. So at most one active
-- session per (user, device), and lookups of the active one seek that key.
CREATE TABLE sessions (
    id                   BIGINT        NOT NULL AUTO_INCREMENT,
    uid                  BIGINT        NOT NULL,
    device_id            VARBINARY(64) NOT NULL,
    device_type          VARCHAR(16)   NOT NULL,
    device_name          MEDIUMBLOB    NOT NULL,
    ip                   MEDIUMBLOB    NOT NULL,
    created_at           BIGINT        NOT NULL,
    last_activity        MEDIUMBLOB    NOT NULL,
    device_token_hash    VARBINARY(255) NULL,
    device_token_expires BIGINT        NULL,
    active               TINYINT(1)    NOT NULL DEFAULT 1,
    active_device        VARBINARY(64) AS (CASE WHEN active = 1 THEN device_id END) STORED,
    PRIMARY KEY (id),
    UNIQUE KEY sessions_active_device (uid, active_device),
    KEY sessions_uid (uid, active)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One relationship per pair: user_lo < user_hi.
CREATE TABLE contacts (
    user_lo      BIGINT     NOT NULL,
    user_hi      BIGINT     NOT NULL,
    requester    BIGINT     NOT NULL,
    accepted     TINYINT(1) NOT NULL DEFAULT 0,
    secret       TINYINT(1) NOT NULL DEFAULT 0,
    requested_at BIGINT     NOT NULL,
    PRIMARY KEY (user_lo, user_hi),
    KEY contacts_hi (user_hi, user_lo)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Messages (PROTOCOL §5.3, §4.6). `is_read` is SQLite's `read` (a reserved word in MySQL).
-- `dm_lo`/`dm_hi` are the DM conversation key; NULL for chat messages (LEAST/GREATEST of a
-- NULL are NULL). Edits replace `payload` and set `edited_at`; a delete sets `deleted` and
-- erases `payload` to '' and `signature` to NULL, keeping the row.
CREATE TABLE messages (
    id             BINARY(16)    NOT NULL,
    from_uid       BIGINT        NOT NULL,
    to_uid         BIGINT        NULL,
    chat_id        BIGINT        NULL,
    payload        MEDIUMTEXT    NOT NULL,
    signature      TEXT          NULL,
    created_at     BIGINT        NOT NULL,
    delivered      TINYINT(1)    NOT NULL DEFAULT 0,
    is_read        TINYINT(1)    NOT NULL DEFAULT 0,
    sender_session BIGINT        NOT NULL,
    client_id      VARBINARY(255) NULL,
    edited_at      BIGINT        NULL,
    deleted        TINYINT(1)    NOT NULL DEFAULT 0,
    pinned         TINYINT(1)    NOT NULL DEFAULT 0,
    dm_lo          BIGINT        AS (LEAST(from_uid, to_uid)) STORED,
    dm_hi          BIGINT        AS (GREATEST(from_uid, to_uid)) STORED,
    PRIMARY KEY (id),
    -- DM history: newest first by id within one pair; also serves the pair's count.
    KEY messages_dm (dm_lo, dm_hi, id),
    -- Chat history: newest first by id within one chat; also serves the chat's count.
    KEY messages_chat (chat_id, id),
    -- Idempotency: a device uses each client_id once (until the purge forgets it).
    UNIQUE KEY messages_client_id (sender_session, client_id),
    -- Retention purge (HISTORY_TTL) and client_id expiry: by age.
    KEY messages_created (created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Highest seq ever assigned per session. Kept when the queue is dropped: seqs are never reused.
-- Appends lock the row (INSERT .. ON DUPLICATE KEY UPDATE), so seqs of a session are allocated
-- one transaction at a time: gap-free and increasing.
CREATE TABLE queue_seq (
    session_id BIGINT NOT NULL,
    last_seq   BIGINT NOT NULL,
    PRIMARY KEY (session_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row per queued durable frame of a device: a stored message (`message_id`, `self_copy`),
-- any other frame serialized without its seq (`event`), or a gap (`gap_*`, PROTOCOL §5.3).
-- `created_at` is the queue time (for a gap, `gap_at`).
CREATE TABLE queue (
    session_id   BIGINT     NOT NULL,
    seq          BIGINT     NOT NULL,
    message_id   BINARY(16) NULL,
    self_copy    TINYINT(1) NOT NULL DEFAULT 0,
    event        MEDIUMBLOB NULL,
    gap_from     BIGINT     NULL,
    gap_count    BIGINT     NULL,
    gap_overflow TINYINT(1) NULL,
    gap_at       BIGINT     NULL,
    created_at   BIGINT     NOT NULL,
    PRIMARY KEY (session_id, seq),
    -- ack by message (session_id, message_id) and the purge's "still queued anywhere" probe.
    KEY queue_message (message_id, session_id),
    CONSTRAINT queue_one_kind
        CHECK ((message_id IS NOT NULL) + (event IS NOT NULL) + (gap_from IS NOT NULL) = 1),
    CONSTRAINT queue_gap_fields
        CHECK ((gap_from IS NULL) = (gap_count IS NULL)
           AND (gap_from IS NULL) = (gap_overflow IS NULL)
           AND (gap_from IS NULL) = (gap_at IS NULL))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One reaction per (message, user); emoji tied to ids, not PII. `id` grows with each new or
-- changed reaction, so `ORDER BY id` is the order in which users reacted. A message's reactions
-- go with it (foreign key cascade).
CREATE TABLE reactions (
    id         BIGINT         NOT NULL AUTO_INCREMENT,
    message_id BINARY(16)     NOT NULL,
    uid        BIGINT         NOT NULL,
    reaction   VARBINARY(255) NOT NULL,
    at         BIGINT         NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY reactions_message_user (message_id, uid),
    CONSTRAINT reactions_message FOREIGN KEY (message_id) REFERENCES messages (id)
        ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Push registrations: at most one per session. `sealed` is opaque (sealed by the service);
-- `uid` is the session's owner, copied for the per-user listing.
CREATE TABLE push_registrations (
    session_id BIGINT     NOT NULL,
    uid        BIGINT     NOT NULL,
    sealed     MEDIUMBLOB NOT NULL,
    updated_at BIGINT     NOT NULL,
    PRIMARY KEY (session_id),
    KEY push_registrations_uid (uid, session_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Avatars (PROTOCOL §4.3): at most one per user; `sealed` is the image sealed by the service.
CREATE TABLE avatars (
    uid        BIGINT       NOT NULL,
    mime       VARCHAR(64)  NOT NULL,
    sealed     MEDIUMBLOB   NOT NULL,
    etag       VARCHAR(255) NOT NULL,
    updated_at BIGINT       NOT NULL,
    PRIMARY KEY (uid),
    CONSTRAINT avatars_user FOREIGN KEY (uid) REFERENCES users (uid) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Group chats and channels (PROTOCOL §4.7). `name` and the codes are sealed; codes are found
-- through keyed blind indexes. The permanent invite code is set once, then kept.
CREATE TABLE chats (
    id             BIGINT         NOT NULL AUTO_INCREMENT,
    kind           VARCHAR(16)    NOT NULL,
    name           MEDIUMBLOB     NOT NULL,
    owner          BIGINT         NOT NULL,
    created_at     BIGINT         NOT NULL,
    is_public      TINYINT(1)     NOT NULL DEFAULT 0,
    invite_code    MEDIUMBLOB     NULL,
    code_index     VARBINARY(255) NULL,
    slow_mode_secs BIGINT         NOT NULL DEFAULT 0,
    PRIMARY KEY (id),
    UNIQUE KEY chats_code_index (code_index),
    CONSTRAINT chats_kind CHECK (kind IN ('chat', 'channel')),
    CONSTRAINT chats_code CHECK ((invite_code IS NULL) = (code_index IS NULL))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The key serves a chat's member list and fan-out (chat_id = ?) and single-member probes;
-- `chat_members_uid` a user's chats (chats_of, share_chat).
CREATE TABLE chat_members (
    chat_id   BIGINT      NOT NULL,
    uid       BIGINT      NOT NULL,
    role      VARCHAR(16) NOT NULL,
    joined_at BIGINT      NOT NULL,
    PRIMARY KEY (chat_id, uid),
    KEY chat_members_uid (uid, chat_id),
    CONSTRAINT chat_members_chat FOREIGN KEY (chat_id) REFERENCES chats (id) ON DELETE CASCADE,
    CONSTRAINT chat_members_role CHECK (role IN ('owner', 'admin', 'member'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Temporary invites by the blind index of their code. Multi-use until `expires_at`.
CREATE TABLE invites (
    code_index VARBINARY(255) NOT NULL,
    chat_id    BIGINT         NOT NULL,
    code       MEDIUMBLOB     NOT NULL,
    created_by BIGINT         NOT NULL,
    expires_at BIGINT         NOT NULL,
    PRIMARY KEY (code_index),
    -- Expiry purge.
    KEY invites_expires (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
