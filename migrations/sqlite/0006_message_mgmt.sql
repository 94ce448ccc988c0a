-- Message management (PROTOCOL §4.6 "Message management") and chat history.
--
-- Edits replace `payload` and set `edited_at`; a delete sets `deleted` and erases `payload` to ''
-- and `signature` to NULL, keeping the row (its place in history).
ALTER TABLE messages ADD COLUMN edited_at INTEGER;
ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;

-- One reaction per (message, user). A rowid table on purpose: a new or changed reaction is a
-- new row with a larger rowid, so `ORDER BY rowid` is the order in which users reacted.
-- Reactions are emoji tied to ids, not PII: stored in clear.
CREATE TABLE reactions (
    message_id BLOB    NOT NULL,
    uid        INTEGER NOT NULL,
    reaction   TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (message_id, uid)
);

-- A message's reactions go with it (the retention purge, and any other delete).
CREATE TRIGGER messages_delete_reactions AFTER DELETE ON messages
BEGIN
    DELETE FROM reactions WHERE message_id = old.id;
END;

-- Chat history: newest first by id within one chat; also serves the chat's count.
CREATE INDEX messages_chat ON messages(chat_id, id) WHERE chat_id IS NOT NULL;
