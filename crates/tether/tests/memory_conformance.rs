//! `MemoryStore` keeps the whole session contract.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_passes_the_conformance_suite() {
    tether_testkit::Suite::new(tether::MemoryStore::new())
        .run()
        .await;
}

#[tokio::test]
async fn sweep_removes_expired_records() {
    use tether::{Expiry, Record, SessionStore};
    let store = tether::MemoryStore::new();
    let now = time::OffsetDateTime::now_utc();
    let short = Record::new(now, &Expiry::new(std::time::Duration::from_millis(50)));
    let long = Record::new(now, &Expiry::default());
    store
        .create(&tether::Id::generate().unwrap(), &short)
        .await
        .unwrap();
    store
        .create(&tether::Id::generate().unwrap(), &long)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    assert_eq!(store.sweep_expired(), 1);
    assert_eq!(store.len(), 1);
}
