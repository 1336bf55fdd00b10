-- Tokens get an optional expiry and the time they were last used (`yanzhen token list`);
-- the console signs in to a server-side session: the cookie holds a random id, of which
-- only a SHA-256 is kept here, never the token. Revoking a token deletes its sessions,
-- and a session is only honoured while its token is unrevoked and unexpired.
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE api_tokens ADD COLUMN last_used_at BIGINT;

CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    token_name TEXT NOT NULL REFERENCES api_tokens (name) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL
);

CREATE INDEX sessions_by_token ON sessions (token_name);
