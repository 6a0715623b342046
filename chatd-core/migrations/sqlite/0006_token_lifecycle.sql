-- chatd schema, version 6: API token lifecycle (docs/api-tokens.md). Identical on SQLite
-- and PostgreSQL.

-- Every token has a name, unique per user case-insensitively. Tokens issued before names
-- existed are named after their id.
ALTER TABLE api_tokens ADD COLUMN token_name TEXT NOT NULL DEFAULT '';
UPDATE api_tokens SET token_name = 'token-' || substr(id, 1, 8) WHERE token_name = '';
CREATE UNIQUE INDEX api_tokens_user_name_idx ON api_tokens (user_id, lower(token_name));

-- When the token stops authenticating (microseconds since the epoch; NULL = never).
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT NULL;

-- When the token was revoked (NULL = not revoked). A revoked token's row is kept, so the
-- same secret presented again (an operator's CHATD_ADMIN_TOKEN re-inserted at start-up)
-- stays refused.
ALTER TABLE api_tokens ADD COLUMN revoked_at BIGINT NULL;
