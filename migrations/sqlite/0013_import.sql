-- `melo import-original`: the users and chats the importer created from the original server's
-- data, so that a second run recognizes them (and skips them) and never takes over a user or a
-- chat Melo created itself. Only numbers: uids and chat ids. An erased user's row goes with the
-- account (its uid is retired, so a later run cannot create it again); a chat's row stays after
-- the chat is deleted, so a later run does not bring it back.
-- `graph_done` / `tokens_done` / `members_done`: a complete run imported the user's contacts,
-- memberships and read markers / device tokens, the chat's members; later runs import none of
-- them again (what the user undid in Melo stays undone).
CREATE TABLE imported_users (
    uid INTEGER PRIMARY KEY,
    graph_done INTEGER NOT NULL DEFAULT 0,
    tokens_done INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE imported_chats (
    id INTEGER PRIMARY KEY,
    members_done INTEGER NOT NULL DEFAULT 0
);
