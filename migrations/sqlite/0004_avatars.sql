-- Avatars (PROTOCOL §4.3): at most one per user. `sealed` is the image sealed by the service
-- (never stored in the clear); `mime` is the sniffed type (not PII); `etag` is derived from the
-- sealed blob, so it reveals nothing about the image.

CREATE TABLE avatars (
    uid        INTEGER PRIMARY KEY REFERENCES users(uid) ON DELETE CASCADE,
    mime       TEXT    NOT NULL,
    sealed     BLOB    NOT NULL,
    etag       TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);
