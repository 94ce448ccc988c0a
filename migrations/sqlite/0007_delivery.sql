-- The delivery engine's queue layout.
--
-- * Receipts (`msg_status` delivered/read) are queued in a compact encoding of ids and a time:
--   a `status` column beside `event` (sealed frames) keeps them apart from what a data-key
--   rotation re-seals.
-- * Acknowledgements remove entries by seq and the retention purge finds referenced messages
--   with one pass over the queue, so the `queue_message` index (a B-tree insert and delete per
--   queued message copy) goes.
-- * `messages.read` becomes `is_read`, the name the MySQL schema has (`read` is reserved
--   there), so both dialects share their row decoding.

CREATE TABLE queue_new (
    session_id   INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    message_id   BLOB,
    self_copy    INTEGER NOT NULL DEFAULT 0,
    event        BLOB,
    status       BLOB,
    gap_from     INTEGER,
    gap_count    INTEGER,
    gap_overflow INTEGER,
    gap_at       INTEGER,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq),
    CHECK ((message_id IS NOT NULL) + (event IS NOT NULL) + (status IS NOT NULL)
           + (gap_from IS NOT NULL) = 1),
    CHECK ((gap_from IS NULL) = (gap_count IS NULL)
       AND (gap_from IS NULL) = (gap_overflow IS NULL)
       AND (gap_from IS NULL) = (gap_at IS NULL))
) WITHOUT ROWID;

INSERT INTO queue_new (session_id, seq, message_id, self_copy, event, gap_from, gap_count,
                       gap_overflow, gap_at, created_at)
SELECT session_id, seq, message_id, self_copy, event, gap_from, gap_count, gap_overflow, gap_at,
       created_at
FROM queue;

DROP TABLE queue;
ALTER TABLE queue_new RENAME TO queue;

ALTER TABLE messages RENAME COLUMN read TO is_read;
