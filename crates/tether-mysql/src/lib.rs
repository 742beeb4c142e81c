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
mod statements;

use std::time::Duration;

use sqlx::MySql;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use tether_sql::codec::user_hash;
use tether_sql::flow::{self, Statements};
use tether_sql::{Runner, database_error, rows};

use crate::sql::{
    CLEAR_EXPIRED_LOCK_SQL, DELETE_USER_SQL, LOAD_SQL, TAKE_LOCK_SQL, TOUCH_SQL, UNLOCK_SQL,
};
use tether_core::{
    Changes, Created, Error, Id, LockOptions, LockToken, Record, Result, Saved, SessionInfo,
    SessionStore, Touch, async_trait, unix_ms,
};

/// Sessions in a MySQL or MariaDB table.
#[derive(Debug, Clone)]
pub struct MySqlStore {
    pool: MySqlPool,
    runner: Runner,
}

/// The background cleanup; stops when dropped.
pub type Cleanup = tether_core::Background;

/// How long one statement may take by default, waiting for a connection included.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

impl MySqlStore {
    /// A store on `mysql://user:password@host:port/database` (MySQL or MariaDB).
    ///
    /// Connections are made on demand: this fails only on a malformed URL, and a
    /// database that is down at start-up is a 503 until it comes up. Call
    /// [`MySqlStore::migrate`] once at start-up. TLS options go in the URL
    /// (`?ssl-mode=VERIFY_IDENTITY&ssl-ca=/path/ca.pem`, as sqlx reads them).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// assert!(tether_mysql::MySqlStore::connect("mysql://u:p@127.0.0.1:3306/app").is_ok());
    /// assert!(tether_mysql::MySqlStore::connect("postgres://nope").is_err());
    /// # }
    /// ```
    pub fn connect(url: &str) -> Result<Self> {
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
            .acquire_timeout(DEFAULT_TIMEOUT)
            // A ping before every checkout would double the round trips; a broken
            // connection fails its statement instead and is discarded.
            .test_before_acquire(false)
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            runner: Runner::new("MySQL", url, DEFAULT_TIMEOUT),
        })
    }

    /// A store on the app's own pool. The pool's settings are the app's; tether
    /// recommends `test_before_acquire(false)` (a ping per checkout doubles the round
    /// trips). Call [`MySqlStore::migrate`] once at start-up.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let pool = sqlx::mysql::MySqlPoolOptions::new()
    ///     .connect_lazy("mysql://u:p@127.0.0.1:3306/app")
    ///     .unwrap();
    /// let store = tether_mysql::MySqlStore::from_pool(pool);
    /// # }
    /// ```
    pub fn from_pool(pool: MySqlPool) -> Self {
        let options = pool.connect_options();
        let target = format!(
            "mysql://{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default()
        );
        Self {
            runner: Runner::new("MySQL", &target, DEFAULT_TIMEOUT),
            pool,
        }
    }

    /// How long one statement may take, waiting for a connection included, before it
    /// fails as unavailable (default 2 s).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.runner = self.runner.with_timeout(timeout);
        self
    }
}

pub(crate) type Query<'q> = sqlx::query::Query<'q, MySql, sqlx::mysql::MySqlArguments>;

/// `query` (ending in the live condition, or its negation) with the current time
/// bound twice.
pub(crate) fn live(query: Query<'_>) -> Query<'_> {
    let now = unix_ms::now_ms();
    query.bind(now).bind(now)
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
            .runner
            .run("loading a session", async || {
                live(sqlx::query(LOAD_SQL).bind(id.as_bytes().as_slice()))
                    .fetch_optional(&self.pool)
                    .await
            })
            .await?;
        row.map(|row| rows::record(&row, rows::WRAPPED)).transpose()
    }

    async fn create_capped(&self, id: &Id, record: &Record, cap: Option<u32>) -> Result<Created> {
        flow::create(self, id, record, cap).await
    }

    async fn create(&self, id: &Id, record: &Record) -> Result<Created> {
        flow::create(self, id, record, None).await
    }

    async fn save(&self, id: &Id, changes: &Changes) -> Result<Saved> {
        flow::save(self, id, changes).await
    }

    async fn touch(&self, id: &Id, touch: &Touch) -> Result<bool> {
        let deadline = unix_ms::to_ms(touch.idle_deadline);
        let result = self
            .runner
            .run("refreshing a session", async || {
                let query = sqlx::query(TOUCH_SQL)
                    .bind(unix_ms::to_ms(touch.last_seen))
                    .bind(deadline)
                    .bind(deadline)
                    .bind(id.as_bytes().as_slice());
                live(query).execute(&self.pool).await
            })
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn delete(&self, id: &Id) -> Result<bool> {
        Statements::delete(self, id).await
    }

    async fn cycle_id(&self, old: &Id, new: &Id, changes: &Changes) -> Result<Saved> {
        flow::cycle_id(self, old, new, changes).await
    }

    async fn user_sessions(&self, user: &str) -> Result<Vec<SessionInfo>> {
        self.list(user).await
    }

    async fn delete_user_sessions(&self, user: &str) -> Result<u64> {
        let hash = user_hash(user);
        let result = self
            .runner
            .run("deleting a user's sessions", async || {
                live(sqlx::query(DELETE_USER_SQL).bind(&hash).bind(user))
                    .execute(&self.pool)
                    .await
            })
            .await?;
        Ok(result.rows_affected())
    }

    async fn lock(&self, id: &Id, options: &LockOptions) -> Result<LockToken> {
        let token = LockToken::generate()?;
        let ttl_ms = i64::try_from(options.ttl.as_millis()).unwrap_or(i64::MAX);
        let attempt = || async {
            let now = unix_ms::now_ms();
            self.runner
                .run("clearing an expired session lock", async || {
                    sqlx::query(CLEAR_EXPIRED_LOCK_SQL)
                        .bind(id.as_bytes().as_slice())
                        .bind(now)
                        .execute(&self.pool)
                        .await
                })
                .await?;
            let acquired = self
                .runner
                .run("taking a session lock", async || {
                    sqlx::query(TAKE_LOCK_SQL)
                        .bind(id.as_bytes().as_slice())
                        .bind(&token.0)
                        .bind(now.saturating_add(ttl_ms))
                        .execute(&self.pool)
                        .await
                })
                .await?;
            Ok(acquired.rows_affected() == 1)
        };
        // Contending lockers can deadlock on the lock row: it was busy.
        flow::lock(options.wait, attempt, is_contention).await?;
        Ok(token)
    }

    async fn unlock(&self, id: &Id, token: &LockToken) -> Result<()> {
        self.runner
            .run("releasing a session lock", async || {
                sqlx::query(UNLOCK_SQL)
                    .bind(id.as_bytes().as_slice())
                    .bind(&token.0)
                    .execute(&self.pool)
                    .await
            })
            .await
            .map(|_| ())
    }
}
