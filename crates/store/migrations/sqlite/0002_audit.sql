-- Tamper-evident audit log: each record carries the hash of its predecessor.
CREATE TABLE audit_log (
    seq           INTEGER PRIMARY KEY,
    recorded_at   INTEGER NOT NULL,
    actor         TEXT    NOT NULL,
    actor_kind    TEXT    NOT NULL,
    role          TEXT,
    campus        TEXT,
    action        TEXT    NOT NULL,
    resource_type TEXT,
    resource_id   TEXT,
    patient       TEXT,
    outcome       TEXT    NOT NULL,
    client_addr   TEXT,
    detail        TEXT,
    alg           TEXT    NOT NULL,
    prev_hash     TEXT    NOT NULL,
    hash          TEXT    NOT NULL
);
CREATE INDEX audit_by_time ON audit_log (recorded_at);
CREATE INDEX audit_by_patient ON audit_log (patient, recorded_at);
CREATE INDEX audit_by_actor ON audit_log (actor, recorded_at);

-- The chain head: appends lock this row, so records are numbered and linked in order.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY,
    seq  INTEGER NOT NULL,
    hash TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
