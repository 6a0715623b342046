-- The turn path's history cache (docs/turn-path.md): a chat's prompt history changes only by
-- appended rows, except when an edit soft-deletes messages in place. Every such change bumps
-- `history_version`, so an engine holding the history of a chat in memory reads only the rows
-- after the newest one it holds while the version is the one it read with.
ALTER TABLE chats ADD COLUMN history_version BIGINT NOT NULL DEFAULT 0;
