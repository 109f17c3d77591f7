-- The words of each ticket (title, details, resolution), cut by the service the same
-- way as the knowledge base's, for the ticket search; keyed by the ticket's id so a
-- search pages newest first by id.
CREATE VIRTUAL TABLE ops_ticket_search USING fts5(tokens, tokenize = 'unicode61');
