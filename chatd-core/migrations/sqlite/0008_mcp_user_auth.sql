-- chatd schema, version 8: per-user MCP authentication (codersdk.md §14.2, docs/mcp-auth.md).
-- Identical on SQLite and PostgreSQL.
--
-- Each user's own credentials for an MCP server: the values of the headers the server's
-- configuration asks users for, and the OAuth2 token the user connected with. Secrets are
-- sealed with the keyring, with associated data naming the table, column, server and user
-- (a sealed value copied to another row fails to open). Rows go with the server
-- configuration and with the user (ON DELETE CASCADE).

-- A user's header values for one server, sealed as one JSON object. `header_names` (a JSON
-- array) says which headers have a value without opening the secret: names are not
-- secrets, the configuration lists them for every caller.
CREATE TABLE mcp_user_header_values (
    mcp_server_config_id TEXT NOT NULL REFERENCES mcp_server_configs (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    header_names TEXT NOT NULL DEFAULT '[]',
    values_sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (mcp_server_config_id, user_id)
);
CREATE INDEX mcp_user_header_values_user_idx ON mcp_user_header_values (user_id);

-- A user's OAuth2 token for one server. `expires_at` (Unix microseconds) is NULL when the
-- authorization server gave no lifetime; `refresh_token_sealed` is NULL when it gave no
-- refresh token.
CREATE TABLE mcp_user_oauth2_tokens (
    mcp_server_config_id TEXT NOT NULL REFERENCES mcp_server_configs (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    access_token_sealed TEXT NOT NULL,
    refresh_token_sealed TEXT NULL,
    token_type TEXT NOT NULL DEFAULT '',
    expires_at BIGINT NULL,
    scopes TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (mcp_server_config_id, user_id)
);
CREATE INDEX mcp_user_oauth2_tokens_user_idx ON mcp_user_oauth2_tokens (user_id);

-- OAuth2 authorizations in flight: one row per connect, deleted when its callback arrives
-- (single use) or when it expires. The key is the SHA-256 (hex) of the `state` parameter,
-- never the state itself, so the table cannot be used to forge a callback. The PKCE
-- verifier is sealed; `redirect_uri` is the callback URL the authorization request named
-- (the token request must repeat it); `return_to` is the same-origin path to send the
-- browser to afterwards ('' = none).
CREATE TABLE mcp_oauth2_states (
    state_hash TEXT PRIMARY KEY,
    mcp_server_config_id TEXT NOT NULL REFERENCES mcp_server_configs (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    pkce_verifier_sealed TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    return_to TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX mcp_oauth2_states_user_idx ON mcp_oauth2_states (user_id, created_at);
CREATE INDEX mcp_oauth2_states_expires_idx ON mcp_oauth2_states (expires_at);
CREATE INDEX mcp_oauth2_states_server_idx ON mcp_oauth2_states (mcp_server_config_id);
