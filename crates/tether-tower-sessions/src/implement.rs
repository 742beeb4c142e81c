//! The trait implementations, written once for each tower-sessions version.

/// Implements `$tsc::session_store::SessionStore` (and `ExpiredDeletion` for stores
/// that [`tether_core::Sweep`]) for [`crate::TowerSessions`], where `$tsc` is one
/// version of tower-sessions-core.
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

        #[async_trait::async_trait]
        impl<S: tether_core::Sweep + ?Sized> ExpiredDeletion for TowerSessions<S> {
            async fn delete_expired(&self) -> session_store::Result<()> {
                self.store().sweep_once().await.map(drop).map_err(backend)
            }
        }
    };
}
