-- chatd schema, version 10: the cross-replica relay (docs/engine-design.md "Several
-- replicas on PostgreSQL"). Same table on SQLite and PostgreSQL; only PostgreSQL uses it
-- (SQLite serves one process, whose events never leave it).

-- A relay batch too large for one NOTIFY payload (PostgreSQL refuses 8 000 bytes and
-- more) is stored here and the notification names its id. Rows are transient: the
-- publishing replica deletes rows older than the relay's blob retention.
CREATE TABLE relay_blobs (
    id BIGSERIAL PRIMARY KEY,
    created_at BIGINT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX relay_blobs_created_idx ON relay_blobs (created_at);
