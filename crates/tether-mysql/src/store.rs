//! `MySqlStore`'s [`SessionStore`] impl: each operation is one of this crate's statements
//! ([`Statements`](flow::Statements) and [`Writes`](flow::Writes), in
//! `statements.rs`) or one of the flows every SQL store shares ([`tether_sql::flow`]:
//! create with the per-user cap, save, rotation, the lock wait); and its cleanup of
//! expired rows.

use std::time::Duration;

use tether_core::{
    Background, Changes, Created, Id, LockOptions, LockToken, Record, Result, Saved, SessionInfo,
    SessionStore, Touch,
};
use tether_sql::flow::{self, Statements};

use crate::MySqlStore;

#[tether_core::async_trait]
impl SessionStore for MySqlStore {
    fn name(&self) -> &'static str {
        "mysql"
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        Statements::load(self, id).await
    }

    async fn create(&self, id: &Id, record: &Record) -> Result<Created> {
        flow::create(self, id, record, None).await
    }

    async fn create_capped(&self, id: &Id, record: &Record, cap: Option<u32>) -> Result<Created> {
        flow::create(self, id, record, cap).await
    }

    async fn save(&self, id: &Id, changes: &Changes) -> Result<Saved> {
        flow::save(self, id, changes).await
    }

    async fn save_from(&self, id: &Id, base: &Record, changes: &Changes) -> Result<Saved> {
        flow::save_from(self, id, base, changes).await
    }

    async fn touch(&self, id: &Id, touch: &Touch) -> Result<bool> {
        Statements::touch(self, id, touch).await
    }

    async fn delete(&self, id: &Id) -> Result<bool> {
        Statements::delete(self, id).await
    }

    async fn cycle_id(&self, old: &Id, new: &Id, changes: &Changes) -> Result<Saved> {
        flow::cycle_id(self, old, new, changes).await
    }

    async fn user_sessions(&self, user: &str) -> Result<Vec<SessionInfo>> {
        Statements::list(self, user).await
    }

    async fn delete_user_sessions(&self, user: &str) -> Result<u64> {
        Statements::delete_user(self, user).await
    }

    async fn lock(&self, id: &Id, options: &LockOptions) -> Result<LockToken> {
        flow::lock(self, id, options).await
    }

    async fn unlock(&self, id: &Id, token: &LockToken) -> Result<()> {
        Statements::unlock(self, id, token).await
    }

    async fn sweep_once(&self) -> Result<u64> {
        self.cleanup_once().await
    }
}

impl MySqlStore {
    /// Deletes expired sessions (in batches of 1000) and expired locks; returns how
    /// many sessions.
    ///
    /// # Errors
    /// The database's, as for any statement.
    pub async fn cleanup_once(&self) -> Result<u64> {
        flow::cleanup(self).await
    }

    /// Runs [`MySqlStore::cleanup_once`] every `every` until the returned handle is
    /// dropped. When the database fails, the task logs it, waits longer each time (up
    /// to ten times `every`) and tries again; it never stops by itself.
    pub fn spawn_cleanup(&self, every: Duration) -> Background {
        let store = self.clone();
        Background::every(every, move || {
            let store = store.clone();
            async move { store.cleanup_once().await }
        })
    }
}
