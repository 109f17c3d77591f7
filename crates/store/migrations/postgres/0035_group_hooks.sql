-- A support group's webhook (its chat robot, its paging system): every notification
-- about one of the group's tickets is also posted there, signed with the group's
-- secret (sealed by the field cipher). Each post is a delivery row, written in the
-- transaction of the ticket change it tells of, and retried until it is accepted.
CREATE TABLE ops_group_hooks (
    support_group  TEXT    PRIMARY KEY,
    url            TEXT    NOT NULL,
    secret         TEXT    NOT NULL,
    updated_at     BIGINT NOT NULL,
    updated_by     TEXT    NOT NULL
);

CREATE TABLE ops_hook_deliveries (
    id             BIGSERIAL PRIMARY KEY,
    support_group  TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    ticket         BIGINT  NOT NULL REFERENCES ops_tickets (id),
    at             BIGINT NOT NULL,
    status         TEXT    NOT NULL,
    due_at         BIGINT,
    tries          BIGINT NOT NULL,
    last_error     TEXT,
    sent_at        BIGINT
);
CREATE INDEX ops_hook_deliveries_due ON ops_hook_deliveries (due_at);
CREATE INDEX ops_hook_deliveries_by_group ON ops_hook_deliveries (support_group, id);
