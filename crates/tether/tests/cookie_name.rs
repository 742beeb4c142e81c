//! The cookie's name: a name the app gives is sent exactly as written (proxies hash
//! `$cookie_NAME`, migrating apps keep their users' cookies); a prefixed name its
//! attributes cannot hold is refused when the layer is built.

use tether::{MemoryStore, SessionLayer};
use tether_testkit::http::send;

#[tokio::test]
async fn a_chosen_name_is_sent_and_read_as_written() {
    let app = tether_testkit::app::routes()
        .layer(SessionLayer::new(MemoryStore::new()).with_cookie_name("my.sid"));
    let reply = send(&app, "POST", "/incr", None).await;
    let set = reply.set_cookie.clone().unwrap();
    assert!(set.starts_with("my.sid="), "{set}");
    assert!(set.contains("Secure"), "{set}");
    let again = send(&app, "POST", "/incr", Some(&reply.cookie())).await;
    assert_eq!(
        again.body, "2",
        "the cookie was not read back under its name"
    );
}

#[tokio::test]
async fn the_default_name_keeps_its_secure_prefix() {
    let app = tether_testkit::app::routes().layer(SessionLayer::new(MemoryStore::new()));
    let set = send(&app, "POST", "/incr", None).await.set_cookie.unwrap();
    assert!(set.starts_with("__Host-tether="), "{set}");
}

#[test]
fn a_prefix_the_attributes_cannot_hold_is_a_configuration_error() {
    let host = SessionLayer::new(MemoryStore::new()).with_cookie_name("__Host-sid");
    assert!(host.check().is_ok());
    for broken in [
        host.clone().with_insecure_cookie(),
        host.clone().with_path("/app"),
        host.clone().with_domain("example.com"),
        SessionLayer::new(MemoryStore::new())
            .with_cookie_name("__Secure-sid")
            .with_insecure_cookie(),
    ] {
        let error = broken.check().unwrap_err();
        assert!(
            matches!(error, tether::Error::Config(_)),
            "{error:?} is not a configuration error"
        );
    }
    let broken = host.with_insecure_cookie();
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = tether_testkit::app::routes().layer(broken);
    }));
    assert!(refused.is_err(), "the broken layer was applied");
}
