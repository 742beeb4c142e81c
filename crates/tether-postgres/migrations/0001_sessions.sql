-- Sessions. `data` is a jsonb object of the session's keys; a save merges the keys
-- it changed with `||` and removes keys with `-`.
-- Times are milliseconds since the Unix epoch. `idle_deadline_ms` never passes
-- `absolute_deadline_ms`, so it is the session's expiry.
CREATE TABLE IF NOT EXISTS tether_sessions (
    id BYTEA PRIMARY KEY,
    data JSONB NOT NULL,
    version BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    idle_deadline_ms BIGINT NOT NULL,
    absolute_deadline_ms BIGINT NULL,
    user_hash BYTEA NULL,
    user_name TEXT NULL,
    -- The session's own lifetime (`Session::set_expiry`): its idle timeout in
    -- milliseconds, negative when its cookie is a browser-session one; NULL for the
    -- layer's lifetime. Saves and refreshes extend such a session by it.
    lifetime_ms BIGINT NULL
);
CREATE INDEX IF NOT EXISTS tether_sessions_expiry ON tether_sessions (idle_deadline_ms);
CREATE INDEX IF NOT EXISTS tether_sessions_user ON tether_sessions (user_hash, created_ms)
    WHERE user_hash IS NOT NULL;

-- Lock-mode locks: one row per locked session, owned by a random token.
CREATE TABLE IF NOT EXISTS tether_locks (
    id BYTEA PRIMARY KEY,
    token TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS tether_locks_expiry ON tether_locks (expires_ms);
