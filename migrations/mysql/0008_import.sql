-- `melo import-original`: the users and chats the importer created from the original server's
-- data, so that a second run recognizes them (and skips them) and never takes over a user or a
-- chat Melo created itself. Only numbers: uids and chat ids. An erased user's row goes with the
-- account (its uid is retired, so a later run cannot create it again); a chat's row stays after
-- the chat is deleted, so a later run does not bring it back.
-- `graph_done` / `tokens_done` / `members_done`: a complete run imported the user's contacts,
-- memberships and read markers / device tokens, the chat's members; later runs import none of
-- them again (what the user undid in Melo stays undone).
CREATE TABLE imported_users (
    uid BIGINT NOT NULL,
    graph_done TINYINT NOT NULL DEFAULT 0,
    tokens_done TINYINT NOT NULL DEFAULT 0,
    PRIMARY KEY (uid)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE TABLE imported_chats (
    id BIGINT NOT NULL,
    members_done TINYINT NOT NULL DEFAULT 0,
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
