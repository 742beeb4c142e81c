//! The cleanup deletes every expired session, in batches, and nothing else: found by
//! the indexed expiry bucket, checked against the exact deadline.

use std::time::Duration;

use tether_core::{Expiry, Id, Record, SessionStore as _};
use tether_sqlite::SqliteStore;

async fn create(store: &SqliteStore, created: time::OffsetDateTime, idle: Duration) -> Id {
    let id = Id::generate().unwrap();
    let record = Record::new(created, &Expiry::new(idle));
    store.create(&id, &record).await.unwrap();
    id
}

#[tokio::test]
async fn the_cleanup_deletes_every_expired_session_and_no_live_one() {
    let store = SqliteStore::in_memory().await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    // Expired a moment ago, an hour ago, a day ago: in this bucket and older ones.
    for ago in [
        Duration::from_secs(1),
        Duration::from_hours(1),
        Duration::from_hours(24),
    ] {
        for _ in 0..700 {
            create(&store, now - ago, Duration::from_millis(1)).await;
        }
    }
    // Live: one expiring within seconds (most likely in the current bucket), one in a
    // day.
    let soon = create(&store, now, Duration::from_secs(30)).await;
    let later = create(&store, now, Duration::from_hours(24)).await;

    assert_eq!(store.cleanup_once().await.unwrap(), 2100);
    assert_eq!(store.cleanup_once().await.unwrap(), 0);
    assert!(store.load(&soon).await.unwrap().is_some());
    assert!(store.load(&later).await.unwrap().is_some());
}

#[tokio::test]
async fn a_session_a_save_moved_into_an_older_bucket_is_cleaned_up() {
    let store = SqliteStore::in_memory().await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    let past = now - time::Duration::seconds(1);
    // Both live for a day, then ended by a save that sets their deadline a second ago:
    // one after a read (the conditional write), one without (the merge).
    let read = create(&store, now, Duration::from_hours(24)).await;
    let base = store.load(&read).await.unwrap().unwrap();
    store
        .save_from(&read, &base, &tether_core::Changes::new(now, past))
        .await
        .unwrap();
    let merged = create(&store, now, Duration::from_hours(24)).await;
    store
        .save(&merged, &tether_core::Changes::new(now, past))
        .await
        .unwrap();
    let live = create(&store, now, Duration::from_hours(24)).await;

    assert_eq!(store.cleanup_once().await.unwrap(), 2);
    assert!(store.load(&live).await.unwrap().is_some());
}
