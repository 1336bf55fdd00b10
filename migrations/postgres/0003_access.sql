-- Access: administrator tokens (only a SHA-256 of each token is kept) and daemon settings
-- such as the secret that signs the links in reminders.
CREATE TABLE api_tokens (
    name       TEXT PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    rights     TEXT NOT NULL CHECK (rights IN ('admin', 'read')),
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
