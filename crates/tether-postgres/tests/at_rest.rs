//! Ids at rest are not credentials: after a login through the layer, a dump of the
//! database (what a backup holds) contains no id the browser was given.

use std::process::Command;

use tether::SessionLayer;
use tether_postgres::PostgresStore;
use tether_testkit::at_rest::{assert_absent, presented_ids};

use tether_testkit::services::postgres_url;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_of_the_database_never_holds_a_presented_id() {
    let url = postgres_url();
    let store = PostgresStore::connect(&url).unwrap();
    store.migrate().await.unwrap();
    let ids = presented_ids(SessionLayer::new(store)).await;
    assert_absent("a dump of the PostgreSQL database", &dump(&url), &ids);
}

/// What a backup holds: `pg_dump` of the database's data.
fn dump(url: &str) -> Vec<u8> {
    let bin = std::env::var("TETHER_POSTGRES_BIN").expect(
        "TETHER_POSTGRES_BIN is not set: run the tests through scripts/test, which finds pg_dump",
    );
    let dump = Command::new(std::path::Path::new(&bin).join("pg_dump"))
        .args(["--data-only", "--dbname", url])
        .output()
        .unwrap();
    assert!(dump.status.success(), "pg_dump: {dump:?}");
    assert!(
        String::from_utf8_lossy(&dump.stdout).contains("tether_sessions"),
        "the dump has no session table"
    );
    dump.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_session_values_are_ciphertext_in_a_dump() {
    let url = postgres_url();
    let store = PostgresStore::connect(&url).unwrap();
    store.migrate().await.unwrap();
    tether_testkit::at_rest::check_sealed_data(std::sync::Arc::new(store), async || dump(&url))
        .await;
}
