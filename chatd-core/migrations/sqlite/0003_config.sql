-- chatd schema, version 3: administrator configuration (docs/provider-config.md).
-- Identical on SQLite and PostgreSQL.

-- At most one live default model config. Writers also clear the old default in the same
-- transaction; the index turns a lost race into a unique violation instead of two defaults.
CREATE UNIQUE INDEX model_configs_single_default_idx ON model_configs (is_default)
    WHERE is_default = 1 AND deleted = 0;

-- Deleting a provider soft-deletes its model configs.
CREATE INDEX model_configs_provider_idx ON model_configs (provider) WHERE deleted = 0;

-- A user's personal prompt (`/chats/config/user-prompt`), injected into every turn of the
-- user's chats. A row only while the prompt is non-empty.
CREATE TABLE user_prompts (
    user_id TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    custom_prompt TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
