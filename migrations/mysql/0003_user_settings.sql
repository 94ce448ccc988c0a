-- A user's privacy choices (invisible mode), sealed as one value per user: the row exists once
-- the user changed a setting, whatever its value, so its presence says nothing.
CREATE TABLE user_settings (
    uid      BIGINT NOT NULL,
    settings BLOB   NOT NULL,
    PRIMARY KEY (uid),
    CONSTRAINT user_settings_user FOREIGN KEY (uid) REFERENCES users (uid) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
