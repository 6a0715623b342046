-- chatd schema, version 5: user accounts for the /api/v2/users routes
-- (docs/server-admin.md). Identical on SQLite and PostgreSQL.

-- Optional e-mail address ('' = none) and the time of the last change of the record
-- (0 = never changed since creation; readers use created_at then).
ALTER TABLE users ADD COLUMN email TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;

-- Usernames and e-mail addresses are unique case-insensitively, as in Coder: "Bob" and
-- "bob" are one user. Writers check first for a clear message; the indexes settle races.
CREATE UNIQUE INDEX users_username_lower_idx ON users (lower(username));
CREATE UNIQUE INDEX users_email_lower_idx ON users (lower(email)) WHERE email <> '';

-- Counting and locking the administrators when a role is removed.
CREATE INDEX users_role_idx ON users (role);
