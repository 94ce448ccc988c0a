-- Scheduled messages (`POST /schedule/message`): one row per pending one, deleted once it is
-- sent, discarded or cancelled. The payload is the client's opaque text, stored as `messages`
-- stores it.
--
-- Claims: every node's scheduler takes due rows by writing a random claim token and a lease end
-- (`claim_token`, `claim_until`), only on rows that are free (`claim_until` NULL or past), then
-- sends and deletes them. A deferred row (a send refused for now, e.g. slow mode) has no token
-- and a `claim_until` that says when it may be claimed again.
CREATE TABLE scheduled_messages (
    id          BLOB    PRIMARY KEY CHECK (length(id) = 16),
    owner_uid   INTEGER NOT NULL,
    session_id  INTEGER NOT NULL,
    to_uid      INTEGER,
    chat_id     INTEGER,
    payload     TEXT    NOT NULL,
    signature   TEXT,
    client_id   TEXT,
    due_at      INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    claim_token INTEGER,
    claim_until INTEGER,
    CHECK ((to_uid IS NULL) <> (chat_id IS NULL))
) WITHOUT ROWID;
-- A user's pending schedules by due time (listing, the per-user bound, erasure).
CREATE INDEX scheduled_messages_owner ON scheduled_messages(owner_uid, due_at, id);
-- Due rows, earliest first (the schedulers' claims, the next wake-up).
CREATE INDEX scheduled_messages_due ON scheduled_messages(due_at);
-- Idempotency: a device uses each client_id once among its pending schedules.
CREATE UNIQUE INDEX scheduled_messages_client_id ON scheduled_messages(session_id, client_id)
    WHERE client_id IS NOT NULL;
