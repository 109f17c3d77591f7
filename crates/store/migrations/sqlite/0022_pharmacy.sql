-- Pharmacy stock (药品库存), not health data. Each campus has its stores (药库 central
-- store, 门诊药房 outpatient pharmacy …); stock is held by batch (lot and expiry) in
-- the drug's dispensing unit, never below zero. Every change of a batch is a row of
-- stock_moves with the balance after it, so a batch's history adds up.
CREATE TABLE stores (
    campus  TEXT NOT NULL,
    code    TEXT NOT NULL,
    kind    TEXT NOT NULL,
    name_zh TEXT NOT NULL,
    name_en TEXT NOT NULL,
    PRIMARY KEY (campus, code)
);
CREATE TABLE batches (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    campus       TEXT    NOT NULL,
    store        TEXT    NOT NULL,
    drug         TEXT    NOT NULL,
    lot          TEXT    NOT NULL,
    expiry       TEXT    NOT NULL,
    quantity     INTEGER NOT NULL CHECK (quantity >= 0),
    purchase_fen INTEGER NOT NULL,
    retail_fen   INTEGER NOT NULL,
    supplier     TEXT,
    received_at  INTEGER NOT NULL,
    UNIQUE (campus, store, drug, lot)
);
CREATE INDEX batches_fefo ON batches (campus, store, drug, expiry);
CREATE TABLE stock_moves (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    batch   INTEGER NOT NULL,
    campus  TEXT    NOT NULL,
    store   TEXT    NOT NULL,
    drug    TEXT    NOT NULL,
    delta   INTEGER NOT NULL,
    balance INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    ref     TEXT,
    reason  TEXT,
    actor   TEXT    NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX stock_moves_by_batch ON stock_moves (batch, id);
CREATE INDEX stock_moves_by_store ON stock_moves (campus, store, at);
-- Reorder levels per drug and store: below it the drug is on the low-stock list.
CREATE TABLE stock_levels (
    campus        TEXT    NOT NULL,
    store         TEXT    NOT NULL,
    drug          TEXT    NOT NULL,
    reorder_level INTEGER NOT NULL,
    PRIMARY KEY (campus, store, drug)
);
-- Purchase orders (采购单) a store receives against (入库).
CREATE TABLE purchase_orders (
    campus     TEXT    NOT NULL,
    po_no      INTEGER NOT NULL,
    store      TEXT    NOT NULL,
    supplier   TEXT    NOT NULL,
    status     TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (campus, po_no)
);
CREATE TABLE purchase_lines (
    campus       TEXT    NOT NULL,
    po_no        INTEGER NOT NULL,
    drug         TEXT    NOT NULL,
    ordered      INTEGER NOT NULL,
    received     INTEGER NOT NULL CHECK (received <= ordered),
    purchase_fen INTEGER NOT NULL,
    PRIMARY KEY (campus, po_no, drug)
);
-- Transfers (调拨) between stores and campuses: shipped (the quantity counted out),
-- in transit, received (the quantity counted in).
CREATE TABLE transfers (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    from_campus  TEXT    NOT NULL,
    from_store   TEXT    NOT NULL,
    to_campus    TEXT    NOT NULL,
    to_store     TEXT    NOT NULL,
    drug         TEXT    NOT NULL,
    lot          TEXT    NOT NULL,
    expiry       TEXT    NOT NULL,
    purchase_fen INTEGER NOT NULL,
    retail_fen   INTEGER NOT NULL,
    shipped      INTEGER NOT NULL,
    received     INTEGER,
    status       TEXT    NOT NULL,
    note         TEXT,
    shipped_by   TEXT    NOT NULL,
    shipped_at   INTEGER NOT NULL,
    received_by  TEXT,
    received_at  INTEGER
);
CREATE INDEX transfers_to ON transfers (to_campus, status);
CREATE INDEX transfers_from ON transfers (from_campus, shipped_at);
-- The pharmacist's queue (发药): a paid prescription waits here from the payment's
-- transaction on; dispensing, returning (退药) and refunding change its status only
-- from the one they expect, so a dispense and a refund cannot both happen.
CREATE TABLE dispensing (
    request    TEXT    NOT NULL PRIMARY KEY,
    campus     TEXT    NOT NULL,
    patient    TEXT    NOT NULL,
    drug       TEXT    NOT NULL,
    quantity   INTEGER NOT NULL,
    invoice_no INTEGER NOT NULL,
    paid_at    INTEGER NOT NULL,
    status     TEXT    NOT NULL,
    dispense   TEXT,
    changed_by TEXT,
    changed_at INTEGER
);
CREATE INDEX dispensing_queue ON dispensing (campus, status, paid_at);
