//! PostgreSQL with TLS, a CA made at run time: the store keeps the contract over
//! `sslmode=verify-full`, and a server that does not verify is an error (never "no
//! session").

use tether_core::{Id, SessionStore};
use tether_postgres::PostgresStore;
use tether_testkit::services::{Postgres, TestCa};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_keeps_the_contract_over_tls() {
    let dir = std::env::temp_dir().join(format!("tether-postgres-tls-{}", std::process::id()));
    // Inside the server's directory, so it is handed to the Postgres user with it.
    let ca = TestCa::create(&dir.join("tls")).unwrap();
    let settings = [
        "ssl=on".to_owned(),
        format!("ssl_cert_file={}", ca.server_cert().display()),
        format!("ssl_key_file={}", ca.server_key().display()),
    ];
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let db = Postgres::install_with(&dir, &settings).expect("postgres starts");
    let verified = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        db.url(),
        ca.ca_cert().display()
    );
    let store = PostgresStore::connect(&verified).unwrap();
    store.migrate().await.unwrap();
    tether_testkit::Suite::new(store).run().await;

    let id = Id::generate().unwrap();
    let other_dir =
        std::env::temp_dir().join(format!("tether-postgres-tls-other-{}", std::process::id()));
    let other = TestCa::create(&other_dir).unwrap();
    let stranger = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        db.url(),
        other.ca_cert().display()
    );
    let stranger = PostgresStore::connect(&stranger).unwrap();
    assert!(
        stranger.load(&id).await.is_err(),
        "a server that does not verify was trusted"
    );
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other_dir);
}
