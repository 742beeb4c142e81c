//! Ids at rest are not credentials: after a login through the layer, a dump of the
//! database (what a backup holds) contains no id the browser was given.

use std::process::Command;

use tether::SessionLayer;
use tether_mysql::MySqlStore;
use tether_testkit::at_rest::{assert_absent, presented_ids};

use tether_testkit::services::mysql_url;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_of_the_database_never_holds_a_presented_id() {
    let url = mysql_url();
    let store = MySqlStore::connect(&url).unwrap();
    store.migrate().await.unwrap();
    let ids = presented_ids(SessionLayer::new(store)).await;
    assert_absent("a dump of the MariaDB database", &dump(&url), &ids);
}

/// What a backup holds: `mariadb-dump` of the database's rows.
fn dump(url: &str) -> Vec<u8> {
    // mysql://USER:PASSWORD@HOST:PORT/DATABASE, as the test run writes it.
    let rest = url.strip_prefix("mysql://").unwrap();
    let (credentials, rest) = rest.split_once('@').unwrap();
    let (user, password) = credentials.split_once(':').unwrap();
    let (address, database) = rest.split_once('/').unwrap();
    let (host, port) = address.split_once(':').unwrap();
    let client = std::env::var("TETHER_MARIADB").unwrap_or_else(|_| "mariadb".into());
    let dump_program = std::path::Path::new(&client).with_file_name("mariadb-dump");
    let dump = Command::new(dump_program)
        .args(["--protocol=tcp", "-h", host, "-P", port, "-u", user])
        .arg(format!("-p{password}"))
        .args(["--no-create-info", "--skip-extended-insert", database])
        .output()
        .unwrap();
    assert!(dump.status.success(), "mariadb-dump: {dump:?}");
    assert!(
        String::from_utf8_lossy(&dump.stdout).contains("tether_sessions"),
        "the dump has no session table"
    );
    dump.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_session_values_are_ciphertext_in_a_dump() {
    let url = mysql_url();
    let store = MySqlStore::connect(&url).unwrap();
    store.migrate().await.unwrap();
    tether_testkit::at_rest::check_sealed_data(std::sync::Arc::new(store), async || dump(&url))
        .await;
}
