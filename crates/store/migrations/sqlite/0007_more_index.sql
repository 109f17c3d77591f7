-- Index tables for number, quantity and uri search parameters.
CREATE TABLE idx_number (
    res_type TEXT NOT NULL,
    res_id   TEXT NOT NULL,
    param    TEXT NOT NULL,
    value    REAL NOT NULL
);
CREATE INDEX idx_number_lookup ON idx_number (res_type, param, value);
CREATE INDEX idx_number_owner ON idx_number (res_type, res_id);

CREATE TABLE idx_quantity (
    res_type TEXT NOT NULL,
    res_id   TEXT NOT NULL,
    param    TEXT NOT NULL,
    value    REAL NOT NULL,
    system   TEXT,
    code     TEXT
);
CREATE INDEX idx_quantity_lookup ON idx_quantity (res_type, param, code, value);
CREATE INDEX idx_quantity_owner ON idx_quantity (res_type, res_id);

CREATE TABLE idx_uri (
    res_type TEXT NOT NULL,
    res_id   TEXT NOT NULL,
    param    TEXT NOT NULL,
    uri      TEXT NOT NULL
);
CREATE INDEX idx_uri_lookup ON idx_uri (res_type, param, uri);
CREATE INDEX idx_uri_owner ON idx_uri (res_type, res_id);
