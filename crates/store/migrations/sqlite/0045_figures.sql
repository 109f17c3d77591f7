-- Daily figures for the dashboards (not health data): per Beijing day, campus,
-- department and measure, a total (a count, minutes or fen) and how many records made
-- it. Department '*' holds the campus's total, so a group dashboard over a year reads
-- one row per campus, measure and day. Kept current by a follower of the outbox: each
-- record's contribution is kept in figure_sources, and a changed record replaces its
-- contribution (subtracted, then the new one added) in one transaction.
CREATE TABLE daily_figures (
    campus      TEXT    NOT NULL,
    department  TEXT    NOT NULL,
    measure     TEXT    NOT NULL,
    day         TEXT    NOT NULL,
    total       BIGINT  NOT NULL,
    n           BIGINT  NOT NULL,
    PRIMARY KEY (campus, department, measure, day)
);
CREATE INDEX daily_figures_by_day ON daily_figures (department, day);
CREATE TABLE figure_sources (
    source      TEXT    NOT NULL,
    campus      TEXT    NOT NULL,
    department  TEXT    NOT NULL,
    measure     TEXT    NOT NULL,
    day         TEXT    NOT NULL,
    total       BIGINT  NOT NULL,
    n           BIGINT  NOT NULL
);
CREATE INDEX figure_sources_by_source ON figure_sources (source);
-- A payment found by its FHIR Invoice (the dashboards' follower reads a paid invoice's lines).
CREATE INDEX payments_by_invoice ON payments (invoice_id);
-- The follower's cursor exists from the start (at the outbox's beginning), so the
-- outbox's retention keeps every event until the follower has read it.
INSERT INTO counters (name, value) VALUES ('cursor:dashboards', 0);
