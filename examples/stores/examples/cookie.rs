//! The cookie store: the whole session, encrypted and authenticated, in the cookie.
//! Instances share nothing but a key.
//!
//! ```sh
//! export TETHER_COOKIE_KEYS=$(head -c 32 /dev/urandom | basenc --base64url | tr -d '=')
//! cargo run -p tether-examples --example cookie
//! curl -c jar -b jar -X POST http://127.0.0.1:3000/visit
//! ```

use axum::{Router, routing::post};
use tether::cookie::{CookieStore, KeyRing};
use tether::{Session, SessionError, SessionLayer};

async fn visit(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", visits).await?;
    Ok(format!("{visits}\n"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keys = KeyRing::from_env("TETHER_COOKIE_KEYS")?; // newest key first
    // The context binds the cookie to this app: another app with the same keys
    // cannot use it.
    let store = CookieStore::new(keys).with_context("tether-example");
    let layer = SessionLayer::client_side(store).with_insecure_cookie();
    let app = Router::new().route("/visit", post(visit)).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
