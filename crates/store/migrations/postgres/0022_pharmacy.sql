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
    id           BIGSERIAL PRIMARY KEY,
    campus       TEXT    NOT NULL,
    store        TEXT    NOT NULL,
    drug         TEXT    NOT NULL,
    lot          TEXT    NOT NULL,
    expiry       TEXT    NOT NULL,
    quantity     BIGINT NOT NULL CHECK (quantity >= 0),
    purchase_fen BIGINT NOT NULL,
    retail_fen   BIGINT NOT NULL,
    supplier     TEXT,
    received_at  BIGINT NOT NULL,
    UNIQUE (campus, store, drug, lot)
);
CREATE INDEX batches_fefo ON batches (campus, store, drug, expiry);
CREATE TABLE stock_moves (
    id      BIGSERIAL PRIMARY KEY,
    batch   BIGINT NOT NULL,
    campus  TEXT    NOT NULL,
    store   TEXT    NOT NULL,
    drug    TEXT    NOT NULL,
    delta   BIGINT NOT NULL,
    balance BIGINT NOT NULL,
    kind    TEXT    NOT NULL,
    ref     TEXT,
    reason  TEXT,
    actor   TEXT    NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX stock_moves_by_batch ON stock_moves (batch, id);
CREATE INDEX stock_moves_by_store ON stock_moves (campus, store, at);
-- Reorder levels per drug and store: below it the drug is on the low-stock list.
CREATE TABLE stock_levels (
    campus        TEXT    NOT NULL,
    store         TEXT    NOT NULL,
    drug          TEXT    NOT NULL,
    reorder_level BIGINT NOT NULL,
    PRIMARY KEY (campus, store, drug)
);
-- Purchase orders (采购单) a store receives against (入库).
CREATE TABLE purchase_orders (
    campus     TEXT    NOT NULL,
    po_no      BIGINT NOT NULL,
    store      TEXT    NOT NULL,
    supplier   TEXT    NOT NULL,
    status     TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (campus, po_no)
);
CREATE TABLE purchase_lines (
    campus       TEXT    NOT NULL,
    po_no        BIGINT NOT NULL,
    drug         TEXT    NOT NULL,
    ordered      BIGINT NOT NULL,
    received     BIGINT NOT NULL CHECK (received <= ordered),
    purchase_fen BIGINT NOT NULL,
    PRIMARY KEY (campus, po_no, drug)
);
-- Transfers (调拨) between stores and campuses: shipped (the quantity counted out),
-- in transit, received (the quantity counted in).
CREATE TABLE transfers (
    id           BIGSERIAL PRIMARY KEY,
    from_campus  TEXT    NOT NULL,
    from_store   TEXT    NOT NULL,
    to_campus    TEXT    NOT NULL,
    to_store     TEXT    NOT NULL,
    drug         TEXT    NOT NULL,
    lot          TEXT    NOT NULL,
    expiry       TEXT    NOT NULL,
    purchase_fen BIGINT NOT NULL,
    retail_fen   BIGINT NOT NULL,
    shipped      BIGINT NOT NULL,
    received     BIGINT,
    status       TEXT    NOT NULL,
    note         TEXT,
    shipped_by   TEXT    NOT NULL,
    shipped_at   BIGINT NOT NULL,
    received_by  TEXT,
    received_at  BIGINT
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
    quantity   BIGINT NOT NULL,
    invoice_no BIGINT NOT NULL,
    paid_at    BIGINT NOT NULL,
    status     TEXT    NOT NULL,
    dispense   TEXT,
    changed_by TEXT,
    changed_at BIGINT
);
CREATE INDEX dispensing_queue ON dispensing (campus, status, paid_at);
