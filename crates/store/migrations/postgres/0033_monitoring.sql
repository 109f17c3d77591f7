-- Monitoring (not health data). A probe checks one configuration item at its
-- interval, at the central server (campus NULL) or at a campus's collector. Each run
-- is one row keyed by (probe, at): a collector that sends a result twice (a retry
-- after a lost answer) adds nothing the second time. Samples are keyed the same way.
CREATE TABLE ops_probes (
    id          BIGSERIAL PRIMARY KEY,
    ci          BIGINT  NOT NULL REFERENCES ops_cis (id),
    kind        TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    spec        TEXT    NOT NULL,
    interval_s  BIGINT  NOT NULL,
    campus      TEXT,
    enabled     BIGINT  NOT NULL,
    due_at      BIGINT  NOT NULL,
    last_at     BIGINT,
    last_up     BIGINT,
    last_error  TEXT,
    version     BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL,
    created_by  TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL
);
CREATE INDEX ops_probes_due ON ops_probes (due_at);
CREATE INDEX ops_probes_by_ci ON ops_probes (ci);

CREATE TABLE ops_probe_runs (
    probe   BIGINT  NOT NULL REFERENCES ops_probes (id),
    at      BIGINT  NOT NULL,
    up      BIGINT  NOT NULL,
    error   TEXT,
    note    TEXT,
    source  TEXT    NOT NULL,
    PRIMARY KEY (probe, at)
);

CREATE TABLE ops_samples (
    probe   BIGINT  NOT NULL REFERENCES ops_probes (id),
    metric  TEXT    NOT NULL,
    at      BIGINT  NOT NULL,
    value   DOUBLE PRECISION    NOT NULL,
    PRIMARY KEY (probe, metric, at)
);

-- A rule watches one metric of a probe, or every metric matching a pattern with one
-- `*` (`if.*.oper_up`); each metric it matches keeps its own track (the rule engine's
-- state as JSON) and opens its own alert.
CREATE TABLE ops_rules (
    id          BIGSERIAL PRIMARY KEY,
    probe       BIGINT  NOT NULL REFERENCES ops_probes (id),
    metric      TEXT    NOT NULL,
    op          TEXT    NOT NULL,
    threshold   DOUBLE PRECISION    NOT NULL,
    clear       DOUBLE PRECISION,
    for_ms      BIGINT  NOT NULL,
    severity    TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    created_by  TEXT    NOT NULL
);
CREATE INDEX ops_rules_by_probe ON ops_rules (probe);

CREATE TABLE ops_rule_tracks (
    rule    BIGINT  NOT NULL REFERENCES ops_rules (id),
    metric  TEXT    NOT NULL,
    state   TEXT    NOT NULL,
    PRIMARY KEY (rule, metric)
);

-- An alert lasts from the rule's Opened to its Resolved. It is a root cause with its
-- own incident, or suppressed by the down CI it depends on, or held by the approved
-- change whose window it falls in (no incident for either).
CREATE TABLE ops_alerts (
    id             BIGSERIAL PRIMARY KEY,
    rule           BIGINT  NOT NULL REFERENCES ops_rules (id),
    probe          BIGINT  NOT NULL REFERENCES ops_probes (id),
    ci             BIGINT  NOT NULL REFERENCES ops_cis (id),
    metric         TEXT    NOT NULL,
    severity       TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    opened_at      BIGINT  NOT NULL,
    resolved_at    BIGINT,
    value          DOUBLE PRECISION    NOT NULL,
    flapping       BIGINT  NOT NULL,
    suppressed_by  BIGINT  REFERENCES ops_cis (id),
    maintenance    BIGINT  REFERENCES ops_changes (id),
    ticket         BIGINT  REFERENCES ops_tickets (id),
    detail         TEXT
);
CREATE INDEX ops_alerts_open ON ops_alerts (status, ci);
CREATE INDEX ops_alerts_by_rule ON ops_alerts (rule, metric, status);
