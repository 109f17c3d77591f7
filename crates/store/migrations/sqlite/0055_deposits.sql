-- Deposits (预交金) of inpatient stays: every amount paid in at admission or during the
-- stay, paid back, or used by the final settlement, numbered per campus as receipts
-- (预交金收据), and each stay's balance, which never goes below zero (a refund or
-- settlement larger than the balance is refused in the same transaction).
CREATE TABLE deposits (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    campus      TEXT    NOT NULL,
    receipt_no  INTEGER  NOT NULL,
    stay        TEXT    NOT NULL,
    patient     TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('deposit', 'refund', 'settlement')),
    amount_fen  INTEGER  NOT NULL,
    method      TEXT    NOT NULL,
    reference   TEXT,
    cashier     TEXT    NOT NULL,
    at          INTEGER  NOT NULL,
    note        TEXT,
    UNIQUE (campus, receipt_no)
);
CREATE INDEX deposits_by_stay ON deposits (stay, id);
CREATE TABLE deposit_balances (
    stay        TEXT    PRIMARY KEY,
    balance_fen INTEGER  NOT NULL CHECK (balance_fen >= 0)
);
