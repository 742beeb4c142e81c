//! The pieces tether's SQL stores share: `tether-mysql`, `tether-postgres` and
//! `tether-sqlite` are each one dialect (their statements and how a row is read) on
//! top of these.
//!
//! - [`Runner`]: one statement under the store's timeout, its failure named with the
//!   server (`503` for the app, never a fresh session).
//! - [`codec`]: the user hash, the `{"key": [value]}` data form of the merge-patch
//!   dialects (MySQL, SQLite), and a row's columns turned into a [`Record`].
//! - [`flow`]: the logic of `create` (insert, and replace only an expired row), of a
//!   lock (insert-if-absent, retried under [`tether_core::LockWait`]) and of the
//!   per-user cap.
//! - [`rows`]: a session row read back, whatever the engine.
//!
//! Statements differ by dialect and stay in each store's `sql.rs`; nothing here builds
//! SQL.
//!
//! [`Record`]: tether_core::Record

pub mod codec;
pub mod escape;
pub mod flow;
mod numbered;
pub mod rows;
mod runner;

pub use runner::{Runner, database_error, is_unique_violation};

/// The table tether's SQL stores record their migrations in: their own, never sqlx's
/// default `_sqlx_migrations`, so an app that runs its own `sqlx::migrate!` on the
/// same database finds only its own versions there (and tether only its own here).
pub const MIGRATIONS_TABLE: &str = "_tether_migrations";
