-- `melo import-original`: the users and chats the importer created from the original server's
-- data, so that a second run recognizes them (and skips them) and never takes over a user or a
-- chat Melo created itself. Only numbers: uids and chat ids. An erased user's row goes with the
-- account (its uid is retired, so a later run cannot create it again); a chat's row stays after
-- the chat is deleted, so a later run does not bring it back.
CREATE TABLE imported_users (
    uid BIGINT NOT NULL,
    PRIMARY KEY (uid)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE TABLE imported_chats (
    id BIGINT NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
