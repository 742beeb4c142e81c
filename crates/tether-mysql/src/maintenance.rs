//! The tables' embedded migrations. (The cleanup of expired rows is in `store.rs`.)

use tether_core::{Error, Result};

use crate::MySqlStore;
use crate::sql::{MIGRATION_LOCK_SQL, MIGRATION_UNLOCK_SQL};

impl MySqlStore {
    /// Creates or upgrades the tables (embedded, versioned migrations). Idempotent,
    /// and safe when several instances run it at once: sqlx serialises migrations with
    /// a database lock.
    ///
    /// Its history is kept in a table of its own (`_tether_migrations`), so an app
    /// that runs its own `sqlx::migrate!` on the same database is not disturbed.
    pub async fn migrate(&self) -> Result<()> {
        let context = || format!("migrating session tables at {}", self.runner.target());
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| Error::unavailable(context(), e))?;
        // sqlx's own migration lock still lets two first runs insert the same version
        // (seen on MariaDB 10.11), so every instance first takes this named lock.
        let locked: Option<i64> = sqlx::query_scalar(MIGRATION_LOCK_SQL)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| Error::unavailable(context(), e))?;
        if locked != Some(1) {
            return Err(Error::unavailable(
                context(),
                std::io::Error::other("another instance held the migration lock for 60 s"),
            ));
        }
        // On the connection that holds the lock: an app's pool of one connection must
        // not wait for a second. (`run_direct` is `run` on a connection, whose future
        // the compiler can prove `Send`.)
        let mut migrator = sqlx::migrate!("./migrations");
        migrator.dangerous_set_table_name(tether_sql::MIGRATIONS_TABLE);
        let result = migrator.run_direct(None, &mut *conn, false).await;
        let released = sqlx::query(MIGRATION_UNLOCK_SQL).execute(&mut *conn).await;
        result.map_err(|e| Error::unavailable(context(), e))?;
        released.map_err(|e| Error::unavailable(context(), e))?;
        Ok(())
    }
}
