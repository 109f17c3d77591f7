-- Composite search parameters (code-value-quantity and the like): one row per pair
-- of values found on the same element. The first part is always a token; the second
-- is a token or string (vsystem, vcode), a quantity (num, vsystem, vcode) or a
-- date range (low, high).
CREATE TABLE idx_composite (
    res_type TEXT NOT NULL,
    res_id   TEXT NOT NULL,
    param    TEXT NOT NULL,
    system   TEXT,
    code     TEXT NOT NULL,
    vsystem  TEXT,
    vcode    TEXT COLLATE "C",
    num      DOUBLE PRECISION,
    low      BIGINT,
    high     BIGINT
);
CREATE INDEX idx_composite_lookup ON idx_composite (res_type, param, code, vcode, num);
CREATE INDEX idx_composite_owner ON idx_composite (res_type, res_id, param);

-- Facts about the store itself, such as the version of the index-extraction rules the
-- index rows were built with (`lianyi reindex` rebuilds them when the rules change).
CREATE TABLE store_meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Owner indexes lead with (res_type, res_id, param): a criterion that probes a
-- candidate (EXISTS ... WHERE res_id = r.id AND param = ...) then matches three
-- equality columns and is never out-guessed by the lookup index's range scan.
DROP INDEX idx_token_owner;
CREATE INDEX idx_token_owner ON idx_token (res_type, res_id, param);
DROP INDEX idx_string_owner;
CREATE INDEX idx_string_owner ON idx_string (res_type, res_id, param);
DROP INDEX idx_reference_owner;
CREATE INDEX idx_reference_owner ON idx_reference (res_type, res_id, param);
DROP INDEX idx_date_owner;
CREATE INDEX idx_date_owner ON idx_date (res_type, res_id, param);
DROP INDEX idx_number_owner;
CREATE INDEX idx_number_owner ON idx_number (res_type, res_id, param);
DROP INDEX idx_quantity_owner;
CREATE INDEX idx_quantity_owner ON idx_quantity (res_type, res_id, param);
DROP INDEX idx_uri_owner;
CREATE INDEX idx_uri_owner ON idx_uri (res_type, res_id, param);
