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
    // Anonymous sessions make room for each other; sessions of users fill the rest.
    let mut bound = record.clone();
    bound.user = Some("ada".into());
    store
        .create(&Id::generate().unwrap(), &bound)
        .await
        .unwrap();
    store
        .create(&Id::generate().unwrap(), &bound)
        .await
        .unwrap();
    let err = store
        .create(&Id::generate().unwrap(), &bound)
        .await
        .unwrap_err();
    assert!(err.is_transient());
    assert!(err.to_string().contains("full (2 sessions"), "{err}");
}

#[tokio::test]
async fn before_catching_up_only_new_sessions_are_served() {
    use std::time::Duration;
    use tether_core::{Changes, Expiry, Id, Record, SessionStore, Touch};
    // A peer that refuses every connection: catching up finds no live peer.
    let store = ReplicatedStore::builder(b"conformance secret 123")
        .peers(["http://127.0.0.1:1/_tether"])
        .settle_timeout(Duration::ZERO)
        .start()
        .unwrap();
    assert!(
        !store.is_ready(),
        "an instance with peers starts behind them"
    );
    let now = time::OffsetDateTime::now_utc();
    let record = Record::new(now, &Expiry::default());
    let id = Id::generate().unwrap();
    // A new session needs no history.
    store.create(&id, &record).await.unwrap();

    // Anything about existing sessions could be wrong until the peers' state is in:
    // "unknown" would log a user out, a user's list would miss sessions.
    let changes = Changes::new(now, record.idle_deadline);
    let touch = Touch {
        last_seen: now,
        idle_deadline: record.idle_deadline,
    };
    let refusals = [
        store.load(&id).await.map(drop),
        store.save(&id, &changes).await.map(drop),
        store.touch(&id, &touch).await.map(drop),
        store
            .cycle_id(&id, &Id::generate().unwrap(), &changes)
            .await
            .map(drop),
        store.user_sessions("ada").await.map(drop),
        store.delete_user_sessions("ada").await.map(drop),
        store.delete(&id).await.map(drop),
    ];
    for (i, refusal) in refusals.into_iter().enumerate() {
        let err = refusal.expect_err(&format!("operation {i} answered before catching up"));
        assert!(err.is_transient(), "operation {i}: {err}");
        assert!(
            err.to_string().contains("catching up"),
            "operation {i}: {err}"
        );
    }

    assert_eq!(
        store.catch_up().await,
        tether_replicated::CatchUp::NoPeerUp,
        "no peer answered"
    );
    assert!(store.is_ready());
    let loaded = store
        .load(&id)
        .await
        .unwrap()
        .expect("the session created before");
    assert_eq!(loaded.version, record.version);
}
