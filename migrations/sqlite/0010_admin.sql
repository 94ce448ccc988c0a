-- Operator tools (`melo::admin`): account locks, single-use registration invites, and the
-- revocations operators write straight to the database, noted for running servers to see.

-- A locked user cannot log in (password, device token or link code).
ALTER TABLE users ADD COLUMN locked INTEGER NOT NULL DEFAULT 0;

-- Registration invites by the keyed blind index of their code: the code itself is never
-- stored. `used` is set by the registration that takes the invite (and cleared again if that
-- registration fails); expired invites are deleted.
CREATE TABLE registration_invites (
    code_index BLOB    PRIMARY KEY,
    expires_at INTEGER NOT NULL,
    used       INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- One row per revocation written by an operator tool: servers poll the rows after the last
-- one they saw and close the sockets of that user's revoked sessions. Kept a day.
CREATE TABLE revocation_notes (
    id  INTEGER PRIMARY KEY AUTOINCREMENT,
    uid INTEGER NOT NULL,
    at  INTEGER NOT NULL
);
CREATE INDEX revocation_notes_at ON revocation_notes(at);
