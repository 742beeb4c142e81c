//! One instance of the replicated store keeps the session contract (lock mode is
//! refused: it would need consensus between instances).

use tether_replicated::ReplicatedStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_instance_passes_the_conformance_suite() {
    let store = ReplicatedStore::builder(b"conformance secret 123")
        .start()
        .unwrap();
    assert!(
        store.is_ready(),
        "an instance without peers is ready at once"
    );
    tether_testkit::Suite::new(store).run().await;
}

#[tokio::test]
async fn a_short_secret_is_refused() {
    assert!(ReplicatedStore::builder(b"short").start().is_err());
}

#[tokio::test]
async fn the_memory_bound_refuses_new_sessions_with_a_clear_error() {
    use tether_core::{Expiry, Id, Record, SessionStore};
    let store = ReplicatedStore::builder(b"conformance secret 123")
        .max_sessions(2)
        .start()
        .unwrap();
    let record = Record::new(time::OffsetDateTime::now_utc(), &Expiry::default());
    for _ in 0..2 {
        store
            .create(&Id::generate().unwrap(), &record)
            .await
            .unwrap();
    }
    let err = store
        .create(&Id::generate().unwrap(), &record)
        .await
        .unwrap_err();
    assert!(err.is_transient());
    assert!(err.to_string().contains("full (2 sessions"), "{err}");
}
