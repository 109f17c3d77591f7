-- Swap requests (换班): a person on a department's roster asks to exchange one of
-- their shifts with a colleague's; the department's head (or a manager of its campus)
-- approves — the two shifts change hands in the approval's transaction, checked again
-- against both people's rosters — or refuses.
CREATE TABLE roster_swaps (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    department    TEXT    NOT NULL,
    campus        TEXT    NOT NULL,
    shift_a       BIGINT  NOT NULL,
    shift_b       BIGINT  NOT NULL,
    requested_by  TEXT    NOT NULL,
    requested_at  BIGINT  NOT NULL,
    reason        TEXT,
    status        TEXT    NOT NULL CHECK (status IN ('requested', 'approved', 'refused')),
    decided_by    TEXT,
    decided_at    BIGINT,
    note          TEXT
);
CREATE INDEX roster_swaps_by_department ON roster_swaps (department, status);
