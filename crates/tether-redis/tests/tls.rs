//! Redis over TLS (`rediss://`, rustls) against a redis-server that speaks only TLS,
//! with a certificate authority made at run time.

use tether::SessionStore;
use tether_redis::{RedisStore, RedisTls};
use tether_testkit::services::{RedisServer, TestCa};

fn dir(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "tether-redis-tls-{tag}-{}-{}",
        std::process::id(),
        tether_testkit::harness::free_port()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_keeps_the_contract_over_tls_and_refuses_what_does_not_verify() {
    let certs = dir("ca");
    let ca = TestCa::create(&certs).unwrap();
    let server = RedisServer::start_tls(&dir("server"), &ca).unwrap();
    let url = server.url();
    assert!(url.starts_with("rediss://127.0.0.1:"), "{url}");
    let ca_pem = std::fs::read(ca.ca_cert()).unwrap();

    let store = RedisStore::connect_tls(&url, &RedisTls::with_root_ca(ca_pem.clone())).unwrap();
    tether_testkit::Suite::new(store).run().await;

    // A server whose certificate another CA signed: an error, never "no session".
    let other = TestCa::create(&dir("other-ca")).unwrap();
    let stranger = RedisStore::connect_tls(
        &url,
        &RedisTls::with_root_ca(std::fs::read(other.ca_cert()).unwrap()),
    )
    .unwrap();
    let id = tether::Id::generate().unwrap();
    assert!(
        stranger.load(&id).await.is_err(),
        "a certificate that does not verify was accepted"
    );
    // The system's roots do not know the test CA either.
    let system = RedisStore::connect(&url).unwrap();
    assert!(system.load(&id).await.is_err());
    // Plain text to a TLS port: an error.
    let plain = RedisStore::connect(&url.replacen("rediss://", "redis://", 1)).unwrap();
    assert!(plain.load(&id).await.is_err());

    // Configuration mistakes are configuration errors.
    let not_tls =
        RedisStore::connect_tls("redis://127.0.0.1:6379", &RedisTls::with_root_ca(ca_pem));
    assert!(
        matches!(not_tls, Err(tether::Error::Config(_))),
        "{not_tls:?}"
    );
    let garbage = RedisStore::connect_tls(&url, &RedisTls::with_root_ca(b"not a pem".to_vec()));
    assert!(
        matches!(garbage, Err(tether::Error::Config(_))),
        "{garbage:?}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&certs);
}
