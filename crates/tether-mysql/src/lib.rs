//! A MySQL / MariaDB session store for tether: one statement per read and per write.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tether_core::Error> {
//! use std::time::Duration;
//! use tether_mysql::MySqlStore;
//!
//! let store = MySqlStore::connect("mysql://app:secret@127.0.0.1:3306/app")?;
//! store.migrate().await?; // idempotent; safe when several instances run it at once
//! let _cleanup = store.spawn_cleanup(Duration::from_secs(60)); // stops when dropped
//! # Ok(()) }
//! ```
//!
//! # Schema
//!
//! `tether_sessions` has one row per session: `id BINARY(16)`, `data` (a JSON object
//! `{"key": [value]}`), `version`, times in milliseconds since the epoch
//! (`created_ms`, `last_seen_ms`, `idle_deadline_ms`, `absolute_deadline_ms`), and the
//! user (`user_hash` = SHA-256, indexed; `user_name`). `tether_locks` holds lock-mode
//! locks. The embedded migrations (`migrations/`) create both.
//!
//! # Statements
//!
//! - Load: one `SELECT`, with expiry checked in SQL.
//! - Save: one `UPDATE` that merges only the changed keys with `JSON_MERGE_PATCH`
//!   (each value is wrapped in a one-element array, so a patch replaces a value whole
//!   and can store `null`), bumps the version and refreshes the deadline (one
//!   `LAST_INSERT_ID(expr)` returns both in the same round trip: the expiry in whole
//!   seconds and the version's low 32 bits), only `WHERE` the session
//!   is live: concurrent saves of different keys both persist, and a deleted session
//!   is never recreated.
//! - Refresh: one `UPDATE`. Id rotation: one `UPDATE` of the primary key.
//!   "Log out everywhere": one `DELETE`.
//! - Every value reaches the database as a bind parameter; no SQL is built from input.
//!
//! # MySQL and MariaDB
//!
//! Tested on MariaDB 10.11. The SQL is the common subset of MariaDB 10.2.25+ and
//! MySQL 8: `JSON_MERGE_PATCH`, `LAST_INSERT_ID(expr)`, `INSERT IGNORE`, `LONGTEXT`
//! for the JSON (MariaDB's `JSON` is an alias for it; on MySQL it avoids the binary
//! JSON type's key reordering).

mod codec;
mod maintenance;
mod sql;

use std::time::Duration;

use sqlx::mysql::{MySqlPool, MySqlPoolOptions, MySqlQueryResult};
use sqlx::{MySql, Row as _};

use crate::codec::{decode, patch, reported, user_hash, wrap};
use crate::sql::{
    CLEAR_EXPIRED_ID_SQL, CLEAR_EXPIRED_LOCK_SQL, CREATE_SQL, CYCLE_SQL, DELETE_SQL,
    DELETE_USER_SQL, LIST_SQL, LOAD_SQL, SAVE_SQL, TAKE_LOCK_SQL, TOUCH_SQL, UNLOCK_SQL,
};
use tether_core::{
    Changes, Created, Error, Id, LockOptions, LockToken, LockWait, Record, Result, Saved,
    SessionInfo, SessionStore, Touch, async_trait, unix_ms,
};

/// Sessions in a MySQL or MariaDB table.
#[derive(Debug, Clone)]
pub struct MySqlStore {
    pool: MySqlPool,
    timeout: Duration,
    target: String,
}

/// The background cleanup; stops when dropped.
pub type Cleanup = tether_core::Background;

/// Expired rows deleted per statement of a cleanup.
const CLEANUP_BATCH: u64 = 1000;

impl MySqlStore {
    /// A store on `mysql://user:password@host:port/database` (MySQL or MariaDB).
    ///
    /// Connections are made on demand: this fails only on a malformed URL, and a
    /// database that is down at start-up is a 503 until it comes up. Call
    /// [`MySqlStore::migrate`] once at start-up.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// assert!(tether_mysql::MySqlStore::connect("mysql://u:p@127.0.0.1:3306/app").is_ok());
    /// assert!(tether_mysql::MySqlStore::connect("postgres://nope").is_err());
    /// # }
    /// ```
    pub fn connect(url: &str) -> Result<Self> {
        let timeout = Duration::from_secs(2);
        let invalid = |why: String| {
            Error::config(format!("MySQL URL {}: {why}", tether_core::redact_url(url)))
        };
        if !(url.starts_with("mysql://") || url.starts_with("mariadb://")) {
            return Err(invalid("expected a mysql:// or mariadb:// URL".into()));
        }
        let options: sqlx::mysql::MySqlConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| invalid(e.to_string()))?;
        let pool = MySqlPoolOptions::new()
            .max_connections(32)
            .acquire_timeout(timeout)
            // A ping before every checkout would double the round trips; a broken
            // connection fails its statement instead and is discarded.
            .test_before_acquire(false)
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            timeout,
            target: tether_core::redact_url(url),
        })
    }

    /// How long one statement may take, waiting for a connection included, before it
    /// fails as unavailable (default 2 s).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn run<T, F>(&self, what: &str, op: F) -> Result<T>
    where
        F: AsyncFnOnce(&MySqlPool) -> Result<T, sqlx::Error>,
    {
        match tokio::time::timeout(self.timeout, op(&self.pool)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Error::unavailable(
                format!("{what} at MySQL {}", self.target),
                e,
            )),
            Err(_) => Err(Error::timed_out(
                format_args!("{what} at MySQL {}", self.target),
                self.timeout,
            )),
        }
    }

    async fn enforce_cap(&self, user: &str, keep: &Id, cap: u32) -> Result<()> {
        let sessions = self
            .live_of(user)
            .await?
            .into_iter()
            .map(|s| (s.id, s.created));
        for id in tether_core::sessions_beyond_cap(sessions, keep, cap) {
            self.delete(&id).await?;
        }
        Ok(())
    }

    async fn live_of(&self, user: &str) -> Result<Vec<SessionInfo>> {
        let now = unix_ms::now_ms();
        let hash = user_hash(user);
        let rows = self
            .run("listing a user's sessions", async |pool| {
                sqlx::query(LIST_SQL)
                    .bind(&hash)
                    .bind(now)
                    .bind(now)
                    .fetch_all(pool)
                    .await
            })
            .await?;
        let mut sessions = Vec::with_capacity(rows.len());
        for row in rows {
            let get = |e: sqlx::Error| Error::Corrupt(format!("tether_sessions row: {e}"));
            let name: Option<String> = row.try_get("user_name").map_err(get)?;
            if name.as_deref() != Some(user) {
                continue;
            }
            let bytes: Vec<u8> = row.try_get("id").map_err(get)?;
            let bytes: [u8; tether_core::ID_BYTES] = bytes
                .try_into()
                .map_err(|_| Error::Corrupt("tether_sessions.id is not 16 bytes".into()))?;
            sessions.push(SessionInfo {
                id: Id::from_bytes(bytes),
                created: unix_ms::from_ms(row.try_get("created_ms").map_err(get)?),
                last_seen: unix_ms::from_ms(row.try_get("last_seen_ms").map_err(get)?),
            });
        }
        Ok(sessions)
    }

    /// The shared `UPDATE` of a save or a rotation: `SET id = ?` only when rotating.
    async fn merge(
        &self,
        what: &str,
        id: &Id,
        new_id: Option<&Id>,
        changes: &Changes,
    ) -> Result<MySqlQueryResult> {
        let now = unix_ms::now_ms();
        let deadline = unix_ms::to_ms(changes.idle_deadline);
        let (user_set, user_hash_value, user_name) = match &changes.user {
            None => (false, None, None),
            Some(Some(u)) => (true, Some(user_hash(u)), Some(u.clone())),
            Some(None) => (true, None, None),
        };
        let patch = patch(changes);
        let sql = if new_id.is_some() {
            CYCLE_SQL
        } else {
            SAVE_SQL
        };
        self.run(what, async |pool| {
            let mut query = sqlx::query::<MySql>(sql);
            if let Some(new_id) = new_id {
                query = query.bind(new_id.as_bytes().as_slice());
            }
            query
                .bind(changes.clear)
                .bind(&patch)
                .bind(deadline)
                .bind(deadline)
                .bind(user_set)
                .bind(&user_hash_value)
                .bind(user_set)
                .bind(&user_name)
                .bind(unix_ms::to_ms(changes.last_seen))
                .bind(id.as_bytes().as_slice())
                .bind(now)
                .bind(now)
                .execute(pool)
                .await
        })
        .await
    }

    async fn after_bind(&self, id: &Id, changes: &Changes) -> Result<()> {
        if let (Some(Some(user)), Some(cap)) = (&changes.user, changes.user_cap) {
            self.enforce_cap(user, id, cap).await?;
        }
        Ok(())
    }
}

fn database_error(e: &Error) -> Option<&dyn sqlx::error::DatabaseError> {
    let Error::Unavailable {
        source: Some(source),
        ..
    } = e
    else {
        return None;
    };
    source
        .downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
}

/// `sql` (ending in `WHERE id = ?` and the live condition, or its negation: two
/// readings of now) with the id and the current time bound.
fn by_id_now<'q>(
    sql: &'static str,
    id: &'q Id,
) -> sqlx::query::Query<'q, MySql, sqlx::mysql::MySqlArguments> {
    let now = unix_ms::now_ms();
    sqlx::query(sql)
        .bind(id.as_bytes().as_slice())
        .bind(now)
        .bind(now)
}

fn is_duplicate(e: &Error) -> bool {
    database_error(e).is_some_and(sqlx::error::DatabaseError::is_unique_violation)
}

/// InnoDB's deadlock (1213) and lock-wait timeout (1205): the contended row was busy.
fn is_contention(e: &Error) -> bool {
    database_error(e)
        .and_then(|d| d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .is_some_and(|d| matches!(d.number(), 1205 | 1213))
}

#[async_trait]
impl SessionStore for MySqlStore {
    fn name(&self) -> &'static str {
        "mysql"
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let row = self
            .run("loading a session", async |pool| {
                by_id_now(LOAD_SQL, id).fetch_optional(pool).await
            })
            .await?;
        row.as_ref().map(decode).transpose()
    }

    async fn create_capped(&self, id: &Id, record: &Record, cap: Option<u32>) -> Result<Created> {
        let created = self.create(id, record).await?;
        if let (Created::Yes, Some(user), Some(cap)) = (created, &record.user, cap) {
            self.enforce_cap(user, id, cap).await?;
        }
        Ok(created)
    }

    async fn create(&self, id: &Id, record: &Record) -> Result<Created> {
        let data = wrap(&record.data);
        let hash = record.user.as_deref().map(user_hash);
        for attempt in 0..2 {
            let inserted = self
                .run("creating a session", async |pool| {
                    sqlx::query(CREATE_SQL)
                        .bind(id.as_bytes().as_slice())
                        .bind(&data)
                        .bind(record.version)
                        .bind(unix_ms::to_ms(record.created))
                        .bind(unix_ms::to_ms(record.last_seen))
                        .bind(unix_ms::to_ms(record.idle_deadline))
                        .bind(record.absolute_deadline.map(unix_ms::to_ms))
                        .bind(&hash)
                        .bind(&record.user)
                        .execute(pool)
                        .await
                })
                .await;
            match inserted {
                Ok(_) => return Ok(Created::Yes),
                Err(e) if is_duplicate(&e) && attempt == 0 => {
                    // Taken by a live session: refuse. By an expired one: replace it.
                    let cleared = self
                        .run("replacing an expired session", async |pool| {
                            by_id_now(CLEAR_EXPIRED_ID_SQL, id).execute(pool).await
                        })
                        .await?;
                    if cleared.rows_affected() == 0 {
                        return Ok(Created::IdTaken);
                    }
                }
                Err(e) if is_duplicate(&e) => return Ok(Created::IdTaken),
                Err(e) => return Err(e),
            }
        }
        Ok(Created::IdTaken)
    }

    async fn save(&self, id: &Id, changes: &Changes) -> Result<Saved> {
        let result = self.merge("saving a session", id, None, changes).await?;
        if result.rows_affected() == 0 {
            return Ok(Saved::Gone);
        }
        self.after_bind(id, changes).await?;
        Ok(reported(result.last_insert_id()))
    }

    async fn touch(&self, id: &Id, touch: &Touch) -> Result<bool> {
        let now = unix_ms::now_ms();
        let deadline = unix_ms::to_ms(touch.idle_deadline);
        let result = self
            .run("refreshing a session", async |pool| {
                sqlx::query(TOUCH_SQL)
                    .bind(unix_ms::to_ms(touch.last_seen))
                    .bind(deadline)
                    .bind(deadline)
                    .bind(id.as_bytes().as_slice())
                    .bind(now)
                    .bind(now)
                    .execute(pool)
                    .await
            })
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn delete(&self, id: &Id) -> Result<bool> {
        let result = self
            .run("deleting a session", async |pool| {
                sqlx::query(DELETE_SQL)
                    .bind(id.as_bytes().as_slice())
                    .execute(pool)
                    .await
            })
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn cycle_id(&self, old: &Id, new: &Id, changes: &Changes) -> Result<Saved> {
        let result = match self
            .merge("rotating a session id", old, Some(new), changes)
            .await
        {
            Ok(result) => result,
            Err(e) if is_duplicate(&e) => return Err(Error::IdCollision),
            Err(e) => return Err(e),
        };
        if result.rows_affected() == 0 {
            return Ok(Saved::Gone);
        }
        self.after_bind(new, changes).await?;
        Ok(reported(result.last_insert_id()))
    }

    async fn user_sessions(&self, user: &str) -> Result<Vec<SessionInfo>> {
        self.live_of(user).await
    }

    async fn delete_user_sessions(&self, user: &str) -> Result<u64> {
        let now = unix_ms::now_ms();
        let hash = user_hash(user);
        let result = self
            .run("deleting a user's sessions", async |pool| {
                sqlx::query(DELETE_USER_SQL)
                    .bind(&hash)
                    .bind(user)
                    .bind(now)
                    .bind(now)
                    .execute(pool)
                    .await
            })
            .await?;
        Ok(result.rows_affected())
    }

    async fn lock(&self, id: &Id, options: &LockOptions) -> Result<LockToken> {
        let token = LockToken::generate()?;
        let ttl_ms = i64::try_from(options.ttl.as_millis()).unwrap_or(i64::MAX);
        let mut wait = LockWait::new(options.wait);
        loop {
            let now = unix_ms::now_ms();
            let attempt = async {
                self.run("clearing an expired session lock", async |pool| {
                    sqlx::query(CLEAR_EXPIRED_LOCK_SQL)
                        .bind(id.as_bytes().as_slice())
                        .bind(now)
                        .execute(pool)
                        .await
                })
                .await?;
                self.run("taking a session lock", async |pool| {
                    sqlx::query(TAKE_LOCK_SQL)
                        .bind(id.as_bytes().as_slice())
                        .bind(&token.0)
                        .bind(now.saturating_add(ttl_ms))
                        .execute(pool)
                        .await
                })
                .await
            };
            let acquired = match attempt.await {
                Ok(result) => result.rows_affected() == 1,
                // Contending lockers can deadlock on the lock row: it was busy.
                Err(e) if is_contention(&e) => false,
                Err(e) => return Err(e),
            };
            if acquired {
                return Ok(token);
            }
            tokio::time::sleep(wait.next_pause()?).await;
        }
    }

    async fn unlock(&self, id: &Id, token: &LockToken) -> Result<()> {
        self.run("releasing a session lock", async |pool| {
            sqlx::query(UNLOCK_SQL)
                .bind(id.as_bytes().as_slice())
                .bind(&token.0)
                .execute(pool)
                .await
        })
        .await
        .map(|_| ())
    }
}
