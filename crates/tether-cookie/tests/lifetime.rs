//! A session's own lifetime (`Session::set_expiry`) sealed in the cookie.

use tether::SessionLayer;
use tether_cookie::{CookieStore, KeyRing};

#[tokio::test]
async fn the_lifetime_is_sealed_and_rules_the_cookie() {
    let keys = KeyRing::parse(&KeyRing::generate_key().unwrap()).unwrap();
    tether_testkit::lifetime::check_client_store(SessionLayer::client_side(CookieStore::new(keys)))
        .await;
}
