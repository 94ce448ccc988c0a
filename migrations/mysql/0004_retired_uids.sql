-- Account erasure (issue 17): the uids of erased accounts, so that none is handed out again.
-- Only the number stays: every personal value of the account goes with its rows.
CREATE TABLE retired_uids (
    uid BIGINT NOT NULL,
    PRIMARY KEY (uid)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
