-- Medical equipment (设备), staff data: each campus's asset register — the owning
-- department, what it is, what it cost, its lifecycle state, the CMDB item of a
-- networked device and the DICOM AE title of an imaging one, the intervals and due
-- dates of preventive maintenance and metrology (计量) — every step of its life as an
-- event, and the departments' repair requests (报修) with when an engineer took them
-- and when they were repaired.
CREATE TABLE equipment_assets (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    tag                TEXT    NOT NULL UNIQUE,
    campus             TEXT    NOT NULL,
    department         TEXT    NOT NULL,
    name_zh            TEXT    NOT NULL,
    name_en            TEXT    NOT NULL,
    category           TEXT    NOT NULL,
    model              TEXT,
    maker              TEXT,
    serial             TEXT,
    cost_fen           INTEGER NOT NULL,
    purchased_on       TEXT    NOT NULL,
    state              TEXT    NOT NULL,
    ci                 TEXT,
    ae_title           TEXT,
    pm_days            INTEGER,
    pm_due             TEXT,
    calibration_days   INTEGER,
    calibration_due    TEXT,
    changed_at         INTEGER NOT NULL
);
CREATE INDEX equipment_assets_by_campus ON equipment_assets (campus, department);
CREATE TABLE equipment_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    asset   INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    note    TEXT,
    actor   TEXT    NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX equipment_events_by_asset ON equipment_events (asset, id);
-- status: reported → in-progress → repaired.
CREATE TABLE equipment_repairs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    asset        INTEGER NOT NULL,
    campus       TEXT    NOT NULL,
    department   TEXT    NOT NULL,
    fault        TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    reported_by  TEXT    NOT NULL,
    reported_at  INTEGER NOT NULL,
    taken_by     TEXT,
    taken_at     INTEGER,
    repaired_by  TEXT,
    repaired_at  INTEGER,
    work         TEXT,
    cost_fen     INTEGER
);
CREATE INDEX equipment_repairs_by_campus ON equipment_repairs (campus, status, id);
-- One open repair per asset.
CREATE UNIQUE INDEX equipment_repairs_open ON equipment_repairs (asset) WHERE status <> 'repaired';
