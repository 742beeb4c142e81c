//! What an import of tower-sessions' records reports.

/// The outcome of [`v0_14::import`](crate::v0_14::import) or
/// [`v0_15::import`](crate::v0_15::import).
///
/// ```
/// let report = tether_tower_sessions::Imported::default();
/// assert_eq!(report.copied + report.missing + report.already, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Imported {
    /// Sessions copied under their own ids.
    pub copied: u64,
    /// Ids the source did not have (ended or expired since they were listed).
    pub missing: u64,
    /// Ids the tether store already held (an earlier import): left as they were.
    pub already: u64,
}

/// An import stopped by a store's failure; what was copied before it stays copied.
#[derive(Debug, thiserror::Error)]
#[error("importing tower-sessions records stopped after {so_far:?}: {doing}: {reason}")]
pub struct ImportError {
    /// What failed: reading the tower-sessions store or writing the tether store.
    pub doing: &'static str,
    /// The failure, as the failing store reported it.
    pub reason: String,
    /// What was done before it.
    pub so_far: Imported,
}
