-- chatd schema, version 1 (SQLite).
--
-- Kept identical to migrations/postgres/0001_init.sql except for autoincrement ids
-- (INTEGER PRIMARY KEY AUTOINCREMENT vs BIGSERIAL) and binary columns (BLOB vs BYTEA).
-- Ids are lowercase hyphenated UUID text, timestamps BIGINT Unix microseconds, JSON TEXT.
-- Booleans are BIGINT 0/1: sqlx's Any driver cannot decode a column declared BOOLEAN on
-- SQLite, and a BIGINT decodes the same way on both backends.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE organization_members (
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);

CREATE INDEX organization_members_user_idx ON organization_members (user_id);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NULL
);

CREATE TABLE site_config (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE provider_configs (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    api_key_sealed TEXT NULL,
    base_url TEXT NOT NULL DEFAULT '',
    enabled BIGINT NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    central_api_key_enabled BIGINT NOT NULL DEFAULT 1 CHECK (central_api_key_enabled IN (0, 1)),
    allow_user_api_key BIGINT NOT NULL DEFAULT 0 CHECK (allow_user_api_key IN (0, 1)),
    allow_central_api_key_fallback BIGINT NOT NULL DEFAULT 0 CHECK (allow_central_api_key_fallback IN (0, 1)),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted BIGINT NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1))
);

CREATE UNIQUE INDEX provider_configs_provider_live_idx ON provider_configs (provider) WHERE deleted = 0;

CREATE TABLE model_configs (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    enabled BIGINT NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    is_default BIGINT NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
    context_limit BIGINT NOT NULL DEFAULT 0,
    compression_threshold INTEGER NOT NULL DEFAULT 0,
    model_config TEXT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted BIGINT NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1))
);

CREATE TABLE user_provider_keys (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider_config_id TEXT NOT NULL REFERENCES provider_configs (id) ON DELETE CASCADE,
    api_key_sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, provider_config_id)
);

CREATE TABLE chats (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    owner_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workspace_id TEXT NULL,
    parent_chat_id TEXT NULL REFERENCES chats (id) ON DELETE CASCADE,
    root_chat_id TEXT NOT NULL,
    last_model_config_id TEXT NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    plan_mode TEXT NOT NULL DEFAULT '',
    last_error TEXT NULL,
    last_turn_summary TEXT NULL,
    archived BIGINT NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    pin_order INTEGER NOT NULL DEFAULT 0,
    mcp_server_ids TEXT NOT NULL DEFAULT '[]',
    client_type TEXT NOT NULL,
    dynamic_tools TEXT NULL,
    system_prompt TEXT NOT NULL DEFAULT '',
    worker_id TEXT NULL,
    lease_epoch BIGINT NOT NULL DEFAULT 0,
    started_at BIGINT NULL,
    heartbeat_at BIGINT NULL,
    retry_state TEXT NULL,
    last_read_message_id BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX chats_status_updated_idx ON chats (status, updated_at);
CREATE INDEX chats_owner_archived_updated_idx ON chats (owner_id, archived, updated_at);
CREATE INDEX chats_root_idx ON chats (root_chat_id);
CREATE INDEX chats_parent_idx ON chats (parent_chat_id);

CREATE TABLE chat_labels (
    chat_id TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (chat_id, key)
);

CREATE INDEX chat_labels_key_value_idx ON chat_labels (key, value);

CREATE TABLE chat_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    created_by TEXT NULL REFERENCES users (id) ON DELETE SET NULL,
    model_config_id TEXT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    content_version INTEGER NOT NULL,
    visibility TEXT NOT NULL,
    compressed BIGINT NOT NULL DEFAULT 0 CHECK (compressed IN (0, 1)),
    deleted BIGINT NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    input_tokens BIGINT NULL,
    output_tokens BIGINT NULL,
    total_tokens BIGINT NULL,
    reasoning_tokens BIGINT NULL,
    cache_creation_tokens BIGINT NULL,
    cache_read_tokens BIGINT NULL,
    context_limit BIGINT NULL,
    total_cost_micros BIGINT NULL,
    runtime_ms BIGINT NULL,
    provider_response_id TEXT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX chat_messages_chat_id_idx ON chat_messages (chat_id, id);

CREATE TABLE chat_queued_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    model_config_id TEXT NULL,
    content TEXT NOT NULL,
    created_by TEXT NULL REFERENCES users (id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX chat_queued_messages_chat_id_idx ON chat_queued_messages (chat_id, id);

CREATE TABLE chat_files (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    data BLOB NOT NULL,
    size_bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE chat_file_links (
    chat_id TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    file_id TEXT NOT NULL REFERENCES chat_files (id) ON DELETE CASCADE,
    PRIMARY KEY (chat_id, file_id)
);
