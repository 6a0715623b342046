-- Chat retention and automatic archiving (docs/retention.md).
--
-- Kept identical to migrations/postgres/0015_retention.sql except for the JSON functions of
-- the link backfill (json_each / json_extract here, json_array_elements there) and the
-- clock expression.

-- When the chat was archived (Unix microseconds); NULL while it is not. The retention purge
-- deletes archived families whose root was archived longer ago than `retention_days`.
ALTER TABLE chats ADD COLUMN archived_at BIGINT NULL;

-- Chats archived before this column existed count as archived now: the purge then keeps
-- them a whole window, never less.
UPDATE chats SET archived_at = CAST(strftime('%s', 'now') AS BIGINT) * 1000000
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
-- LIKE pre-filter keeps the JSON parsing to rows that hold a file part.
INSERT OR IGNORE INTO chat_file_links (chat_id, file_id)
SELECT DISTINCT m.chat_id, json_extract(p.value, '$.file_id')
FROM chat_messages m,
     json_each(CASE WHEN m.content_version = 1 AND m.content LIKE '%"type":"file"%'
                         AND json_valid(m.content) AND json_type(m.content) = 'array'
                    THEN m.content ELSE '[]' END) AS p
WHERE p.type = 'object'
  AND json_extract(p.value, '$.type') = 'file'
  AND json_extract(p.value, '$.file_id') IN (SELECT id FROM chat_files);

INSERT OR IGNORE INTO chat_file_links (chat_id, file_id)
SELECT DISTINCT q.chat_id, json_extract(p.value, '$.file_id')
FROM chat_queued_messages q,
     json_each(CASE WHEN q.content_version = 1 AND q.content LIKE '%"type":"file"%'
                         AND json_valid(q.content) AND json_type(q.content) = 'array'
                    THEN q.content ELSE '[]' END) AS p
WHERE p.type = 'object'
  AND json_extract(p.value, '$.type') = 'file'
  AND json_extract(p.value, '$.file_id') IN (SELECT id FROM chat_files);
