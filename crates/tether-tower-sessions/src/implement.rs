//! The trait implementations, written once for each tower-sessions version.

/// Implements `$tsc::session_store::SessionStore` and `ExpiredDeletion` for
/// [`crate::TowerSessions`], where `$tsc` is one version of tower-sessions-core.
macro_rules! implement {
    ($tsc:ident) => {
        use $tsc::session::{Id, Record};
        use $tsc::session_store::{self, Error as StoreError, ExpiredDeletion, SessionStore};

        use crate::TowerSessions;

        /// tether's errors, for tower-sessions (which answers 500 on any).
        fn backend(e: tether_core::Error) -> StoreError {
            StoreError::Backend(e.to_string())
        }

        #[async_trait::async_trait]
        impl<S: tether_core::SessionStore + ?Sized> SessionStore for TowerSessions<S> {
            async fn create(&self, record: &mut Record) -> session_store::Result<()> {
                let mut id = record.id.0;
                self.create_parts(&mut id, &record.data, record.expiry_date)
                    .await
                    .map_err(backend)?;
                record.id = Id(id);
                Ok(())
            }

            async fn save(&self, record: &Record) -> session_store::Result<()> {
                self.save_parts(record.id.0, &record.data, record.expiry_date)
                    .await
                    .map_err(backend)
            }

            async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
                let parts = self.load_parts(id.0).await.map_err(backend)?;
                Ok(parts.map(|(data, expiry_date)| Record {
                    id: *id,
                    data,
                    expiry_date,
                }))
            }

            async fn delete(&self, id: &Id) -> session_store::Result<()> {
                self.delete_id(id.0).await.map_err(backend)
            }
        }

        /// Copies the live sessions named by `ids` from a tower-sessions store (its
        /// Redis, sqlx or any other store) into `to`'s tether store, each under the same
        /// id, so the cookies browsers hold keep working after the switch. A session
        /// the source no longer has (ended, expired) is counted as missing; one whose
        /// id the target already holds is left as it is. Safe to run again.
        ///
        /// # Errors
        /// The first failure of either store, after what was copied before it.
        pub async fn import<F, S>(
            from: &F,
            to: &TowerSessions<S>,
            ids: impl IntoIterator<Item = Id>,
        ) -> Result<crate::Imported, crate::ImportError>
        where
            F: SessionStore,
            S: tether_core::SessionStore + ?Sized,
        {
            let mut report = crate::Imported::default();
            for id in ids {
                let record = from.load(&id).await.map_err(|e| crate::ImportError {
                    doing: "reading the tower-sessions store",
                    reason: e.to_string(),
                    so_far: report,
                })?;
                let Some(record) = record else {
                    report.missing += 1;
                    continue;
                };
                let created = to
                    .import_parts(record.id.0, &record.data, record.expiry_date)
                    .await
                    .map_err(|e| crate::ImportError {
                        doing: "writing the tether store",
                        reason: e.to_string(),
                        so_far: report,
                    })?;
                match created {
                    tether_core::Created::Yes => report.copied += 1,
                    tether_core::Created::IdTaken => report.already += 1,
                }
            }
            Ok(report)
        }

        /// Deletes expired sessions with the store's own sweep
        /// ([`tether_core::SessionStore::sweep_once`]; nothing for stores that expire
        /// sessions by themselves, such as Redis). A failure is logged and answered
        /// `Ok`: `continuously_delete_expired` stops at its first error, and an app that
        /// awaits its task (as axum-login's examples do) would stop with it over one
        /// blip of the database; tether's stores never serve an expired session anyway.
        #[async_trait::async_trait]
        impl<S: tether_core::SessionStore + ?Sized> ExpiredDeletion for TowerSessions<S> {
            async fn delete_expired(&self) -> session_store::Result<()> {
                if let Err(error) = self.store().sweep_once().await {
                    tracing::warn!(
                        store = self.store().name(),
                        %error,
                        "deleting expired sessions failed; trying again at the next period"
                    );
                }
                Ok(())
            }
        }
    };
}
