//! The cookie store through the layer: a session's own lifetime (`Session::set_expiry`)
//! sealed with it, and the sealed session in a header instead of a cookie.

use tether::SessionLayer;
use tether_cookie::{CookieStore, KeyRing};

#[tokio::test]
async fn the_lifetime_is_sealed_and_rules_the_cookie() {
    let keys = KeyRing::parse(&KeyRing::generate_key().unwrap()).unwrap();
    tether_testkit::lifetime::check_client_store(SessionLayer::client_side(CookieStore::new(keys)))
        .await;
}

/// The sealed session in a header instead of a cookie (an API client keeps it).
#[tokio::test]
async fn the_sealed_session_travels_in_a_header_too() {
    use tether_testkit::http::send_with;
    let keys = KeyRing::parse(&KeyRing::generate_key().unwrap()).unwrap();
    let app = tether_testkit::app::routes().layer(
        SessionLayer::client_side(CookieStore::new(keys))
            .with_transport(tether::Transport::bearer()),
    );
    let first = send_with(&app, "POST", "/incr", &[]).await;
    assert!(first.set_cookie.is_none(), "{first:?}");
    let sealed = first.headers["x-session-token"]
        .to_str()
        .unwrap()
        .to_owned();
    let auth = format!("Bearer {sealed}");
    assert_eq!(
        send_with(&app, "POST", "/incr", &[("authorization", &auth)])
            .await
            .body,
        "2"
    );
}
