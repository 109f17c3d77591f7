-- Resource store: current versions, full history, search index tables.
CREATE TABLE resources (
    res_type     TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    version      BIGINT NOT NULL,
    last_updated BIGINT NOT NULL,
    campus       TEXT,
    deleted      BIGINT NOT NULL DEFAULT 0,
    body         TEXT    NOT NULL,
    PRIMARY KEY (res_type, id)
);
CREATE INDEX resources_by_updated ON resources (res_type, last_updated, id);

CREATE TABLE resource_history (
    res_type     TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    version      BIGINT NOT NULL,
    last_updated BIGINT NOT NULL,
    campus       TEXT,
    deleted      BIGINT NOT NULL DEFAULT 0,
    method       TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    PRIMARY KEY (res_type, id, version)
);
CREATE INDEX history_by_type_updated ON resource_history (res_type, last_updated);

CREATE TABLE idx_token (
    res_type TEXT NOT NULL,
    res_id   TEXT NOT NULL,
    param    TEXT NOT NULL,
    system   TEXT,
    code     TEXT NOT NULL
);
CREATE INDEX idx_token_lookup ON idx_token (res_type, param, code, system);
CREATE INDEX idx_token_owner ON idx_token (res_type, res_id);

CREATE TABLE idx_string (
    res_type TEXT NOT NULL,
    res_id   TEXT NOT NULL,
    param    TEXT NOT NULL,
    norm     TEXT COLLATE "C" NOT NULL,
    exact    TEXT NOT NULL
);
CREATE INDEX idx_string_lookup ON idx_string (res_type, param, norm);
CREATE INDEX idx_string_owner ON idx_string (res_type, res_id);

CREATE TABLE idx_reference (
    res_type    TEXT NOT NULL,
    res_id      TEXT NOT NULL,
    param       TEXT NOT NULL,
    target_type TEXT,
    target_id   TEXT NOT NULL
);
CREATE INDEX idx_reference_lookup ON idx_reference (res_type, param, target_id, target_type);
CREATE INDEX idx_reference_owner ON idx_reference (res_type, res_id);

CREATE TABLE idx_date (
    res_type TEXT    NOT NULL,
    res_id   TEXT    NOT NULL,
    param    TEXT    NOT NULL,
    low      BIGINT NOT NULL,
    high     BIGINT NOT NULL
);
CREATE INDEX idx_date_lookup ON idx_date (res_type, param, low, high);
CREATE INDEX idx_date_owner ON idx_date (res_type, res_id);
