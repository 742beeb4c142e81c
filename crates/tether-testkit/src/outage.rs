//! The fault test every SQL store runs: its server stops and starts again while
//! requests run.

use std::time::{Duration, Instant};

use tether::SessionLayer;
use tether_core::{Background, Expiry, Id, Record, SessionStore};

use crate::http::{expect_outage, expect_recovery, sessions_with_counters};
use crate::services::{MariaDb, Postgres, RedisServer};

/// A server a test can stop and start again on the same port and data.
pub trait Restartable {
    /// Stops it cleanly.
    ///
    /// # Errors
    /// When it cannot be stopped.
    fn stop(&mut self) -> std::io::Result<()>;
    /// Starts it again.
    ///
    /// # Errors
    /// When it does not come up.
    fn start_again(&mut self) -> std::io::Result<()>;
}

macro_rules! restartable {
    ($($server:ty),*) => {$(
        impl Restartable for $server {
            fn stop(&mut self) -> std::io::Result<()> {
                <$server>::stop(self)
            }
            fn start_again(&mut self) -> std::io::Result<()> {
                <$server>::start_again(self)
            }
        }
    )*};
}
restartable!(RedisServer, MariaDb, Postgres);

/// `server` stops and starts again while requests run through the layer over
/// `store`: 503s with a clear body during the outage; afterwards requests succeed
/// without an app restart and no session saved before is lost. `cleanup` (the store's
/// cleanup task, running every 200 ms) lives through the outage: it deletes a row that
/// expired before the outage and one that expired after it, as `exists` (a look at
/// the table, bypassing the store) sees.
///
/// # Panics
/// When any of that does not hold.
pub async fn restart_keeps_sessions<S, E>(
    store: S,
    server: &mut impl Restartable,
    cleanup: Background,
    exists: E,
) where
    S: SessionStore + Clone + 'static,
    E: AsyncFn(&Id) -> bool,
{
    let app = crate::app::routes().layer(SessionLayer::new(store.clone()));
    let users = sessions_with_counters(&app, 20, 3).await;
    let before_outage = expired_row(&store).await;

    server.stop().expect("the server stops");
    expect_outage(&app, &users).await;
    // Let the cleanup task fail a few times.
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.start_again().expect("the server starts again");
    expect_recovery(&app, &users, 3, Duration::from_secs(30)).await;

    let after_outage = expired_row(&store).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while exists(&before_outage).await || exists(&after_outage).await {
        assert!(
            Instant::now() < deadline,
            "the cleanup task did not delete expired rows after the outage"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(cleanup.is_running());
}

async fn expired_row(store: &impl SessionStore) -> Id {
    let id = Id::generate().expect("randomness");
    let record = Record::new(
        time::OffsetDateTime::now_utc(),
        &Expiry::new(Duration::from_millis(1)),
    );
    store.create(&id, &record).await.expect("the store is up");
    id
}
