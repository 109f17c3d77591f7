-- The IT service desk's incidents (not health data). A ticket always has one support
-- group, and at most one engineer, as its owner. Its SLA clock is not a column: it is
-- counted from the ticket's events (opened, paused, resumed, resolved, reopened) in
-- the calendar the ticket carries, so pausing and changing the target never lose time.
CREATE TABLE ops_tickets (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    title         TEXT    NOT NULL,
    description   TEXT    NOT NULL,
    category      TEXT    NOT NULL,
    campus        TEXT,
    location      TEXT,
    ci            INTEGER REFERENCES ops_cis (id),
    reporter      TEXT    NOT NULL,
    reporter_name TEXT    NOT NULL,
    channel       TEXT    NOT NULL,
    impact        INTEGER NOT NULL,
    urgency       INTEGER NOT NULL,
    priority      INTEGER NOT NULL,
    calendar      TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    support_group TEXT    NOT NULL,
    assignee      TEXT,
    opened_at     INTEGER NOT NULL,
    responded_at  INTEGER,
    resolved_at   INTEGER,
    closed_at     INTEGER,
    resolution    TEXT,
    satisfaction  INTEGER,
    version       INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX ops_tickets_by_group ON ops_tickets (support_group, status, priority, id);
CREATE INDEX ops_tickets_by_assignee ON ops_tickets (assignee, status, id);
CREATE INDEX ops_tickets_by_reporter ON ops_tickets (reporter, id);
CREATE INDEX ops_tickets_by_ci ON ops_tickets (ci, opened_at);
CREATE TABLE ops_ticket_events (
    ticket  INTEGER NOT NULL REFERENCES ops_tickets (id),
    seq     INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    detail  TEXT,
    minutes INTEGER,
    PRIMARY KEY (ticket, seq)
);
-- Who works in which support group (an engineer may be in several; a lead is
-- escalated to when a ticket of the group breaches its SLA).
CREATE TABLE ops_group_members (
    username      TEXT    NOT NULL,
    support_group TEXT    NOT NULL,
    lead          INTEGER NOT NULL,
    PRIMARY KEY (support_group, username)
);
