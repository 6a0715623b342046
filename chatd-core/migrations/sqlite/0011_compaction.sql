-- Context compaction.
--
-- A user's own compaction threshold per model config (`/chats/config/user-compaction-thresholds`):
-- percent of the context limit at which the engine summarizes the chat (0–100, 100 = never).
-- Without a row the model config's `compression_threshold` applies.
CREATE TABLE user_compaction_thresholds (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    model_config_id TEXT NOT NULL REFERENCES model_configs (id) ON DELETE CASCADE,
    threshold_percent INTEGER NOT NULL CHECK (threshold_percent BETWEEN 0 AND 100),
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, model_config_id)
);

-- The prompt history reads the newest compaction boundary of a chat: its compressed,
-- model-only summary row.
CREATE INDEX chat_messages_compaction_boundary_idx ON chat_messages (chat_id, id)
    WHERE compressed = 1 AND deleted = 0;

-- A manual compaction (`Engine::compact_chat`) waiting for its turn: the chat is `pending`
-- and the worker that claims it summarizes instead of calling the model. Cleared by the
-- compaction's write and by every finish.
ALTER TABLE chats ADD COLUMN compaction_requested BIGINT NOT NULL DEFAULT 0
    CHECK (compaction_requested IN (0, 1));
