-- People who log in, their role grants per campus, and their server-side sessions.
CREATE TABLE users (
    id                   TEXT    PRIMARY KEY,
    username             TEXT    NOT NULL UNIQUE,
    display_name         TEXT    NOT NULL,
    password_hash        TEXT    NOT NULL,
    must_change_password INTEGER NOT NULL DEFAULT 1,
    totp_secret          TEXT,
    totp_enabled         INTEGER NOT NULL DEFAULT 0,
    totp_last_step       INTEGER NOT NULL DEFAULT 0,
    failed_attempts      INTEGER NOT NULL DEFAULT 0,
    locked_until         INTEGER NOT NULL DEFAULT 0,
    disabled             INTEGER NOT NULL DEFAULT 0,
    patient              TEXT,
    language             TEXT,
    created_at           INTEGER NOT NULL,
    password_changed_at  INTEGER NOT NULL
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
    created_at  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    stage       TEXT    NOT NULL,
    csrf        TEXT    NOT NULL,
    client_addr TEXT,
    revoked     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_by_user ON sessions (user_id);
