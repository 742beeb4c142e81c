//! Every statement the store sends, each a literal: values only ever travel as bind
//! parameters, and no SQL is built from input.

/// The condition of a live session; binds `now, now`.
macro_rules! live {
    () => {
        "idle_deadline_ms > ? AND (absolute_deadline_ms IS NULL OR absolute_deadline_ms > ?)"
    };
}

/// The merge of a save: binds clear, patch, last_seen, deadline, last_seen, deadline,
/// user flag, user hash, user flag, user name, last_seen, id, now, now. A session with
/// a lifetime of its own (`lifetime_ms`) is refreshed by it: last_seen plus its idle
/// timeout.
///
/// Assignments run left to right and see the values already assigned, so the last one
/// can report the new version and the new expiry in the same round trip, through
/// `LAST_INSERT_ID(expr)`: the expiry in whole seconds (rounded down, so a cookie
/// never outlives the session; clamped to 32 bits, the year 2106) in the high 32
/// bits, then two bits for the session's own lifetime (`10` persistent cookie, `11`
/// browser-session cookie, `00` none), the version's low 30 bits below. It needs MariaDB's default
/// `SIMULTANEOUS_ASSIGNMENT` off (MySQL has no such mode).
macro_rules! merge {
    () => {
        concat!(
            "data = JSON_MERGE_PATCH(IF(?, '{}', data), ?), ",
            "version = version + 1, ",
            "idle_deadline_ms = LEAST(COALESCE(? + ABS(lifetime_ms), ?), ",
            "COALESCE(absolute_deadline_ms, ? + ABS(lifetime_ms), ?)), ",
            "user_hash = IF(?, ?, user_hash), ",
            "user_name = IF(?, ?, user_name), ",
            "last_seen_ms = IF(LAST_INSERT_ID((LEAST(GREATEST(idle_deadline_ms DIV 1000, 0), 4294967295) << 32) ",
            "| (IF(lifetime_ms IS NULL, 0, IF(lifetime_ms < 0, 3, 2)) << 30) | (version & 1073741823)) >= 0, ",
            "GREATEST(last_seen_ms, ?), last_seen_ms) ",
            "WHERE id = ? AND ",
            live!()
        )
    };
}

// Every statement is a literal: values only ever travel as bind parameters.
pub(crate) const SAVE_SQL: &str = concat!("UPDATE tether_sessions SET ", merge!());
pub(crate) const CYCLE_SQL: &str = concat!("UPDATE tether_sessions SET id = ?, ", merge!());
/// The conditional write of a save after a read (`Writes::replace`): binds the data
/// (wrapped), the new version, last seen, the idle deadline, the user's hash, its name,
/// the id, the version read, now, now.
pub(crate) const REPLACE_SQL: &str = concat!(
    "UPDATE tether_sessions SET data = ?, version = ?, last_seen_ms = ?, ",
    "idle_deadline_ms = ?, user_hash = ?, user_name = ? WHERE id = ? AND version = ? AND ",
    live!()
);
pub(crate) const LOAD_SQL: &str = concat!(
    "SELECT CAST(data AS CHAR) AS data, CAST(version AS SIGNED) AS version, created_ms, last_seen_ms, ",
    "idle_deadline_ms, absolute_deadline_ms, lifetime_ms, user_name FROM tether_sessions WHERE id = ? AND ",
    live!()
);
pub(crate) const LIST_SQL: &str = concat!(
    "SELECT id, created_ms, last_seen_ms, user_name FROM tether_sessions WHERE user_hash = ? AND ",
    live!(),
    " ORDER BY created_ms"
);
pub(crate) const CLEAR_EXPIRED_ID_SQL: &str = concat!(
    "DELETE FROM tether_sessions WHERE id = ? AND NOT (",
    live!(),
    ")"
);
pub(crate) const TOUCH_SQL: &str = concat!(
    "UPDATE tether_sessions SET version = version + 1, last_seen_ms = GREATEST(last_seen_ms, ?), ",
    "idle_deadline_ms = LEAST(COALESCE(? + ABS(lifetime_ms), ?), ",
    "COALESCE(absolute_deadline_ms, ? + ABS(lifetime_ms), ?)) WHERE id = ? AND ",
    live!()
);
pub(crate) const DELETE_USER_SQL: &str = concat!(
    "DELETE FROM tether_sessions WHERE user_hash = ? AND user_name = ? AND ",
    live!()
);

pub(crate) const MIGRATION_LOCK_SQL: &str = "SELECT GET_LOCK('tether_migrations', 60)";
pub(crate) const MIGRATION_UNLOCK_SQL: &str = "SELECT RELEASE_LOCK('tether_migrations')";
/// Binds now twice. The index is on the expiry bucket (`idle_deadline_ms DIV 65536`,
/// never above now's for an expired row), so that saves within a bucket leave it alone.
pub(crate) const CLEANUP_SESSIONS_SQL: &str = concat!(
    "DELETE FROM tether_sessions WHERE expiry_bucket <= ? DIV 65536 ",
    "AND idle_deadline_ms <= ? LIMIT 1000"
);
pub(crate) const CLEANUP_LOCKS_SQL: &str = "DELETE FROM tether_locks WHERE expires_ms <= ?";
pub(crate) const DELETE_SQL: &str = "DELETE FROM tether_sessions WHERE id = ?";
pub(crate) const CLEAR_EXPIRED_LOCK_SQL: &str =
    "DELETE FROM tether_locks WHERE id = ? AND expires_ms <= ?";
pub(crate) const TAKE_LOCK_SQL: &str =
    "INSERT IGNORE INTO tether_locks (id, token, expires_ms) VALUES (?, ?, ?)";
pub(crate) const UNLOCK_SQL: &str = "DELETE FROM tether_locks WHERE id = ? AND token = ?";
pub(crate) const CREATE_SQL: &str = concat!(
    "INSERT INTO tether_sessions (id, data, version, created_ms, last_seen_ms, ",
    "idle_deadline_ms, absolute_deadline_ms, user_hash, user_name, lifetime_ms) ",
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
);
