-- What each invoice paid (or a red-letter invoice refunded), charge by charge, with the
-- charge's category and department and the payment's day, method and cashier: the
-- revenue reports (by day, department, campus, category) are sums of these rows,
-- written in the same transaction as the payment itself.
CREATE TABLE payment_lines (
    campus     TEXT    NOT NULL,
    invoice_no INTEGER NOT NULL,
    charge     TEXT    NOT NULL,
    category   TEXT    NOT NULL,
    department TEXT,
    amount_fen INTEGER NOT NULL,
    day        TEXT    NOT NULL,
    method     TEXT    NOT NULL,
    cashier    TEXT    NOT NULL,
    PRIMARY KEY (campus, invoice_no, charge)
);
CREATE INDEX payment_lines_by_day ON payment_lines (day, campus);
