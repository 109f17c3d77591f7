-- Which server's dispatcher delivers an outbound channel: servers sharing a database
-- (several nodes on one PostgreSQL) would otherwise each deliver every event. A lease
-- runs out unless renewed, so another server takes over from one that stopped.
CREATE TABLE channel_leases (
    channel    TEXT   PRIMARY KEY,
    holder     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
