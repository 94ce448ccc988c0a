-- Group chats, channels, memberships and invites (PROTOCOL §4.7).
--
-- `name` and the codes are sealed blobs (see crypto::Pii); codes are found through keyed blind
-- indexes (`code_index`, `invites.code_index`). The store applies no role rules.

CREATE TABLE chats (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT    NOT NULL CHECK (kind IN ('chat', 'channel')),
    name           BLOB    NOT NULL,
    owner          INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    is_public      INTEGER NOT NULL DEFAULT 0,
    -- The permanent invite code: set once, the first time the chat turns public, then kept.
    invite_code    BLOB,
    code_index     BLOB    UNIQUE,
    slow_mode_secs INTEGER NOT NULL DEFAULT 0,
    CHECK ((invite_code IS NULL) = (code_index IS NULL))
);

-- The key serves a chat's member list and fan-out (chat_id = ?) and single-member probes.
CREATE TABLE chat_members (
    chat_id   INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    uid       INTEGER NOT NULL,
    role      TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (chat_id, uid)
) WITHOUT ROWID;
-- A user's chats (chats_of, share_chat).
CREATE INDEX chat_members_uid ON chat_members(uid, chat_id);

-- Temporary invites by the blind index of their code. Multi-use until `expires_at`.
CREATE TABLE invites (
    code_index BLOB    PRIMARY KEY,
    chat_id    INTEGER NOT NULL,
    code       BLOB    NOT NULL,
    created_by INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
-- Expiry purge.
CREATE INDEX invites_expires ON invites(expires_at);
