-- Daily settlement (日结): a cashier closes a day at a campus once the amounts counted
-- per payment method match the day's payments; a settled day takes no more payments.
CREATE TABLE settlements (
    campus     TEXT    NOT NULL,
    cashier    TEXT    NOT NULL,
    day        TEXT    NOT NULL,
    totals     TEXT    NOT NULL,
    payments   BIGINT NOT NULL,
    settled_at BIGINT NOT NULL,
    PRIMARY KEY (campus, cashier, day)
);
