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
mod store;

use std::time::Duration;

use sqlx::MySql;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use tether_sql::Runner;

use tether_core::{Error, Result, unix_ms};

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
