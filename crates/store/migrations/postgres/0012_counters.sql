-- Named sequences for numbers people read and write down (campus MRNs): each call
-- takes the next value; a value taken by a write that then failed is not reused.
CREATE TABLE counters (
    name  TEXT   PRIMARY KEY,
    value BIGINT NOT NULL
);
