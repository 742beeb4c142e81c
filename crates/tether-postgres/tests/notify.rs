//! Writes announce themselves (`pg_notify`, which serialises commits) only once a near
//! cache listens: on a database where no instance ever started one, a write sends no
//! notification; the first near cache to start installs the trigger, and from then on
//! every writer's change is announced, a plain store's included. In a schema of the
//! test's own, so that no other test's trigger is seen.

use sqlx::postgres::PgListener;
use sqlx::{AssertSqlSafe, Connection as _};
use tether_core::{Id, NearCacheConfig, SessionStore as _};
use tether_postgres::PostgresStore;
use tether_testkit::near_cache::{record, until_live};

use tether_testkit::services::postgres_url;

/// The notifications naming `id` that were committed before this call.
async fn announced(listener: &mut PgListener, id: &Id) -> usize {
    // A query on the listening connection answers after every notification committed
    // before it was sent.
    sqlx::query("SELECT 1")
        .execute(&mut *listener)
        .await
        .unwrap();
    let mut n = 0;
    while let Some(note) = listener.next_buffered() {
        n += usize::from(note.payload() == id.encode().as_str());
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_announce_themselves_once_a_near_cache_started() {
    let url = postgres_url();
    let schema = format!("tether_notify_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    for sql in [
        format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        format!("CREATE SCHEMA {schema}"),
    ] {
        sqlx::query(AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}options=-c%20search_path%3D{schema}");

    let store = PostgresStore::connect(&url).unwrap();
    store.migrate().await.unwrap();
    let mut listener = PgListener::connect(&url).await.unwrap();
    listener.listen("tether_sessions").await.unwrap();

    let id = Id::generate().unwrap();
    store.create(&id, &record(1)).await.unwrap();
    assert_eq!(
        announced(&mut listener, &id).await,
        0,
        "a write announced itself before any near cache started"
    );

    let cached = store
        .clone()
        .with_near_cache(NearCacheConfig::default())
        .unwrap();
    until_live(&cached).await;
    assert!(store.delete(&id).await.unwrap());
    assert_eq!(
        announced(&mut listener, &id).await,
        1,
        "a plain store's write was not announced to the near cache"
    );

    drop(cached);
    sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .unwrap();
}
