-- A user's privacy choices (invisible mode), sealed as one value per user: the row exists once
-- the user changed a setting, whatever its value, so its presence says nothing.
CREATE TABLE user_settings (
    uid      INTEGER PRIMARY KEY REFERENCES users(uid) ON DELETE CASCADE,
    settings BLOB    NOT NULL
);
