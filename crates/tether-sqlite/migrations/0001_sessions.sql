-- Sessions. `data` holds {"key": [value], ...}: wrapping each value in a one-element
-- array lets json_patch replace (never deep-merge) a key and store null.
-- Times are milliseconds since the Unix epoch. `idle_deadline_ms` never passes
-- `absolute_deadline_ms`, so it is the session's expiry.
CREATE TABLE IF NOT EXISTS tether_sessions (
    id BLOB NOT NULL PRIMARY KEY,
    data TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    idle_deadline_ms INTEGER NOT NULL,
    absolute_deadline_ms INTEGER NULL,
    user_hash BLOB NULL,
    user_name TEXT NULL,
    -- The session's own lifetime (`Session::set_expiry`): its idle timeout in
    -- milliseconds, negative when its cookie is a browser-session one; NULL for the
    -- layer's lifetime. Saves and refreshes extend such a session by it.
    lifetime_ms INTEGER NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tether_sessions_expiry ON tether_sessions (idle_deadline_ms);
CREATE INDEX IF NOT EXISTS tether_sessions_user ON tether_sessions (user_hash, created_ms);

-- Lock-mode locks: one row per locked session, owned by a random token.
CREATE TABLE IF NOT EXISTS tether_locks (
    id BLOB NOT NULL PRIMARY KEY,
    token TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tether_locks_expiry ON tether_locks (expires_ms);
