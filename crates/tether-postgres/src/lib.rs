//! A Postgres session store for tether: one statement per read and per write.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tether_core::Error> {
//! use std::time::Duration;
//! use tether_postgres::PostgresStore;
//!
//! let store = PostgresStore::connect("postgres://app:secret@127.0.0.1:5432/app")?;
//! store.migrate().await?; // idempotent; safe when several instances run it at once
//! let _cleanup = store.spawn_cleanup(Duration::from_secs(60)); // stops when dropped
//! # Ok(()) }
//! ```
//!
//! # Schema
//!
//! `tether_sessions` has one row per session: `id BYTEA`, `data JSONB` (the session's
//! keys, each value as its JSON text: `jsonb` would rewrite numbers), `version`, times in milliseconds since the epoch (`created_ms`,
//! `last_seen_ms`, `idle_deadline_ms`, `absolute_deadline_ms`), and the user
//! (`user_hash` = SHA-256, indexed; `user_name`). `tether_locks` holds lock-mode
//! locks. The embedded migrations (`migrations/`) create both; sqlx's migrator holds
//! a Postgres advisory lock while it runs, so instances starting together apply
//! each migration once.
//!
//! # Statements
//!
//! - Load: one `SELECT`, with expiry checked in SQL.
//! - Save: one `UPDATE` that merges only the changed keys (`data || set - removed`),
//!   bumps the version and refreshes the deadline, only `WHERE` the session is live,
//!   and returns the new version and expiry (`RETURNING`): concurrent saves of
//!   different keys both persist, and a deleted session is never recreated.
//! - Refresh: one `UPDATE`. Id rotation: the same `UPDATE`, setting the primary key.
//!   "Log out everywhere": one `DELETE`. A lock: one `INSERT … ON CONFLICT` that takes
//!   a free or expired lock.
//! - Every value reaches the database as a bind parameter; no SQL is built from input.
//!
//! # Near cache
//!
//! A trigger announces every change of a session row (by any writer) with
//! `pg_notify('tether_sessions', id)`. The first near cache to start on a database
//! installs it ([`PostgresStore::install_notify_trigger`]); `migrate` does not.
//! [`PostgresStore::with_near_cache`] keeps the sessions an instance read in its
//! memory and drops a copy when its `LISTEN` connection hears of a change. Reads are
//! fenced by default (a query on the listening connection, shared by every read
//! waiting, before a copy is served) or pushed (no statement). The cache empties and
//! steps aside whenever the listening connection closes or a fence on it does not
//! come back in time. Once installed, the trigger costs every write a `pg_notify`,
//! cached or not; a database where no near cache ever ran pays nothing.

mod maintenance;
mod near_cache;
mod sql;
mod statements;
mod store;

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use tether_core::{Error, Result};
use tether_sql::escape::{read_postgres_data, unescape};
use tether_sql::{Runner, rows};

/// Sessions in a Postgres table.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    runner: Runner,
}

/// The background cleanup; stops when dropped.
pub type Cleanup = tether_core::Background;

/// How this store keeps text: Postgres refuses NUL in `TEXT` and `jsonb`, so strings
/// are kept as `tether_sql::escape` says (keys and values, and user names).
pub(crate) const TEXT: rows::Text = rows::Text {
    data: read_postgres_data,
    name: |name| unescape(&name),
};

/// How long one statement may take by default, waiting for a connection included.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

impl PostgresStore {
    /// A store on `postgres://user:password@host:port/database` (or `postgresql://`).
    ///
    /// Connections are made on demand: this fails only on a malformed URL, and a
    /// database that is down at start-up is a 503 until it comes up. Call
    /// [`PostgresStore::migrate`] once at start-up. TLS options go in the URL
    /// (`?sslmode=verify-full&sslrootcert=/path/ca.pem`, as sqlx reads them).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tether_postgres::PostgresStore;
    /// assert!(PostgresStore::connect("postgres://u:p@127.0.0.1:5432/app").is_ok());
    /// assert!(PostgresStore::connect("mysql://nope").is_err());
    /// # }
    /// ```
    pub fn connect(url: &str) -> Result<Self> {
        let invalid = |why: String| {
            Error::config(format!(
                "Postgres URL {}: {why}",
                tether_core::redact_url(url)
            ))
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid(
                "expected a postgres:// or postgresql:// URL".into(),
            ));
        }
        let options: sqlx::postgres::PgConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| invalid(e.to_string()))?;
        // Each Postgres connection is a server process, and a server allows 100 by
        // default: 16 per instance leaves room for six instances and the app's own.
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(DEFAULT_TIMEOUT)
            // A ping before every checkout would double the round trips; a broken
            // connection fails its statement instead and is discarded.
            .test_before_acquire(false)
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            runner: Runner::new("Postgres", url, DEFAULT_TIMEOUT),
        })
    }

    /// A store on the app's own pool. The pool's settings are the app's; tether
    /// recommends `test_before_acquire(false)` (a ping per checkout doubles the round
    /// trips). Call [`PostgresStore::migrate`] once at start-up.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let pool = sqlx::postgres::PgPoolOptions::new()
    ///     .connect_lazy("postgres://u:p@127.0.0.1:5432/app")
    ///     .unwrap();
    /// let store = tether_postgres::PostgresStore::from_pool(pool);
    /// # }
    /// ```
    pub fn from_pool(pool: PgPool) -> Self {
        let options = pool.connect_options();
        let target = format!(
            "postgres://{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default()
        );
        Self {
            runner: Runner::new("Postgres", &target, DEFAULT_TIMEOUT),
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
