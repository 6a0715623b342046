-- AI Gateway provider instances managed through the admin API (docs/ai-gateway.md): a
-- named upstream of one wire type with its base URL and, sealed with the keyring, its
-- central key. The default instances (openai, anthropic) and those from the environment
-- are not stored.
CREATE TABLE aibridge_provider_instances (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    instance_type TEXT NOT NULL,
    base_url TEXT NOT NULL,
    api_key_sealed TEXT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
