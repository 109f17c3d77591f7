-- The words of each ticket (title, details, resolution), cut by the service the same
-- way as the knowledge base's, for the ticket search; keyed by the ticket's id so a
-- search pages newest first by id.
CREATE TABLE ops_ticket_search (
    ticket BIGINT   PRIMARY KEY REFERENCES ops_tickets (id),
    tokens TSVECTOR NOT NULL
);
CREATE INDEX ops_ticket_search_tokens ON ops_ticket_search USING GIN (tokens) WITH (fastupdate = off);
