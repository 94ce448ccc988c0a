-- Read markers (PROTOCOL §4.5 `POST /status/read`): the last message each user has read in each
-- chat, moved forward only, ordered by (at, message_id). `message_id` is the id as clients know
-- it (32 hex digits for Melo's messages; imported markers keep the original server's text);
-- `at` is that message's send time in ms (0 for imported markers). Deleted with the membership
-- (leave, removal) and with the account.
CREATE TABLE read_markers (
    uid        INTEGER NOT NULL,
    chat_id    INTEGER NOT NULL,
    message_id TEXT    NOT NULL CHECK (length(CAST(message_id AS BLOB)) BETWEEN 1 AND 64),
    at         INTEGER NOT NULL,
    PRIMARY KEY (uid, chat_id)
) WITHOUT ROWID;
