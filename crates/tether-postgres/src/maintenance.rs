//! The tables' embedded migrations. (The cleanup of expired rows is in `store.rs`.)

use tether_core::{Error, Result};

use crate::PostgresStore;

impl PostgresStore {
    /// Creates or upgrades the tables (embedded, versioned migrations). Idempotent,
    /// and safe when several instances run it at once: sqlx's migrator holds a
    /// Postgres advisory lock (`pg_advisory_lock`) while it checks and applies them.
    ///
    /// Its history is kept in a table of its own (`_tether_migrations`), so an app
    /// that runs its own `sqlx::migrate!` on the same database is not disturbed.
    pub async fn migrate(&self) -> Result<()> {
        let mut migrator = sqlx::migrate!("./migrations");
        migrator.dangerous_set_table_name(tether_sql::MIGRATIONS_TABLE);
        migrator.run(&self.pool).await.map_err(|e| {
            Error::unavailable(
                format!("migrating session tables at {}", self.runner.target()),
                e,
            )
        })
    }
}
