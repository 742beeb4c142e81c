//! A SQLite session store for tether: one database file that the processes of one
//! machine share, one statement per read and per write.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tether_core::Error> {
//! use std::time::Duration;
//! use tether_sqlite::SqliteStore;
//!
//! let store = SqliteStore::connect("sqlite:///var/lib/app/sessions.db")?; // created when missing
//! store.migrate().await?; // idempotent; safe when several processes run it at once
//! let _cleanup = store.spawn_cleanup(Duration::from_secs(60)); // stops when dropped
//! # Ok(()) }
//! ```
//!
//! # Several processes, one file
//!
//! The database runs in WAL mode: one process's reads never wait for another's
//! write. SQLite allows one writer at a time, so each store runs its statements on one
//! connection (a process's statements queue in order in the pool, never in SQLite's
//! busy loop); between processes, a writer that finds the file locked waits up to the
//! busy timeout (1 s, below the 2 s statement timeout) for its turn instead of failing
//! with "database is locked". Every statement is a single implicit transaction, which
//! takes the write lock before it reads, so a writer never fails to upgrade a read.
//!
//! One connection, not a writer beside readers: readers that are always busy keep the
//! write-ahead log from being reset, and it grew by hundreds of megabytes in seconds
//! under load (loads are also stepped to the end, so no statement keeps a read open).
//! Checkpoints run every 4,000 pages (16 MB) of log. On this project's 2-core machine
//! the bench's increments ran about 3× as fast as with a writer and four readers, whose
//! log had reached 660 MB (see BENCHMARKS.md for the figures).
//!
//! # Schema
//!
//! `tether_sessions` has one row per session (`WITHOUT ROWID`): `id BLOB`, `data` (a
//! JSON object `{"key": [value]}`, merged with `json_patch`), `version`, times in
//! milliseconds since the epoch, and the user (`user_hash` = SHA-256, indexed;
//! `user_name`). `tether_locks` holds lock-mode locks. The embedded migrations
//! (`migrations/`) create both, inside one `BEGIN IMMEDIATE` transaction, so
//! processes starting together apply each migration once.
//!
//! # Statements
//!
//! - Load: one `SELECT`, with expiry checked in SQL.
//! - Save: one `UPDATE` that merges only the changed keys (`json_patch`), bumps the
//!   version and refreshes the deadline, only `WHERE` the session is live, and
//!   returns the new version and expiry (`RETURNING`): a deleted session is never
//!   recreated.
//! - Refresh: one `UPDATE`. Id rotation: the same `UPDATE`, setting the primary key.
//!   "Log out everywhere": one `DELETE`. A lock: one `INSERT … ON CONFLICT` that takes
//!   a free or expired lock.
//! - Every value reaches the database as a bind parameter; no SQL is built from input.

mod file;
mod maintenance;
mod sql;
mod statements;
mod store;

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tether_core::{Error, Result};
use tether_sql::Runner;

/// Sessions in a SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// One connection: this process's statements queue here, in order.
    conn: SqlitePool,
    runner: Runner,
}

/// The background cleanup; stops when dropped.
pub type Cleanup = tether_core::Background;

/// How long one statement may take by default, waiting for a connection included.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a writer waits for another process's write before SQLite gives up. Below
/// the statement timeout: a statement the store stopped waiting for must not go on
/// waiting in SQLite and commit after the request was answered 503.
const BUSY_TIMEOUT: Duration = Duration::from_secs(1);

impl SqliteStore {
    /// A store on the database file of `url`: `sqlite://PATH`, `sqlite:PATH` or
    /// `sqlite:///ABSOLUTE/PATH`, as sqlx reads them (query options such as
    /// `?mode=rwc` too). WAL mode and a busy timeout are set on every connection. An
    /// in-memory URL is refused: see [`SqliteStore::in_memory`].
    ///
    /// The file holds every session: it is created `0600` when missing (its `-wal`
    /// and `-shm` files take its mode; when its directory does not exist yet, SQLite
    /// creates the files on first use and they are made `0600` then), and a file (or
    /// `-wal`, `-shm`) that another user owns or that group or others can reach is
    /// refused with a configuration error naming the `chmod` that fixes it.
    ///
    /// Connections are made on demand: a file that cannot be opened later is a 503
    /// on the first request. Call [`SqliteStore::migrate`] once at start-up.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tether_sqlite::SqliteStore;
    /// let dir = std::env::temp_dir().join(format!("tether-doc-sqlite-{}", std::process::id()));
    /// # use std::os::unix::fs::DirBuilderExt as _;
    /// std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).unwrap(); // private
    /// let url = format!("sqlite://{}", dir.join("sessions.db").display());
    /// assert!(SqliteStore::connect(&url).is_ok());
    /// assert!(SqliteStore::connect("postgres://nope").is_err());
    /// assert!(SqliteStore::connect("sqlite::memory:").is_err()); // see `in_memory`
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # }
    /// ```
    pub fn connect(url: &str) -> Result<Self> {
        let invalid = |why: String| {
            Error::config(format!(
                "SQLite URL {}: {why}",
                tether_core::redact_url(url)
            ))
        };
        if !url.starts_with("sqlite:") {
            return Err(invalid("expected a sqlite://PATH URL".into()));
        }
        if url.contains(":memory:") || url.contains("mode=memory") {
            // sqlx's shared in-memory database ends when its last pooled connection
            // closes (idle ones do, after 10 minutes): every session would go.
            return Err(invalid(
                "an in-memory database loses its sessions when the pool closes its \
                 connections; use SqliteStore::in_memory() for tests"
                    .into(),
            ));
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| invalid(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("wal_autocheckpoint", "4000");
        let db = options.get_filename().to_owned();
        let deferred = file::prepare(&db)? == file::Prepared::Deferred;
        let conn = SqlitePoolOptions::new()
            .after_connect(move |_, _| {
                if deferred {
                    file::restrict(&db);
                }
                Box::pin(async { Ok(()) })
            })
            .max_connections(1)
            .acquire_timeout(DEFAULT_TIMEOUT)
            .test_before_acquire(false)
            .connect_lazy_with(options);
        Ok(Self {
            conn,
            runner: Runner::new("SQLite", url, DEFAULT_TIMEOUT),
        })
    }

    /// A store in memory, its tables made: for tests. It lives as long as the store
    /// (and its clones) and is seen by no other store.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tether_core::SessionStore as _;
    /// let store = tether_sqlite::SqliteStore::in_memory().await.unwrap();
    /// assert!(store.load(&tether_core::Id::generate().unwrap()).await.unwrap().is_none());
    /// # }
    /// ```
    pub async fn in_memory() -> Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(|e| Error::config(e.to_string()))?;
        // One connection, kept for good: each connection to `:memory:` is a database of
        // its own.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(DEFAULT_TIMEOUT)
            .test_before_acquire(false)
            .connect_lazy_with(options);
        let store = Self::from_pool(pool);
        store.migrate().await?;
        Ok(store)
    }

    /// A store on the app's own pool, used for reads and writes alike. The pool's
    /// settings are the app's; for several processes on one file, set WAL mode and a
    /// busy timeout on its connect options, as [`SqliteStore::connect`] does. Call
    /// [`SqliteStore::migrate`] once at start-up.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let pool = sqlx::sqlite::SqlitePoolOptions::new()
    ///     .connect_lazy("sqlite://sessions.db")
    ///     .unwrap();
    /// let store = tether_sqlite::SqliteStore::from_pool(pool);
    /// # }
    /// ```
    pub fn from_pool(pool: SqlitePool) -> Self {
        let target = format!(
            "sqlite://{}",
            pool.connect_options().get_filename().display()
        );
        Self {
            runner: Runner::new("SQLite", &target, DEFAULT_TIMEOUT),
            conn: pool,
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
