//! MariaDB that accepts only TLS, with a CA made at run time: the store keeps the
//! contract over `ssl-mode=VERIFY_IDENTITY`, and a connection that cannot verify the
//! server, or has no TLS, is an error (never "no session").

use tether_core::{Id, SessionStore};
use tether_mysql::MySqlStore;
use tether_testkit::services::{MariaDb, TestCa};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_keeps_the_contract_over_tls() {
    let dir = std::env::temp_dir().join(format!("tether-mysql-tls-{}", std::process::id()));
    let ca = TestCa::create(&dir.join("tls")).unwrap();
    let settings = [
        format!("--ssl-cert={}", ca.server_cert().display()),
        format!("--ssl-key={}", ca.server_key().display()),
        format!("--ssl-ca={}", ca.ca_cert().display()),
        "--require-secure-transport=ON".to_owned(),
    ];
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let db = MariaDb::install_with(&dir.join("db"), &settings).expect("mariadbd starts");
    let verified = format!(
        "{}?ssl-mode=VERIFY_IDENTITY&ssl-ca={}",
        db.url(),
        ca.ca_cert().display()
    );
    let store = MySqlStore::connect(&verified).unwrap();
    store.migrate().await.unwrap();
    tether_testkit::Suite::new(store).run().await;

    let id = Id::generate().unwrap();
    let other = TestCa::create(&dir.join("other")).unwrap();
    let stranger = format!(
        "{}?ssl-mode=VERIFY_IDENTITY&ssl-ca={}",
        db.url(),
        other.ca_cert().display()
    );
    let stranger = MySqlStore::connect(&stranger).unwrap();
    assert!(
        stranger.load(&id).await.is_err(),
        "a server that does not verify was trusted"
    );
    let plain = MySqlStore::connect(&format!("{}?ssl-mode=DISABLED", db.url())).unwrap();
    assert!(
        plain.load(&id).await.is_err(),
        "the server took a connection without TLS"
    );
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}
