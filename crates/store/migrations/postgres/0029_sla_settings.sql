-- The service desk's SLA settings, kept by the IT manager (not health data): the
-- priority matrix, each priority's targets and the business hours (JSON values by
-- name), and the calendar days that differ from the built-in State Council schedule
-- (a year not yet in it, a hospital's own day off).
CREATE TABLE ops_sla_settings (
    name       TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_by TEXT    NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE ops_calendar_days (
    day        TEXT    PRIMARY KEY,
    turn       TEXT    NOT NULL,
    note       TEXT    NOT NULL,
    updated_by TEXT    NOT NULL,
    updated_at BIGINT NOT NULL
);
