-- Rosters (排班), staff data (not health data). Each campus's shift types: what a
-- shift is called, its kind (day, night, on-call, clinic) and hours (an end not after
-- the start is the next day); a clinic session's Slots are slot_minutes long.
CREATE TABLE roster_shift_types (
    campus        TEXT    NOT NULL,
    code          TEXT    NOT NULL,
    name_zh       TEXT    NOT NULL,
    name_en       TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    start_minute  INTEGER NOT NULL,
    end_minute    INTEGER NOT NULL,
    slot_minutes  INTEGER,
    PRIMARY KEY (campus, code)
);
-- Each campus's roster rules (a campus without a row keeps the defaults).
CREATE TABLE roster_rules (
    campus                  TEXT    PRIMARY KEY,
    rest_after_night_hours  INTEGER NOT NULL
);
-- Who works which shift on which day, in which department (through the person's
-- PractitionerRole there), with the shift's instants for the conflict checks.
CREATE TABLE roster_shifts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    practitioner  TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    department    TEXT    NOT NULL,
    campus        TEXT    NOT NULL,
    day           TEXT    NOT NULL,
    shift         TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    starts_at     INTEGER NOT NULL,
    ends_at       INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    created_by    TEXT    NOT NULL
);
CREATE INDEX roster_shifts_by_person ON roster_shifts (practitioner, starts_at);
CREATE INDEX roster_shifts_by_department ON roster_shifts (department, day);
CREATE UNIQUE INDEX roster_shifts_once ON roster_shifts (role, day, shift);
