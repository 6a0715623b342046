-- Chat retention and automatic archiving (docs/retention.md).
--
-- Kept identical to migrations/sqlite/0015_retention.sql except for the JSON functions of
-- the link backfill (json_array_elements here, json_each / json_extract there) and the
-- clock expression.

-- When the chat was archived (Unix microseconds); NULL while it is not. The retention purge
-- deletes archived families whose root was archived longer ago than `retention_days`.
ALTER TABLE chats ADD COLUMN archived_at BIGINT NULL;

-- Chats archived before this column existed count as archived now: the purge then keeps
-- them a whole window, never less.
UPDATE chats SET archived_at = CAST(EXTRACT(EPOCH FROM now()) * 1000000 AS BIGINT)
    WHERE archived = 1;

-- The purge's candidates: archived roots, oldest archive first.
CREATE INDEX chats_archived_at_idx ON chats (archived_at) WHERE archived = 1;

-- "Is this file linked to any chat?" (the unlinked-file purge); the primary key starts with
-- the chat.
CREATE INDEX chat_file_links_file_idx ON chat_file_links (file_id);

-- The unlinked-file purge's candidates, oldest first.
CREATE INDEX chat_files_created_idx ON chat_files (created_at);

-- Files that messages and queued messages stored before linking existed reference: linked
-- now, so the unlinked-file purge cannot take a file a chat still shows. Only version-1
-- content (a JSON array of parts, what every writer of this server stores) is read; the
-- LIKE pre-filter keeps the JSON parsing to rows that hold a file part. `json`, not
-- `jsonb`: it accepts every string escape the text may hold (jsonb refuses \u0000).
INSERT INTO chat_file_links (chat_id, file_id)
SELECT DISTINCT m.chat_id, p.value ->> 'file_id'
FROM chat_messages m
CROSS JOIN LATERAL json_array_elements(
    CASE WHEN m.content_version = 1 AND m.content LIKE '%"type":"file"%'
              AND left(m.content, 1) = '['
         THEN m.content::json ELSE '[]'::json END) AS p(value)
WHERE json_typeof(p.value) = 'object'
  AND p.value ->> 'type' = 'file'
  AND p.value ->> 'file_id' IN (SELECT id FROM chat_files)
ON CONFLICT DO NOTHING;

INSERT INTO chat_file_links (chat_id, file_id)
SELECT DISTINCT q.chat_id, p.value ->> 'file_id'
FROM chat_queued_messages q
CROSS JOIN LATERAL json_array_elements(
    CASE WHEN q.content_version = 1 AND q.content LIKE '%"type":"file"%'
              AND left(q.content, 1) = '['
         THEN q.content::json ELSE '[]'::json END) AS p(value)
WHERE json_typeof(p.value) = 'object'
  AND p.value ->> 'type' = 'file'
  AND p.value ->> 'file_id' IN (SELECT id FROM chat_files)
ON CONFLICT DO NOTHING;
