-- Read markers (PROTOCOL §4.5 `POST /status/read`): the last message each user has read in each
-- chat, moved forward only, ordered by (at, message_id) bytewise. `message_id` is the id as
-- clients know it (32 hex digits for Melo's messages; imported markers keep the original
-- server's text, hence binary and up to 64 bytes); `at` is that message's send time in ms (0 for
-- imported markers). Deleted with the membership (leave, removal) and with the account.
CREATE TABLE read_markers (
    uid        BIGINT        NOT NULL,
    chat_id    BIGINT        NOT NULL,
    message_id VARBINARY(64) NOT NULL,
    at         BIGINT        NOT NULL,
    PRIMARY KEY (uid, chat_id),
    CONSTRAINT read_markers_id CHECK (LENGTH(message_id) BETWEEN 1 AND 64)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
