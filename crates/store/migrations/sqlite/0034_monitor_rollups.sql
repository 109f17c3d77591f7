-- Monitoring's long memory: raw samples older than their retention (7 days by
-- default) are rolled up into 5-minute and hourly buckets (count, min, sum, max)
-- and deleted, a few minutes of samples per step, so housekeeping never holds the
-- writer for long. The rollups are kept for 90 days (5 minutes) and two years (hourly).
CREATE TABLE ops_rollups (
    probe   INTEGER NOT NULL REFERENCES ops_probes (id),
    metric  TEXT NOT NULL,
    span    INTEGER NOT NULL,
    bucket  INTEGER NOT NULL,
    n       INTEGER NOT NULL,
    lo      REAL NOT NULL,
    total   REAL NOT NULL,
    hi      REAL NOT NULL,
    PRIMARY KEY (probe, metric, span, bucket)
);
CREATE INDEX ops_rollups_age ON ops_rollups (span, bucket);
CREATE INDEX ops_samples_age ON ops_samples (at);
CREATE INDEX ops_probe_runs_age ON ops_probe_runs (at);
