-- chatd schema, version 4: MCP server configurations (codersdk.md §14, docs/server-admin.md).
-- Identical on SQLite and PostgreSQL.
--
-- Stored configuration only: connecting to the servers is a later feature. Secrets (the
-- OAuth2 client secret, the API key value and the admin-set custom headers, sealed as one
-- JSON object) are sealed with the keyring, with associated data naming the row and column;
-- NULL means "none". Lists and maps are JSON text. Deleting a row erases its secrets.

CREATE TABLE mcp_server_configs (
    id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    icon_url TEXT NOT NULL DEFAULT '',
    transport TEXT NOT NULL,
    url TEXT NOT NULL,
    auth_type TEXT NOT NULL,
    oauth2_client_id TEXT NOT NULL DEFAULT '',
    oauth2_client_secret_sealed TEXT NULL,
    oauth2_auth_url TEXT NOT NULL DEFAULT '',
    oauth2_token_url TEXT NOT NULL DEFAULT '',
    oauth2_scopes TEXT NOT NULL DEFAULT '',
    api_key_header TEXT NOT NULL DEFAULT '',
    api_key_sealed TEXT NULL,
    custom_headers_sealed TEXT NULL,
    custom_headers_user_keys TEXT NOT NULL DEFAULT '[]',
    custom_headers_user_key_descriptions TEXT NOT NULL DEFAULT '{}',
    tool_allow_list TEXT NOT NULL DEFAULT '[]',
    tool_deny_list TEXT NOT NULL DEFAULT '[]',
    availability TEXT NOT NULL,
    enabled BIGINT NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    model_intent BIGINT NOT NULL DEFAULT 0 CHECK (model_intent IN (0, 1)),
    allow_in_plan_mode BIGINT NOT NULL DEFAULT 0 CHECK (allow_in_plan_mode IN (0, 1)),
    forward_coder_headers BIGINT NOT NULL DEFAULT 0 CHECK (forward_coder_headers IN (0, 1)),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
