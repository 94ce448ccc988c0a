-- Operator tools (`melo::admin`): account locks, single-use registration invites, and the
-- revocations operators write straight to the database, noted for running servers to see.

-- A locked user cannot log in (password, device token or link code).
ALTER TABLE users ADD COLUMN locked TINYINT(1) NOT NULL DEFAULT 0;

-- Registration invites by the keyed blind index of their code: the code itself is never
-- stored. `used` is set by the registration that takes the invite (and cleared again if that
-- registration fails); expired invites are deleted.
CREATE TABLE registration_invites (
    code_index VARBINARY(255) NOT NULL,
    expires_at BIGINT         NOT NULL,
    used       TINYINT(1)     NOT NULL DEFAULT 0,
    PRIMARY KEY (code_index)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row per revocation written by an operator tool: servers poll the rows after the last
-- one they saw and close the sockets of that user's revoked sessions. Kept a day.
CREATE TABLE revocation_notes (
    id  BIGINT NOT NULL AUTO_INCREMENT,
    uid BIGINT NOT NULL,
    at  BIGINT NOT NULL,
    PRIMARY KEY (id),
    KEY revocation_notes_at (at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
