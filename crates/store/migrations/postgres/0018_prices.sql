-- The price list (收费项目) of each campus: what can be charged, under the hospital's
-- own code, with the national or provincial code it maps to and its category; and
-- its prices, each from a moment on. A new price is a new row: what was charged at
-- the old price keeps it. Amounts are integer fen.
CREATE TABLE price_items (
    campus        TEXT    NOT NULL,
    code          TEXT    NOT NULL,
    national_code TEXT,
    category      TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    ref           TEXT,
    name_zh       TEXT    NOT NULL,
    name_en       TEXT    NOT NULL,
    unit          TEXT    NOT NULL,
    PRIMARY KEY (campus, code)
);
CREATE INDEX price_items_by_ref ON price_items (campus, kind, ref);
CREATE TABLE prices (
    campus         TEXT    NOT NULL,
    code           TEXT    NOT NULL,
    effective_from BIGINT NOT NULL,
    amount_fen     BIGINT NOT NULL,
    recorded_at    BIGINT NOT NULL,
    recorded_by    TEXT    NOT NULL,
    PRIMARY KEY (campus, code, effective_from)
);
