//! Every statement the store sends, each a literal: values only ever travel as bind
//! parameters, and no SQL is built from input.

/// The condition of a live session at `now` (bind `?n`).
macro_rules! live {
    ($n:literal) => {
        concat!(
            "idle_deadline_ms > ?",
            $n,
            " AND (absolute_deadline_ms IS NULL OR absolute_deadline_ms > ?",
            $n,
            ")"
        )
    };
}

/// The new idle deadline of a save or a refresh: `?a` last seen, `?b` the deadline the
/// layer asks for. A session with a lifetime of its own (`lifetime_ms`) is refreshed by
/// it: last seen plus its idle timeout; never past the absolute deadline.
macro_rules! deadline {
    ($a:literal, $b:literal) => {
        concat!(
            "MIN(COALESCE(?",
            $a,
            " + ABS(lifetime_ms), ?",
            $b,
            "), ",
            "COALESCE(absolute_deadline_ms, ?",
            $a,
            " + ABS(lifetime_ms), ?",
            $b,
            "))"
        )
    };
}

/// The merge of a save: binds `?1` clear, `?2` the patch (`{"k": [v]}` sets,
/// `{"k": null}` removes: `json_patch` is RFC 7396's merge patch), `?3` the idle
/// deadline, `?4` whether the user changes, `?5` its hash, `?6` its name, `?7` last
/// seen, `?8` the id, `?9` now. `SET` sees the old row and `RETURNING` the new one.
/// SQLite runs one writer at a time, so concurrent saves of disjoint keys apply one
/// after the other and both stay.
macro_rules! merge {
    () => {
        concat!(
            "data = json_patch(CASE WHEN ?1 THEN '{}' ELSE data END, ?2), ",
            "version = version + 1, ",
            "idle_deadline_ms = ",
            deadline!(7, 3),
            ", ",
            "expiry_bucket = ",
            deadline!(7, 3),
            " / 65536, ",
            "user_hash = CASE WHEN ?4 THEN ?5 ELSE user_hash END, ",
            "user_name = CASE WHEN ?4 THEN ?6 ELSE user_name END, ",
            "last_seen_ms = MAX(last_seen_ms, ?7) ",
            "WHERE id = ?8 AND ",
            live!(9),
            " RETURNING version, idle_deadline_ms, lifetime_ms"
        )
    };
}

pub(crate) const SAVE_SQL: &str = concat!("UPDATE tether_sessions SET ", merge!());
/// The merge, and `?10` the new id.
pub(crate) const CYCLE_SQL: &str = concat!("UPDATE tether_sessions SET id = ?10, ", merge!());
/// The conditional write of a save after a read (`Writes::replace`), assigning the
/// indexed columns only when they change (SQLite rewrites an index entry whenever a
/// column of it is assigned): binds `?1` the data (wrapped), `?2` the new version, `?3`
/// last seen, `?4` the idle deadline, `?5` the user's hash, `?6` its name, `?7` the id,
/// `?8` the version read, `?9` now.
macro_rules! replace {
    ($($set:literal),*) => {
        concat!(
            "UPDATE tether_sessions SET data = ?1, version = ?2, last_seen_ms = ?3, ",
            "idle_deadline_ms = ?4", $($set,)* " WHERE id = ?7 AND version = ?8 AND ",
            live!(9)
        )
    };
}

/// [`replace!`] by what changes: `REPLACE_SQL[user changed | bucket changed << 1]`.
pub(crate) const REPLACE_SQL: [&str; 4] = [
    replace!(),
    replace!(", user_hash = ?5, user_name = ?6"),
    replace!(", expiry_bucket = ?4 / 65536"),
    replace!(", expiry_bucket = ?4 / 65536, user_hash = ?5, user_name = ?6"),
];
/// The expiry bucket of a deadline, as the statements compute it.
pub(crate) fn expiry_bucket(deadline_ms: i64) -> i64 {
    deadline_ms / 65536
}
pub(crate) const LOAD_SQL: &str = concat!(
    "SELECT data, version, created_ms, last_seen_ms, idle_deadline_ms, ",
    "absolute_deadline_ms, lifetime_ms, user_name FROM tether_sessions WHERE id = ?1 AND ",
    live!(2)
);
pub(crate) const LIST_SQL: &str = concat!(
    "SELECT id, created_ms, last_seen_ms, user_name FROM tether_sessions WHERE user_hash = ?1 AND ",
    live!(2),
    " ORDER BY created_ms"
);
pub(crate) const CREATE_SQL: &str = concat!(
    "INSERT INTO tether_sessions (id, data, version, created_ms, last_seen_ms, ",
    "idle_deadline_ms, absolute_deadline_ms, user_hash, user_name, lifetime_ms, expiry_bucket) ",
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?6 / 65536)"
);
pub(crate) const CLEAR_EXPIRED_ID_SQL: &str = concat!(
    "DELETE FROM tether_sessions WHERE id = ?1 AND NOT (",
    live!(2),
    ")"
);
pub(crate) const TOUCH_SQL: &str = concat!(
    "UPDATE tether_sessions SET version = version + 1, last_seen_ms = MAX(last_seen_ms, ?1), ",
    "idle_deadline_ms = ",
    deadline!(1, 2),
    ", expiry_bucket = ",
    deadline!(1, 2),
    " / 65536 WHERE id = ?3 AND ",
    live!(4)
);
pub(crate) const DELETE_SQL: &str = "DELETE FROM tether_sessions WHERE id = ?1";
pub(crate) const DELETE_USER_SQL: &str = concat!(
    "DELETE FROM tether_sessions WHERE user_hash = ?1 AND user_name = ?2 AND ",
    live!(3)
);
/// Takes the lock when it is free or its holder's time ran out, in one statement.
pub(crate) const TAKE_LOCK_SQL: &str = concat!(
    "INSERT INTO tether_locks (id, token, expires_ms) VALUES (?1, ?2, ?3) ",
    "ON CONFLICT (id) DO UPDATE SET token = excluded.token, expires_ms = excluded.expires_ms ",
    "WHERE tether_locks.expires_ms <= ?4"
);
pub(crate) const UNLOCK_SQL: &str = "DELETE FROM tether_locks WHERE id = ?1 AND token = ?2";
/// The outer condition repeats the inner one, as on Postgres (SQLite runs one writer
/// at a time, so here it only keeps the two statements alike).
/// The index is on the expiry bucket (`idle_deadline_ms / 65536`, never above
/// `?1 / 65536` for an expired row).
pub(crate) const CLEANUP_SESSIONS_SQL: &str = concat!(
    "DELETE FROM tether_sessions WHERE idle_deadline_ms <= ?1 AND id IN ",
    "(SELECT id FROM tether_sessions WHERE expiry_bucket <= ?1 / 65536 ",
    "AND idle_deadline_ms <= ?1 LIMIT 1000)"
);
pub(crate) const CLEANUP_LOCKS_SQL: &str = "DELETE FROM tether_locks WHERE expires_ms <= ?1";
