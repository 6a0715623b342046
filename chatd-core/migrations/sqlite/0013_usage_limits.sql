-- Usage limits (codersdk.md §13.3, engine.md §6.5) and the minimal groups they need.
--
-- A group belongs to one organization and has members; a group's usage-limit override
-- applies to each member (the smallest of a user's groups wins, below a user override).
CREATE TABLE groups (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    avatar_url TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (organization_id, name)
);

CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);

-- The admission check finds a user's groups.
CREATE INDEX group_members_user_idx ON group_members (user_id);

-- The deployment's limit: one row (`singleton = 1`) once an administrator set it; no row
-- and a NULL limit both mean limits are off. The period is day, week or month (UTC).
CREATE TABLE chat_usage_limit_config (
    singleton BIGINT PRIMARY KEY CHECK (singleton = 1),
    spend_limit_micros BIGINT NULL CHECK (spend_limit_micros IS NULL OR spend_limit_micros > 0),
    period TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE chat_usage_limit_user_overrides (
    user_id TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    spend_limit_micros BIGINT NOT NULL CHECK (spend_limit_micros > 0),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE chat_usage_limit_group_overrides (
    group_id TEXT PRIMARY KEY REFERENCES groups (id) ON DELETE CASCADE,
    spend_limit_micros BIGINT NOT NULL CHECK (spend_limit_micros > 0),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
