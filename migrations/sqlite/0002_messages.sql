-- Messages, per-device queues and their sequence counters (PROTOCOL §5.3, §4.6).
--
-- Message ids are UUIDv7 stored as 16-byte big-endian BLOBs: BLOBs compare with memcmp, so
-- `ORDER BY id` is time order, and the key is half the size of its 32-char hex text.
-- No foreign keys: stores persist what the service layer hands them, and sessions and users are
-- kept (inactive) rather than deleted.

CREATE TABLE messages (
    id             BLOB    PRIMARY KEY CHECK (length(id) = 16),
    from_uid       INTEGER NOT NULL,
    to_uid         INTEGER,
    chat_id        INTEGER,
    payload        TEXT    NOT NULL,
    signature      TEXT,
    created_at     INTEGER NOT NULL,
    delivered      INTEGER NOT NULL DEFAULT 0,
    read           INTEGER NOT NULL DEFAULT 0,
    sender_session INTEGER NOT NULL,
    client_id      TEXT,
    -- The DM conversation key (smaller uid, larger uid); NULL for chat messages because the
    -- multi-argument min()/max() return NULL when an argument is NULL.
    dm_lo          INTEGER GENERATED ALWAYS AS (min(from_uid, to_uid)) VIRTUAL,
    dm_hi          INTEGER GENERATED ALWAYS AS (max(from_uid, to_uid)) VIRTUAL
);
-- DM history: newest first by id within one pair; also serves the pair's count.
CREATE INDEX messages_dm ON messages(dm_lo, dm_hi, id) WHERE dm_lo IS NOT NULL;
-- Idempotency: a device uses each client_id once (within QUEUE_TTL: the purge then clears it).
CREATE UNIQUE INDEX messages_client_id ON messages(sender_session, client_id)
    WHERE client_id IS NOT NULL;
-- Retention purge (HISTORY_TTL) and client_id expiry: by age.
CREATE INDEX messages_created ON messages(created_at);

-- Highest seq ever assigned per session. Kept when the queue is dropped: seqs are never reused.
CREATE TABLE queue_seq (
    session_id INTEGER PRIMARY KEY,
    last_seq   INTEGER NOT NULL
);

-- One row per queued durable frame of a device: either a stored message (`message_id`,
-- `self_copy`), any other frame serialized without its seq (`event`), or a gap (`gap_*`: entries
-- dropped by expiry or overflow, PROTOCOL §5.3, at the seq of the newest dropped one).
-- `created_at` is the queue time (for a gap, `gap_at`).
CREATE TABLE queue (
    session_id   INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    message_id   BLOB,
    self_copy    INTEGER NOT NULL DEFAULT 0,
    event        BLOB,
    gap_from     INTEGER,
    gap_count    INTEGER,
    gap_overflow INTEGER,
    gap_at       INTEGER,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq),
    CHECK ((message_id IS NOT NULL) + (event IS NOT NULL) + (gap_from IS NOT NULL) = 1),
    CHECK ((gap_from IS NULL) = (gap_count IS NULL)
       AND (gap_from IS NULL) = (gap_overflow IS NULL)
       AND (gap_from IS NULL) = (gap_at IS NULL))
) WITHOUT ROWID;
-- ack by message_id (session_id = ? AND message_id = ?), and the purge's "still queued anywhere"
-- probe (message_id = ?): message_id leads so both can seek.
CREATE INDEX queue_message ON queue(message_id, session_id) WHERE message_id IS NOT NULL;
