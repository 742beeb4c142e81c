//! [`session_store!`](crate::session_store): a store's `SessionStore` impl and its
//! cleanup, made from its [`Writes`](crate::flow::Writes) and
//! [`Statements`](crate::flow::Statements).

/// Implements `tether_core::SessionStore` for `$store` (named `$name`) from its
/// [`Writes`](crate::flow::Writes) and [`Statements`](crate::flow::Statements) and the
/// flows in [`flow`](crate::flow),
/// and gives it `cleanup_once` and `spawn_cleanup`. Every SQL store's session
/// behaviour is this one implementation; a store only writes its statements.
#[macro_export]
macro_rules! session_store {
    ($store:ty, $name:literal) => {
        #[::tether_core::async_trait]
        impl ::tether_core::SessionStore for $store {
            fn name(&self) -> &'static str {
                $name
            }

            async fn load(
                &self,
                id: &::tether_core::Id,
            ) -> ::tether_core::Result<Option<::tether_core::Record>> {
                $crate::flow::Statements::load(self, id).await
            }

            async fn create(
                &self,
                id: &::tether_core::Id,
                record: &::tether_core::Record,
            ) -> ::tether_core::Result<::tether_core::Created> {
                $crate::flow::create(self, id, record, None).await
            }

            async fn create_capped(
                &self,
                id: &::tether_core::Id,
                record: &::tether_core::Record,
                cap: Option<u32>,
            ) -> ::tether_core::Result<::tether_core::Created> {
                $crate::flow::create(self, id, record, cap).await
            }

            async fn save(
                &self,
                id: &::tether_core::Id,
                changes: &::tether_core::Changes,
            ) -> ::tether_core::Result<::tether_core::Saved> {
                $crate::flow::save(self, id, changes).await
            }

            async fn save_from(
                &self,
                id: &::tether_core::Id,
                base: &::tether_core::Record,
                changes: &::tether_core::Changes,
            ) -> ::tether_core::Result<::tether_core::Saved> {
                $crate::flow::save_from(self, id, base, changes).await
            }

            async fn touch(
                &self,
                id: &::tether_core::Id,
                touch: &::tether_core::Touch,
            ) -> ::tether_core::Result<bool> {
                $crate::flow::Statements::touch(self, id, touch).await
            }

            async fn delete(&self, id: &::tether_core::Id) -> ::tether_core::Result<bool> {
                $crate::flow::Statements::delete(self, id).await
            }

            async fn cycle_id(
                &self,
                old: &::tether_core::Id,
                new: &::tether_core::Id,
                changes: &::tether_core::Changes,
            ) -> ::tether_core::Result<::tether_core::Saved> {
                $crate::flow::cycle_id(self, old, new, changes).await
            }

            async fn user_sessions(
                &self,
                user: &str,
            ) -> ::tether_core::Result<Vec<::tether_core::SessionInfo>> {
                $crate::flow::Statements::list(self, user).await
            }

            async fn delete_user_sessions(&self, user: &str) -> ::tether_core::Result<u64> {
                $crate::flow::Statements::delete_user(self, user).await
            }

            async fn lock(
                &self,
                id: &::tether_core::Id,
                options: &::tether_core::LockOptions,
            ) -> ::tether_core::Result<::tether_core::LockToken> {
                $crate::flow::lock(self, id, options).await
            }

            async fn unlock(
                &self,
                id: &::tether_core::Id,
                token: &::tether_core::LockToken,
            ) -> ::tether_core::Result<()> {
                $crate::flow::Statements::unlock(self, id, token).await
            }

            async fn sweep_once(&self) -> ::tether_core::Result<u64> {
                $crate::flow::cleanup(self).await
            }
        }

        impl $store {
            /// Deletes expired sessions (in batches of 1000) and expired locks;
            /// returns how many sessions.
            pub async fn cleanup_once(&self) -> ::tether_core::Result<u64> {
                $crate::flow::cleanup(self).await
            }

            /// Runs `cleanup_once` every `every` until the returned handle is
            /// dropped. When the database fails, the task logs it, waits longer each
            /// time (up to ten times `every`) and tries again; it never stops by
            /// itself.
            pub fn spawn_cleanup(&self, every: ::std::time::Duration) -> ::tether_core::Background {
                let store = self.clone();
                ::tether_core::Background::every(every, move || {
                    let store = store.clone();
                    async move { store.cleanup_once().await }
                })
            }
        }
    };
}
