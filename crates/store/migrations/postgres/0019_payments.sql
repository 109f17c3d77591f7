-- Payments at the cashier (收费处): one row per invoice, written in the same database
-- transaction as the FHIR Invoice and the charges it settles. The invoice number is
-- the next of its campus; the primary key makes two cashiers' same number impossible,
-- and a number is only used when its payment commits, so the sequence has no gaps.
CREATE TABLE payments (
    campus       TEXT    NOT NULL,
    invoice_no   BIGINT NOT NULL,
    invoice_id   TEXT    NOT NULL,
    patient      TEXT    NOT NULL,
    method       TEXT    NOT NULL,
    amount_fen   BIGINT NOT NULL,
    tendered_fen BIGINT NOT NULL,
    reference    TEXT,
    cashier      TEXT    NOT NULL,
    paid_at      BIGINT NOT NULL,
    PRIMARY KEY (campus, invoice_no)
);
CREATE INDEX payments_by_time ON payments (campus, paid_at);
