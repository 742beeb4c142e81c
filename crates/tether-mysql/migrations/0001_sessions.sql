-- Sessions. `data` holds {"key": [value], ...}: wrapping each value in a one-element
-- array lets JSON_MERGE_PATCH replace (never deep-merge) a key and store null.
-- Times are milliseconds since the Unix epoch. `idle_deadline_ms` never passes
-- `absolute_deadline_ms`, so it is the session's expiry.
CREATE TABLE IF NOT EXISTS tether_sessions (
    id BINARY(16) NOT NULL,
    data LONGTEXT NOT NULL,
    version BIGINT UNSIGNED NOT NULL,
    created_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    idle_deadline_ms BIGINT NOT NULL,
    absolute_deadline_ms BIGINT NULL,
    user_hash BINARY(32) NULL,
    user_name LONGTEXT NULL,
    -- The session's own lifetime (`Session::set_expiry`): its idle timeout in
    -- milliseconds, negative when its cookie is a browser-session one; NULL for the
    -- layer's lifetime. Saves and refreshes extend such a session by it.
    lifetime_ms BIGINT NULL,
    PRIMARY KEY (id),
    KEY tether_sessions_expiry (idle_deadline_ms),
    KEY tether_sessions_user (user_hash, created_ms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Lock-mode locks: one row per locked session, owned by a random token.
CREATE TABLE IF NOT EXISTS tether_locks (
    id BINARY(16) NOT NULL,
    token CHAR(22) NOT NULL,
    expires_ms BIGINT NOT NULL,
    PRIMARY KEY (id),
    KEY tether_locks_expiry (expires_ms)
) ENGINE = InnoDB DEFAULT CHARSET = ascii COLLATE = ascii_bin;
