//! Every statement the store sends, each a literal: values only ever travel as bind
//! parameters, and no SQL is built from input.

/// The condition of a live session at `now` (bind `$n`).
macro_rules! live {
    ($n:literal) => {
        concat!(
            "idle_deadline_ms > $",
            $n,
            " AND (absolute_deadline_ms IS NULL OR absolute_deadline_ms > $",
            $n,
            ")"
        )
    };
}

/// The merge of a save: binds `$1` clear, `$2` the keys set (a jsonb object), `$3` the
/// keys removed, `$4` the idle deadline, `$5` whether the user changes, `$6` its hash,
/// `$7` its name, `$8` last seen, `$9` the id, `$10` now. A session with a lifetime
/// of its own (`lifetime_ms`) is refreshed by it: `$8` plus its idle timeout. `SET` sees the old row and
/// `RETURNING` the new one, so the new version and expiry come back in the same
/// statement. A concurrent save of the same row waits for the row lock and is then
/// applied to the committed row (READ COMMITTED re-reads it): disjoint keys both stay.
macro_rules! merge {
    () => {
        concat!(
            "data = ((CASE WHEN $1 THEN '{}'::jsonb ELSE data END) || $2::jsonb) - $3::text[], ",
            "version = version + 1, ",
            "idle_deadline_ms = LEAST(COALESCE($8 + ABS(lifetime_ms), $4), ",
            "COALESCE(absolute_deadline_ms, $8 + ABS(lifetime_ms), $4)), ",
            "user_hash = CASE WHEN $5 THEN $6 ELSE user_hash END, ",
            "user_name = CASE WHEN $5 THEN $7 ELSE user_name END, ",
            "last_seen_ms = GREATEST(last_seen_ms, $8) ",
            "WHERE id = $9 AND ",
            live!(10),
            " RETURNING version, idle_deadline_ms, lifetime_ms"
        )
    };
}

pub(crate) const SAVE_SQL: &str = concat!("UPDATE tether_sessions SET ", merge!());
/// The merge, and `$11` the new id.
pub(crate) const CYCLE_SQL: &str = concat!("UPDATE tether_sessions SET id = $11, ", merge!());
/// The conditional write of a save after a read (`Writes::replace`): binds `$1` the
/// data (wrapped), `$2` the new version, `$3` last seen, `$4` the idle deadline, `$5`
/// the user's hash, `$6` its name, `$7` the id, `$8` the version read, `$9` now.
pub(crate) const REPLACE_SQL: &str = concat!(
    "UPDATE tether_sessions SET data = $1::jsonb, version = $2, last_seen_ms = $3, ",
    "idle_deadline_ms = $4, user_hash = $5, user_name = $6 WHERE id = $7 AND version = $8 AND ",
    live!(9)
);
pub(crate) const LOAD_SQL: &str = concat!(
    "SELECT data::text AS data, version, created_ms, last_seen_ms, ",
    "idle_deadline_ms, absolute_deadline_ms, lifetime_ms, user_name FROM tether_sessions WHERE id = $1 AND ",
    live!(2)
);
pub(crate) const LIST_SQL: &str = concat!(
    "SELECT id, created_ms, last_seen_ms, user_name FROM tether_sessions WHERE user_hash = $1 AND ",
    live!(2),
    " ORDER BY created_ms"
);
pub(crate) const CREATE_SQL: &str = concat!(
    "INSERT INTO tether_sessions (id, data, version, created_ms, last_seen_ms, ",
    "idle_deadline_ms, absolute_deadline_ms, user_hash, user_name, lifetime_ms) ",
    "VALUES ($1, $2::jsonb, $3, $4, $5, $6, $7, $8, $9, $10)"
);
pub(crate) const CLEAR_EXPIRED_ID_SQL: &str = concat!(
    "DELETE FROM tether_sessions WHERE id = $1 AND NOT (",
    live!(2),
    ")"
);
pub(crate) const TOUCH_SQL: &str = concat!(
    "UPDATE tether_sessions SET version = version + 1, last_seen_ms = GREATEST(last_seen_ms, $1), ",
    "idle_deadline_ms = LEAST(COALESCE($1 + ABS(lifetime_ms), $2), ",
    "COALESCE(absolute_deadline_ms, $1 + ABS(lifetime_ms), $2)) WHERE id = $3 AND ",
    live!(4)
);
pub(crate) const DELETE_SQL: &str = "DELETE FROM tether_sessions WHERE id = $1";
pub(crate) const DELETE_USER_SQL: &str = concat!(
    "DELETE FROM tether_sessions WHERE user_hash = $1 AND user_name = $2 AND ",
    live!(3)
);
/// Takes the lock when it is free or its holder's time ran out, in one statement.
pub(crate) const TAKE_LOCK_SQL: &str = concat!(
    "INSERT INTO tether_locks (id, token, expires_ms) VALUES ($1, $2, $3) ",
    "ON CONFLICT (id) DO UPDATE SET token = EXCLUDED.token, expires_ms = EXCLUDED.expires_ms ",
    "WHERE tether_locks.expires_ms <= $4"
);
pub(crate) const UNLOCK_SQL: &str = "DELETE FROM tether_locks WHERE id = $1 AND token = $2";
/// The outer condition repeats the inner one: when a save extends a session between
/// the subquery's snapshot and the delete, READ COMMITTED re-checks only the outer
/// `WHERE` against the saved row, which must then keep it. The index is on the
/// expiry bucket (`idle_deadline_ms / 65536`, never above `$1 / 65536` for an expired
/// row), so that saves within a bucket are HOT updates.
pub(crate) const CLEANUP_SESSIONS_SQL: &str = concat!(
    "DELETE FROM tether_sessions WHERE idle_deadline_ms <= $1 AND id IN ",
    "(SELECT id FROM tether_sessions WHERE expiry_bucket <= $1 / 65536 ",
    "AND idle_deadline_ms <= $1 LIMIT 1000)"
);
pub(crate) const CLEANUP_LOCKS_SQL: &str = "DELETE FROM tether_locks WHERE expires_ms <= $1";
