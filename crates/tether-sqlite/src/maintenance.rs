//! The tables' embedded migrations. (The cleanup of expired rows is in `store.rs`.)

use std::time::Duration;

use sqlx::Connection as _;
use tether_core::{Error, Result};

use crate::SqliteStore;

impl SqliteStore {
    /// Creates or upgrades the tables (embedded, versioned migrations). Idempotent,
    /// and safe when several processes run it at once: it runs inside one
    /// `BEGIN IMMEDIATE` transaction, which holds the database's write lock, so a
    /// second process waits (up to the busy timeout) and then finds them applied.
    ///
    /// While a new file is first switched to WAL mode, a process that opens it at the
    /// same moment can be refused at once ("database is locked", without waiting):
    /// such a refusal is retried for up to ten seconds.
    ///
    /// Its history is kept in a table of its own (`_tether_migrations`), so an app
    /// that runs its own `sqlx::migrate!` on the same database is not disturbed.
    ///
    /// A database file (or its `-wal`, `-shm`) that another user owns or can reach is
    /// refused here too, for a store made [`from_pool`](SqliteStore::from_pool).
    pub async fn migrate(&self) -> Result<()> {
        let db = self.conn.connect_options().get_filename().to_owned();
        if !db.as_os_str().is_empty() && db.as_os_str() != ":memory:" {
            crate::file::check(&db)?;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match self.migrate_once().await {
                Err(e) if is_busy(&e) && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                outcome => return outcome,
            }
        }
    }

    async fn migrate_once(&self) -> Result<()> {
        let context = || format!("migrating session tables at {}", self.runner.target());
        let mut conn = self
            .conn
            .acquire()
            .await
            .map_err(|e| Error::unavailable(context(), e))?;
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| Error::unavailable(context(), e))?;
        // sqlx's SQLite migrator takes no lock of its own; inside this transaction its
        // own transactions become savepoints. (`run_direct` is `run` on a connection;
        // `run` on a transaction makes a future the compiler cannot prove `Send`.)
        let mut migrator = sqlx::migrate!("./migrations");
        migrator.dangerous_set_table_name(tether_sql::MIGRATIONS_TABLE);
        migrator
            .run_direct(None, &mut *tx, false)
            .await
            .map_err(|e| Error::unavailable(context(), e))?;
        tx.commit()
            .await
            .map_err(|e| Error::unavailable(context(), e))
    }
}

/// SQLite's `SQLITE_BUSY` (5), in any of its extended forms.
fn is_busy(e: &Error) -> bool {
    tether_sql::database_error(e)
        .and_then(sqlx::error::DatabaseError::code)
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| code & 0xff == 5)
}
