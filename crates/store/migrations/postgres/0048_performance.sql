-- Performance (绩效): each person's daily figures beside their department's, kept
-- current by the dashboards' follower (a record names its person: the doctor of a
-- visit, who signed a prescription or a request, who issued a report, who answered a
-- critical value), and each campus's own formula.
ALTER TABLE figure_sources ADD COLUMN person TEXT NOT NULL DEFAULT '';
CREATE TABLE person_figures (
    campus      TEXT    NOT NULL,
    person      TEXT    NOT NULL,
    measure     TEXT    NOT NULL,
    day         TEXT    NOT NULL,
    total       BIGINT  NOT NULL,
    n           BIGINT  NOT NULL,
    PRIMARY KEY (campus, person, measure, day)
);
-- A campus's formula: the method ('relative' or 'target'), the cap of the target
-- method in percent, and the weights and targets as 'indicator:number' lists.
CREATE TABLE performance_formulas (
    campus      TEXT    PRIMARY KEY,
    method      TEXT    NOT NULL,
    cap_percent BIGINT  NOT NULL,
    weights     TEXT    NOT NULL,
    targets     TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL,
    updated_by  TEXT    NOT NULL
);
