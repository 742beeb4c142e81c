//! The memory store's own behaviour beyond the conformance suite.

use super::*;
use std::time::Duration;
use tether_core::Expiry;

fn short_lived(now: OffsetDateTime) -> Record {
    Record::new(now, &Expiry::new(Duration::from_millis(200)))
}

#[tokio::test]
async fn writes_remove_expired_records_and_keep_extended_ones() {
    let store = MemoryStore::new();
    let now = OffsetDateTime::now_utc();
    for _ in 0..20 {
        let id = Id::generate().unwrap();
        store.create(&id, &short_lived(now)).await.unwrap();
    }
    // One session stays active: a save moves its deadline an hour on.
    let kept = Id::generate().unwrap();
    store.create(&kept, &short_lived(now)).await.unwrap();
    let later = now + time::Duration::hours(1);
    let saved = store.save(&kept, &Changes::new(now, later)).await.unwrap();
    assert!(matches!(saved, Saved::Version { .. }));
    assert_eq!(store.len(), 21);

    tokio::time::sleep(Duration::from_millis(300)).await;
    // Three writes handle up to 24 entries that fell due: the 20 expired records go,
    // the extended one is queued again and stays.
    for _ in 0..3 {
        let id = Id::generate().unwrap();
        let record = Record::new(OffsetDateTime::now_utc(), &Expiry::default());
        store.create(&id, &record).await.unwrap();
    }
    assert_eq!(store.len(), 4);
    assert!(store.load(&kept).await.unwrap().is_some());
    assert_eq!(store.sweep_expired(), 0, "nothing expired was left behind");
}
