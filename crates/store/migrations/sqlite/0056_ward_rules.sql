-- How each campus's wards work (病区规则), set by its managers: the medication round
-- times of each frequency (`qd=08:00;bid=08:00,16:00;…`, the defaults where a
-- frequency is not named) and whether an order needs a second nurse's check (双人核对)
-- after the first nurse's before it is carried out. A campus without a row keeps the
-- defaults.
CREATE TABLE ward_rules (
    campus       TEXT    PRIMARY KEY,
    rounds       TEXT    NOT NULL,
    second_check INTEGER NOT NULL,
    updated_by   TEXT    NOT NULL,
    updated_at   INTEGER NOT NULL
);
