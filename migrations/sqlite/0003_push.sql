-- Push registrations (PROTOCOL: at most one per session/device). `sealed` is an opaque blob the
-- service sealed (endpoint and keys never stored in the clear). `uid` is the session's owner,
-- copied for the per-user listing; revoking a session deletes its row in the same transaction.

CREATE TABLE push_registrations (
    session_id INTEGER PRIMARY KEY,
    uid        INTEGER NOT NULL,
    sealed     BLOB    NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX push_registrations_uid ON push_registrations(uid, session_id);
