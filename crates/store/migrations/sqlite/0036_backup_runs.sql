-- Every backup run, scheduled or by hand or in a drill: when, what it wrote (the file,
-- its size, the tables and rows of its manifest), where its off-site copy went, and
-- how it ended. Monitoring reads the last good one; the backups page lists them.
CREATE TABLE backup_runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT    NOT NULL,
    actor        TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    status       TEXT    NOT NULL,
    file         TEXT,
    bytes        INTEGER,
    tables       INTEGER,
    row_count    INTEGER,
    offsite      TEXT,
    error        TEXT
);
CREATE INDEX backup_runs_by_status ON backup_runs (status, finished_at);
