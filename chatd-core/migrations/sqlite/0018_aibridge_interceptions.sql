-- The AI Gateway's records (docs/ai-gateway-records.md): one row per proxied LLM call, the
-- tool calls its model made, and one row per session. Identical on SQLite and PostgreSQL.
-- (0017 belongs to the gateway's provider instances.)

-- One intercepted call, written once after its response ended. `cost_micros` is NULL when
-- the model has no price; the usage buckets are NULL when the provider reported none.
-- `session_key` is the session the call belongs to (the client's session id, else the
-- thread's, else the call's own id), computed when the row is written.
CREATE TABLE aibridge_interceptions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider_name TEXT NOT NULL,
    provider_type TEXT NOT NULL,
    api TEXT NOT NULL,
    requested_model TEXT NOT NULL,
    model TEXT NOT NULL,
    client TEXT NULL,
    client_session_id TEXT NULL,
    session_key TEXT NOT NULL,
    thread_parent_id TEXT NULL,
    thread_root_id TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT NOT NULL,
    upstream_status BIGINT NULL,
    error_kind TEXT NULL,
    error_message TEXT NULL,
    client_disconnected BIGINT NOT NULL,
    streamed BIGINT NOT NULL,
    input_tokens BIGINT NULL,
    output_tokens BIGINT NULL,
    cache_read_tokens BIGINT NULL,
    cache_write_tokens BIGINT NULL,
    reasoning_tokens BIGINT NULL,
    cost_micros BIGINT NULL,
    credential_kind TEXT NOT NULL,
    credential_hint TEXT NOT NULL,
    prompt TEXT NULL,
    correlation_id TEXT NULL
);

-- The listing (newest first, keyset cursor on (started_at, id)) for everyone, and one
-- user's calls in a window: the member listing, the usage-limit spend and the cost
-- summary. `cost_micros` rides along so the spend of a window is read from the index
-- alone (the admission check runs it before every model step while limits are on).
CREATE INDEX aibridge_interceptions_started_idx ON aibridge_interceptions (started_at, id);
CREATE INDEX aibridge_interceptions_user_started_idx
    ON aibridge_interceptions (user_id, started_at, id, cost_micros);

-- A session's calls, when a page of sessions is enriched.
CREATE INDEX aibridge_interceptions_session_idx
    ON aibridge_interceptions (user_id, session_key);

-- The tool calls a model made: names and argument sizes, never the arguments.
CREATE TABLE aibridge_tool_usages (
    interception_id TEXT NOT NULL REFERENCES aibridge_interceptions (id) ON DELETE CASCADE,
    ordinal BIGINT NOT NULL,
    call_id TEXT NOT NULL,
    name TEXT NOT NULL,
    argument_bytes BIGINT NOT NULL,
    PRIMARY KEY (interception_id, ordinal)
);

-- Thread links: a later request that carries a call's result finds the call's interception.
CREATE INDEX aibridge_tool_usages_call_idx ON aibridge_tool_usages (call_id);

-- One row per session and user, kept by the writer: the sessions listing pages these
-- (newest first, keyset on (started_at, user_id, session_key)) before it reads any call.
CREATE TABLE aibridge_sessions (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_key TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    last_started_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, session_key)
);

CREATE INDEX aibridge_sessions_started_idx
    ON aibridge_sessions (started_at, user_id, session_key);
CREATE INDEX aibridge_sessions_user_started_idx
    ON aibridge_sessions (user_id, started_at, session_key);
