-- chatd schema, version 6: workspaces (docs/workspaces.md). Identical on SQLite and
-- PostgreSQL.

-- The instruction files and skills injected into the chat's prompt, as JSON message parts
-- with their content (engine.md §4.4, §9). NULL until the first turn with a workspace;
-- '[]' when that turn found nothing. Later turns rebuild the prompt blocks from it.
ALTER TABLE chats ADD COLUMN last_injected_context TEXT NULL;
