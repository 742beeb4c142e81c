//! Deleting expired records on demand, for stores that keep them until swept.

use crate::{Result, SessionStore};

/// A store whose expired records stay on disk or in tables until something deletes
/// them (SQL stores, the file store, the memory store), and which can do so now.
///
/// Stores that expire records by themselves (Redis' TTLs) and client-side stores do
/// not implement it. Adapters use it where another session API asks for an
/// expired-record deletion (tower-sessions' `ExpiredDeletion`); apps usually run the
/// store's own background task instead (`spawn_cleanup`, `spawn_sweeper`).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use tether_core::{Result, SessionStore, Sweep};
///
/// async fn sweep_now(store: &impl Sweep) -> Result<u64> {
///     let removed = store.sweep_once().await?;
///     tracing::info!(store = store.name(), removed, "swept expired sessions");
///     Ok(removed)
/// }
/// # assert_eq!(sweep_now(&Never).await.unwrap(), 0);
/// # #[derive(Debug)] struct Never;
/// # #[tether_core::async_trait] impl Sweep for Never { async fn sweep_once(&self) -> Result<u64> { Ok(0) } }
/// # #[tether_core::async_trait] impl SessionStore for Never {
/// #   fn name(&self) -> &'static str { "never" }
/// #   async fn load(&self, _: &tether_core::Id) -> Result<Option<tether_core::Record>> { Ok(None) }
/// #   async fn create(&self, _: &tether_core::Id, _: &tether_core::Record) -> Result<tether_core::Created> { Ok(tether_core::Created::Yes) }
/// #   async fn save(&self, _: &tether_core::Id, _: &tether_core::Changes) -> Result<tether_core::Saved> { Ok(tether_core::Saved::Gone) }
/// #   async fn touch(&self, _: &tether_core::Id, _: &tether_core::Touch) -> Result<bool> { Ok(false) }
/// #   async fn delete(&self, _: &tether_core::Id) -> Result<bool> { Ok(false) }
/// #   async fn cycle_id(&self, _: &tether_core::Id, _: &tether_core::Id, _: &tether_core::Changes) -> Result<tether_core::Saved> { Ok(tether_core::Saved::Gone) }
/// # }
/// # });
/// ```
#[async_trait::async_trait]
pub trait Sweep: SessionStore {
    /// Deletes every expired record now; returns how many.
    async fn sweep_once(&self) -> Result<u64>;
}
