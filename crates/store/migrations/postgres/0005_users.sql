-- People who log in, their role grants per campus, and their server-side sessions.
CREATE TABLE users (
    id                   TEXT    PRIMARY KEY,
    username             TEXT    NOT NULL UNIQUE,
    display_name         TEXT    NOT NULL,
    password_hash        TEXT    NOT NULL,
    must_change_password BIGINT NOT NULL DEFAULT 1,
    totp_secret          TEXT,
    totp_enabled         BIGINT NOT NULL DEFAULT 0,
    totp_last_step       BIGINT NOT NULL DEFAULT 0,
    failed_attempts      BIGINT NOT NULL DEFAULT 0,
    locked_until         BIGINT NOT NULL DEFAULT 0,
    disabled             BIGINT NOT NULL DEFAULT 0,
    patient              TEXT,
    language             TEXT,
    created_at           BIGINT NOT NULL,
    password_changed_at  BIGINT NOT NULL
);

CREATE TABLE user_roles (
    user_id TEXT NOT NULL,
    role    TEXT NOT NULL,
    campus  TEXT NOT NULL,
    PRIMARY KEY (user_id, role, campus)
);

-- Session ids are stored only as SHA-256 hashes.
CREATE TABLE sessions (
    id_hash     TEXT    PRIMARY KEY,
    user_id     TEXT    NOT NULL,
    created_at  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    stage       TEXT    NOT NULL,
    csrf        TEXT    NOT NULL,
    client_addr TEXT,
    revoked     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sessions_by_user ON sessions (user_id);
