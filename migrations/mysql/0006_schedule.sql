-- Scheduled messages (`POST /schedule/message`): one row per pending one, deleted once it is
-- sent, discarded or cancelled. The payload is the client's opaque text, stored as `messages`
-- stores it.
--
-- Claims: every node's scheduler takes due rows by writing a random claim token and a lease end
-- (`claim_token`, `claim_until`), only on rows that are free (`claim_until` NULL or past), in one
-- UPDATE, then sends and deletes them. A deferred row (a send refused for now, e.g. slow mode)
-- has no token and a `claim_until` that says when it may be claimed again.
CREATE TABLE scheduled_messages (
    id          BINARY(16)     NOT NULL,
    owner_uid   BIGINT         NOT NULL,
    session_id  BIGINT         NOT NULL,
    to_uid      BIGINT         NULL,
    chat_id     BIGINT         NULL,
    payload     MEDIUMTEXT     NOT NULL,
    signature   TEXT           NULL,
    client_id   VARBINARY(255) NULL,
    due_at      BIGINT         NOT NULL,
    created_at  BIGINT         NOT NULL,
    claim_token BIGINT         NULL,
    claim_until BIGINT         NULL,
    PRIMARY KEY (id),
    -- A user's pending schedules by due time (listing, the per-user bound, erasure).
    KEY scheduled_messages_owner (owner_uid, due_at, id),
    -- Due rows, earliest first (the schedulers' claims, the next wake-up).
    KEY scheduled_messages_due (due_at),
    -- The rows of one claim, read back after the claiming UPDATE.
    KEY scheduled_messages_claim (claim_token),
    -- Idempotency: a device uses each client_id once among its pending schedules (NULLs are
    -- distinct).
    UNIQUE KEY scheduled_messages_client_id (session_id, client_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
