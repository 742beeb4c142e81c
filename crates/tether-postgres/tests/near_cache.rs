//! The near cache against a real PostgreSQL. On the server `scripts/test` starts: the
//! contract holds on a cached store; an update, a rotation and a delete by another
//! instance, and an operator's `DELETE`, reach the cache; this instance's own writes
//! and locks are read at once; a cached read runs no statement (`pg_stat_statements`).
//! On a server of the test's own: a terminated listening connection and a database
//! restart flush the cache and bypass it under traffic, and a write made meanwhile is
//! never hidden.

use std::sync::Arc;

use sqlx::Connection as _;
use tether_core::{CachedStore, Id, NearCacheConfig, SessionStore};
use tether_postgres::PostgresStore;
use tether_testkit::near_cache::{
    lost_channels_hide_no_write, n_of, never_stale_after_a_write_answered, other_writers_reach,
    own_writes_are_read_at_once, reads, record, until_live,
};
use tether_testkit::services::Postgres;

use tether_testkit::services::postgres_url;

async fn cached(url: &str) -> CachedStore<PostgresStore> {
    let store = PostgresStore::connect(url).unwrap();
    store.migrate().await.unwrap();
    let store = store.with_near_cache(NearCacheConfig::default()).unwrap();
    until_live(&store).await;
    store
}

/// Statements on tether's session table the server has run (`pg_stat_statements`).
async fn statements(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT COALESCE(SUM(calls), 0)::bigint FROM pg_stat_statements \
         WHERE query LIKE '%tether\\_sessions%' AND query NOT LIKE '%pg_stat_statements%'",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

/// One test, so nothing else in this binary runs statements while it counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cached_store_keeps_the_contract_and_every_writer_reaches_it() {
    let url = postgres_url();
    let a = cached(&url).await;
    let b = cached(&url).await;
    let dead = PostgresStore::connect("postgres://tether:tether@127.0.0.1:1/tether").unwrap();
    tether_testkit::Suite::new(cached(&url).await)
        .with_unavailable(dead)
        .run()
        .await;
    other_writers_reach(&a, &b).await;
    other_writers_reach(&a, b.inner()).await;
    own_writes_are_read_at_once(&a, &b).await;
    never_stale_after_a_write_answered(&a, &b, 300).await;

    // An operator's statement is a writer too.
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let id = Id::generate().unwrap();
    b.create(&id, &record(1)).await.unwrap();
    assert_eq!(n_of(&a, &id).await.unwrap(), Some(1));
    sqlx::query("DELETE FROM tether_sessions WHERE id = $1")
        .bind(id.as_bytes().as_slice())
        .execute(&mut conn)
        .await
        .unwrap();
    reads(&a, &id, None).await;

    // A cached read runs nothing.
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&mut conn)
        .await
        .expect("pg_stat_statements is preloaded by the test run's server");
    let id = Id::generate().unwrap();
    let invalidations = a.cache().stats().invalidations;
    a.create(&id, &record(7)).await.unwrap();
    // Past the creation's own notification (this instance's drop, then the
    // trigger's), which would drop a copy kept before it arrived.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while a.cache().stats().invalidations < invalidations + 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the trigger's notification never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(n_of(&a, &id).await.unwrap(), Some(7));
    let before = statements(&mut conn).await;
    for _ in 0..200 {
        assert_eq!(n_of(&a, &id).await.unwrap(), Some(7));
    }
    assert_eq!(
        statements(&mut conn).await - before,
        0,
        "cached reads reached Postgres"
    );
    assert!(a.cache().stats().hits >= 200, "{:?}", a.cache().stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_listener_or_a_restart_flushes_and_bypasses_under_traffic() {
    // Not a private directory: the server runs as its own user and must reach it.
    let dir =
        std::env::temp_dir().join(format!("tether-postgres-near-cache-{}", std::process::id()));
    let db = std::sync::Mutex::new(Postgres::install(&dir).expect("postgres starts"));
    let url = db.lock().unwrap().url();
    let cached = Arc::new(cached(&url).await);
    let writer = PostgresStore::connect(&url).unwrap();
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();

    // The listening connection terminated by the server.
    lost_channels_hide_no_write(cached.clone(), &writer, 5, async || {
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE (query LIKE 'LISTEN%' OR query LIKE '%tether near cache fence%') \
             AND pid <> pg_backend_pid()",
        )
        .fetch_all(&mut admin)
        .await
        .unwrap();
        assert_eq!(ended, vec![true], "one listening connection");
    })
    .await;
    drop(admin);

    // Restarts.
    lost_channels_hide_no_write(cached.clone(), &writer, 2, async || {
        db.lock().unwrap().restart().expect("postgres restarts");
    })
    .await;
    assert!(
        SessionStore::load(&*cached, &Id::generate().unwrap())
            .await
            .unwrap()
            .is_none()
    );
    drop(db);
    let _ = std::fs::remove_dir_all(dir);
}
