-- chatd schema, version 9: sub-agents (docs/subagents.md). Identical on SQLite and
-- PostgreSQL.

-- The kind of a sub-agent chat: '' for a root chat, 'general' or 'explore' for a child
-- spawned by `spawn_subagent`. Set at creation and never changed: an explore child's
-- read-only tool set, fixed mode and MCP snapshot follow from it (engine.md §8.3).
ALTER TABLE chats ADD COLUMN mode TEXT NOT NULL DEFAULT '';
-- The reasoning effort the parent asked for when it spawned the chat; NULL for root chats
-- and for children spawned without one (the model config's default applies).
ALTER TABLE chats ADD COLUMN reasoning_effort TEXT NULL;
