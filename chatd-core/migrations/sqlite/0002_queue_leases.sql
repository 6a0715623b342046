-- chatd schema, version 2: queue content versioning and the worker lookup of leases.
-- Identical on SQLite and PostgreSQL.

-- Queued content is encoded like chat_messages.content; without its version a later
-- format change could not decode rows queued before it. Existing rows are version 1.
ALTER TABLE chat_queued_messages ADD COLUMN content_version INTEGER NOT NULL DEFAULT 1;

-- Heartbeats and graceful release select a worker's chats.
CREATE INDEX chats_worker_idx ON chats (worker_id);
