-- What a message's sender should fix although the message was accepted: the HL7
-- intake is liberal in what it accepts (a registration without a visit number, a
-- demographic field it cannot read), and says what it skipped in an ERR segment of
-- severity W with the AA. The same text is kept here for the interface team.
ALTER TABLE message_log ADD COLUMN warnings TEXT;
-- A resend is the same message: same sender, same control id, same content. The
-- SHA-256 of the text tells a resend from another message that reuses a control id
-- (a sender whose counter restarted), which is processed, not answered from the log.
ALTER TABLE message_log ADD COLUMN digest TEXT;
