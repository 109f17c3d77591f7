-- Materials (物资/耗材): the group's catalogue, stock by batch in each campus's
-- warehouse and in its departments, every change of a batch as a move with the balance
-- after it, reorder levels, department requisitions (申领) and their lines, and the
-- high-value consumables (高值耗材) one row per unit by its unique code, down to the
-- patient it was used on. Stock never goes below zero (the CHECK stands behind the
-- conditional decrements).
CREATE TABLE material_items (
    code      TEXT    PRIMARY KEY,
    name_zh   TEXT    NOT NULL,
    name_en   TEXT    NOT NULL,
    unit      TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    active    INTEGER NOT NULL
);
-- location: 'warehouse' (the campus's 物资库) or a department's Organization id.
CREATE TABLE material_batches (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    campus       TEXT    NOT NULL,
    location     TEXT    NOT NULL,
    item         TEXT    NOT NULL,
    lot          TEXT    NOT NULL,
    expiry       TEXT,
    quantity     INTEGER NOT NULL CHECK (quantity >= 0),
    cost_fen     INTEGER NOT NULL,
    supplier     TEXT,
    received_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX material_batches_once ON material_batches (campus, location, item, lot);
CREATE TABLE material_moves (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    batch     INTEGER NOT NULL,
    campus    TEXT    NOT NULL,
    location  TEXT    NOT NULL,
    item      TEXT    NOT NULL,
    delta     INTEGER NOT NULL,
    balance   INTEGER NOT NULL,
    kind      TEXT    NOT NULL,
    ref       TEXT,
    reason    TEXT,
    actor     TEXT    NOT NULL,
    at        INTEGER NOT NULL
);
CREATE INDEX material_moves_by_place ON material_moves (campus, location, id);
CREATE TABLE material_levels (
    campus         TEXT    NOT NULL,
    item           TEXT    NOT NULL,
    reorder_level  INTEGER NOT NULL,
    PRIMARY KEY (campus, item)
);
-- status: requested → approved | rejected; approved → issued.
CREATE TABLE material_requisitions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    campus        TEXT    NOT NULL,
    department    TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    note          TEXT,
    requested_by  TEXT    NOT NULL,
    requested_at  INTEGER NOT NULL,
    decided_by    TEXT,
    decided_at    INTEGER,
    reason        TEXT,
    issued_by     TEXT,
    issued_at     INTEGER
);
CREATE INDEX material_requisitions_by_campus ON material_requisitions (campus, status, id);
CREATE TABLE material_requisition_lines (
    requisition  INTEGER NOT NULL,
    item         TEXT    NOT NULL,
    requested    INTEGER NOT NULL CHECK (requested > 0),
    approved     INTEGER,
    issued       INTEGER,
    PRIMARY KEY (requisition, item)
);
-- One high-value unit: the batch it is in now; once used, the patient and the charge.
CREATE TABLE material_units (
    udi        TEXT    PRIMARY KEY,
    item       TEXT    NOT NULL,
    batch      INTEGER NOT NULL,
    status     TEXT    NOT NULL,
    patient    TEXT,
    used_at    INTEGER,
    used_by    TEXT,
    charge     TEXT
);
CREATE INDEX material_units_by_batch ON material_units (batch, status, udi);
