-- Problems and changes of the IT service desk (not health data).
--
-- A problem is the cause behind one or more incidents: its root cause and workaround
-- are recorded, and once both are known it is a known error.
CREATE TABLE ops_problems (
    id            BIGSERIAL PRIMARY KEY,
    title         TEXT    NOT NULL,
    description   TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    priority      BIGINT  NOT NULL,
    ci            BIGINT REFERENCES ops_cis (id),
    support_group TEXT    NOT NULL,
    assignee      TEXT,
    root_cause    TEXT,
    workaround    TEXT,
    known_error   BIGINT  NOT NULL,
    opened_by     TEXT    NOT NULL,
    opened_at     BIGINT  NOT NULL,
    resolved_at   BIGINT,
    version       BIGINT  NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX ops_problems_by_status ON ops_problems (status, id);
CREATE TABLE ops_problem_incidents (
    problem BIGINT NOT NULL REFERENCES ops_problems (id),
    ticket  BIGINT NOT NULL REFERENCES ops_tickets (id),
    PRIMARY KEY (problem, ticket)
);
CREATE INDEX ops_problem_incidents_by_ticket ON ops_problem_incidents (ticket);
-- A change: its class names its board (the approvers of that class); it is scheduled
-- only once every approver named for its class has approved it.
CREATE TABLE ops_changes (
    id           BIGSERIAL PRIMARY KEY,
    title        TEXT    NOT NULL,
    description  TEXT    NOT NULL,
    change_class TEXT    NOT NULL,
    risk         TEXT    NOT NULL,
    backout_plan TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    requester    TEXT    NOT NULL,
    window_start BIGINT  NOT NULL,
    window_end   BIGINT  NOT NULL,
    outcome      TEXT,
    review       TEXT,
    created_at   BIGINT  NOT NULL,
    version      BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    CHECK (window_end > window_start)
);
CREATE INDEX ops_changes_by_window ON ops_changes (window_start, window_end);
CREATE INDEX ops_changes_by_status ON ops_changes (status, id);
CREATE TABLE ops_change_cis (
    change BIGINT NOT NULL REFERENCES ops_changes (id),
    ci     BIGINT NOT NULL REFERENCES ops_cis (id),
    PRIMARY KEY (change, ci)
);
CREATE INDEX ops_change_cis_by_ci ON ops_change_cis (ci);
-- Each approver's decision, once (a board member decides a change once).
CREATE TABLE ops_change_approvals (
    change   BIGINT NOT NULL REFERENCES ops_changes (id),
    approver TEXT    NOT NULL,
    decision TEXT    NOT NULL,
    comment  TEXT,
    at       BIGINT  NOT NULL,
    PRIMARY KEY (change, approver)
);
-- The change board: who approves the changes of each class.
CREATE TABLE ops_change_board (
    change_class TEXT NOT NULL,
    username     TEXT NOT NULL,
    PRIMARY KEY (change_class, username)
);
-- The statistics read the tickets of a period.
CREATE INDEX ops_tickets_by_opened ON ops_tickets (opened_at);
