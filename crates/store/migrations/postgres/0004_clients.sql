-- API clients (OAuth2 client credentials) and the bearer tokens issued to them.
-- Secrets and tokens are stored only as SHA-256 hashes (they are 256-bit random).
CREATE TABLE api_clients (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    secret_hash TEXT    NOT NULL,
    scopes      TEXT    NOT NULL,
    campuses    TEXT    NOT NULL,
    patient     TEXT,
    disabled    BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL
);

CREATE TABLE access_tokens (
    token_hash TEXT    PRIMARY KEY,
    client_id  TEXT    NOT NULL,
    scopes     TEXT    NOT NULL,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX access_tokens_by_client ON access_tokens (client_id);
