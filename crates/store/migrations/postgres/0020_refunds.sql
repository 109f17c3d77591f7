-- Refunds (退费): a refund is a payment row of its own (a red-letter invoice with a
-- negative amount and the next number) naming the invoice it refunds and why.
ALTER TABLE payments ADD COLUMN refund_of BIGINT;
ALTER TABLE payments ADD COLUMN reason TEXT;
