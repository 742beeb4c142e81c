//! Every store tether ships opens from its URL and keeps a session through the layer;
//! a store whose feature is off is refused by name. Needs the services `scripts/test`
//! starts (`scripts/services.sh`): Redis, MariaDB and PostgreSQL, their URLs in
//! `TETHER_TEST_REDIS_URL`, `TETHER_TEST_MYSQL_URL`, `TETHER_TEST_POSTGRES_URL`.

use axum::Router;
use axum::routing::post;
use tether::{Session, SessionError, SessionLayer, StoreConfig, StoreConfigError, StoreKind};
use tether_testkit::http::send;

async fn visit(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", visits).await?;
    Ok(visits.to_string())
}

fn service(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the tests through scripts/test, or start the services with scripts/services.sh")
    })
}

/// Two visits with the cookie the first left: the second sees the first's write.
async fn keeps_a_session(layer: SessionLayer) {
    let app = Router::new()
        .route("/visit", post(visit))
        .layer(layer.with_insecure_cookie());
    let first = send(&app, "POST", "/visit", None).await;
    assert_eq!((first.status.as_u16(), first.body.as_str()), (200, "1"));
    let second = send(&app, "POST", "/visit", Some(&first.cookie())).await;
    assert_eq!(second.body, "2");
}

/// The configuration a test opens for `kind`, from its URL.
fn config_for(kind: StoreKind, dir: &std::path::Path) -> StoreConfig {
    let parse = |url: &str| StoreConfig::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    match kind {
        StoreKind::Memory => parse("memory:"),
        StoreKind::File => parse(&format!("file://{}", dir.join("sessions").display())),
        StoreKind::Redis => parse(&service("TETHER_TEST_REDIS_URL")),
        StoreKind::MySql => parse(&service("TETHER_TEST_MYSQL_URL")),
        StoreKind::Postgres => parse(&service("TETHER_TEST_POSTGRES_URL")),
        StoreKind::Sqlite => parse(&format!("sqlite://{}", dir.join("sessions.db").display())),
        StoreKind::Cookie => {
            let path = dir.join("cookie.keys");
            write_key_file(&path, &cookie_key());
            parse(&format!("cookie:?key_file={}", path.display()))
        }
        StoreKind::Jwt => {
            let path = dir.join("jwt.keys");
            write_key_file(&path, &jwt_key());
            parse(&format!("jwt:?key_file={}", path.display()))
        }
        StoreKind::Replicated => {
            parse("replicated:").with_replication_secret("a secret of twenty-four b")
        }
        other => panic!("no test URL for the {other} store: add one here"),
    }
}

fn write_key_file(path: &std::path::Path, text: &str) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

#[cfg(feature = "cookie")]
fn cookie_key() -> String {
    tether::cookie::KeyRing::generate_key().unwrap()
}
#[cfg(not(feature = "cookie"))]
fn cookie_key() -> String {
    String::new()
}
#[cfg(feature = "jwt")]
fn jwt_key() -> String {
    tether::jwt::JwtKeys::generate_ed25519("test").unwrap()
}
#[cfg(not(feature = "jwt"))]
fn jwt_key() -> String {
    String::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_store_opens_from_its_url_and_keeps_a_session() {
    let dir = tether_testkit::harness::private_dir("store-config");
    for &kind in StoreKind::ALL {
        if !kind.is_enabled() {
            continue; // Refused by name: see the test below.
        }
        let config = config_for(kind, &dir);
        assert_eq!(config.kind(), kind);
        let opened = config
            .open()
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(opened.kind(), kind);
        assert_eq!(opened.server_store().is_none(), kind.is_client_side());
        keeps_a_session(opened.layer()).await;
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The stores with a near cache open with one from `?near_cache=on`, keep sessions,
/// and answer repeated reads from it; the others refuse it as a configuration error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_cache_from_the_url() {
    let dir = tether_testkit::harness::private_dir("store-config-near");
    for &kind in StoreKind::ALL {
        if !kind.is_enabled() {
            continue;
        }
        let config = config_for(kind, &dir).with_near_cache(tether::NearCacheConfig::default());
        if !kind.has_near_cache() {
            let err = config.open().await.unwrap_err();
            assert!(matches!(err, tether::Error::Config(_)), "{kind}: {err}");
            continue;
        }
        let url = match kind {
            StoreKind::Redis => service("TETHER_TEST_REDIS_URL"),
            _ => service("TETHER_TEST_POSTGRES_URL"),
        };
        let opened = StoreConfig::parse(&format!("{url}?near_cache=on"))
            .unwrap()
            .open()
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let cache = opened.near_cache().expect("a near cache").clone();
        tether_testkit::near_cache::until_live_cache(&cache).await;
        keeps_a_session(opened.layer()).await;
        let app = Router::new()
            .route("/visit", post(visit))
            .route(
                "/read",
                axum::routing::get(async |s: Session| -> Result<String, SessionError> {
                    Ok(s.get::<u64>("visits").await?.unwrap_or(0).to_string())
                }),
            )
            .layer(opened.layer().with_insecure_cookie());
        let cookie = send(&app, "POST", "/visit", None).await.cookie();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while cache.stats().hits == 0 {
            assert_eq!(send(&app, "GET", "/read", Some(&cookie)).await.body, "1");
            assert!(
                std::time::Instant::now() < deadline,
                "{kind}: no read from the cache"
            );
        }
    }
    assert!(matches!(
        StoreConfig::parse("mysql://h/db?near_cache=on"),
        Err(StoreConfigError::Invalid { part: "query", .. }
            | StoreConfigError::FeatureDisabled { .. })
    ));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_store_not_compiled_in_is_refused_by_its_feature() {
    for &kind in StoreKind::ALL {
        let Some(feature) = kind.feature().filter(|_| !kind.is_enabled()) else {
            continue;
        };
        let url = format!("{}://x", kind.name());
        match StoreConfig::parse(&url) {
            Err(StoreConfigError::FeatureDisabled { feature: named, .. }) => {
                assert_eq!(named, feature);
            }
            other => panic!("{url}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn settings_a_store_cannot_take_are_configuration_errors() {
    let err = StoreConfig::parse("memory:")
        .unwrap()
        .with_ca_pem(b"-----BEGIN CERTIFICATE-----".to_vec())
        .open()
        .await
        .unwrap_err();
    assert!(matches!(err, tether::Error::Config(_)), "{err}");
    if StoreKind::Cookie.is_enabled() {
        let err = StoreConfig::parse("cookie:")
            .unwrap()
            .open()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("key_file"), "{err}");
    }
    if StoreKind::File.is_enabled() {
        let err = StoreConfig::file("/tmp")
            .with_max_sessions(10)
            .open()
            .await
            .unwrap_err();
        assert!(matches!(err, tether::Error::Config(_)), "{err}");
    }
}
