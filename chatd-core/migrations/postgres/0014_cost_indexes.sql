-- Cost reports and usage limits (docs/cost-reports.md). Identical on SQLite and PostgreSQL.

-- One owner's spend in a window (the usage-limit check, the cost summary): the owner's chats
-- come from chats_owner_archived_updated_idx, and each chat's rows in the window from this
-- index, so the work follows the owner's rows in the window, not the table.
CREATE INDEX chat_messages_chat_created_idx ON chat_messages (chat_id, created_at);

-- Every user's spend in a window (the admin users rollup): the window's rows only.
CREATE INDEX chat_messages_created_idx ON chat_messages (created_at);
