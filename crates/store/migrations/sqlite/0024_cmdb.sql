-- The configuration database (CMDB) of IT operations, not health data. A
-- configuration item (CI) has a class (host, network device, business system …) with
-- attributes of its own (a JSON object), a campus (none: group-wide), a support group
-- that owns its faults, and a lifecycle status. Relations say how a failure spreads:
-- the source of "runs-on", "depends-on", "connects-to" and "part-of" stops when its
-- target stops; "backs-up" spreads nothing. CIs the server registers itself are
-- marked managed_by = 'platform'.
CREATE TABLE ops_cis (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    code          TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    class         TEXT    NOT NULL,
    campus        TEXT,
    location      TEXT,
    status        TEXT    NOT NULL,
    owner         TEXT,
    support_group TEXT    NOT NULL,
    supplier      TEXT,
    warranty_end  TEXT,
    contract_end  TEXT,
    attrs         TEXT    NOT NULL,
    managed_by    TEXT,
    version       INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    updated_by    TEXT    NOT NULL
);
CREATE INDEX ops_cis_by_name ON ops_cis (name, id);
CREATE INDEX ops_cis_by_class ON ops_cis (class, name, id);
CREATE INDEX ops_cis_by_campus ON ops_cis (campus, name, id);
CREATE TABLE ops_relations (
    source     INTEGER NOT NULL REFERENCES ops_cis (id),
    kind       TEXT    NOT NULL,
    target     INTEGER NOT NULL REFERENCES ops_cis (id),
    created_at INTEGER NOT NULL,
    created_by TEXT    NOT NULL,
    PRIMARY KEY (source, kind, target),
    CHECK (source <> target)
);
CREATE INDEX ops_relations_by_target ON ops_relations (target, kind, source);
