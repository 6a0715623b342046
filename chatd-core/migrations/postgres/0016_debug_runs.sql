-- Debug runs (docs/debug-runs.md): when debug logging is on for a chat, every model call of
-- a turn (and of its title, summary and compaction calls) is recorded, with secrets removed.
--
-- A user's own debug-logging toggle (`/chats/config/user-debug-logging`). Without a row the
-- toggle is off. It records only while the deployment allows users to turn it on.
CREATE TABLE user_chat_debug_logging (
    user_id TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    enabled BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One recorded operation (a turn, a title, a summary, a compaction): kind, status, model,
-- timings and a free-form summary object (JSON text).
CREATE TABLE chat_debug_runs (
    id TEXT PRIMARY KEY,
    chat_id TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    root_chat_id TEXT NULL,
    parent_chat_id TEXT NULL,
    model_config_id TEXT NULL,
    trigger_message_id BIGINT NULL,
    history_tip_message_id BIGINT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    provider TEXT NULL,
    model TEXT NULL,
    summary TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT NULL
);

-- A chat's runs, newest first (`GET /chats/{chat}/debug/runs`).
CREATE INDEX chat_debug_runs_chat_idx ON chat_debug_runs (chat_id, started_at);

-- The purge of runs older than the retention window: by the time they last changed.
CREATE INDEX chat_debug_runs_updated_idx ON chat_debug_runs (updated_at);

-- One model call of a run: the request shape and the response (JSON text, secrets removed,
-- each document capped), usage, the retried attempts, the error and timings.
CREATE TABLE chat_debug_steps (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES chat_debug_runs (id) ON DELETE CASCADE,
    chat_id TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    step_number INTEGER NOT NULL,
    operation TEXT NOT NULL,
    status TEXT NOT NULL,
    history_tip_message_id BIGINT NULL,
    assistant_message_id BIGINT NULL,
    normalized_request TEXT NOT NULL,
    normalized_response TEXT NULL,
    usage TEXT NULL,
    attempts TEXT NOT NULL,
    error TEXT NULL,
    metadata TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT NULL,
    UNIQUE (run_id, step_number)
);

CREATE INDEX chat_debug_steps_chat_idx ON chat_debug_steps (chat_id);
