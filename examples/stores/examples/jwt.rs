//! The JWT store: the session as a signed JWT (Ed25519) in the cookie. Other services
//! verify it with the public key; instances share the signing key.
//!
//! ```sh
//! printf 'k1 ed25519 %s\n' "$(head -c 32 /dev/urandom | basenc --base64url | tr -d '=')" > jwt.keys
//! chmod 600 jwt.keys
//! cargo run -p tether-examples --example jwt -- jwt.keys
//! curl -c jar -b jar -X POST http://127.0.0.1:3000/visit
//! curl http://127.0.0.1:3000/.well-known/jwks.json
//! ```

use axum::routing::{get, post};
use axum::{Json, Router};
use tether::jwt::{JwtKeys, JwtStore};
use tether::{Session, SessionError, SessionLayer};

async fn visit(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", visits).await?;
    Ok(format!("{visits}\n"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "jwt.keys".to_owned());
    let keys = JwtKeys::from_file(&path)?; // newest key first; the file must be 0600
    let store = JwtStore::new(keys).with_issuer("tether-example");
    // Verifiers fetch the public keys here.
    let jwks = Json(store.keys().jwks());
    let layer = SessionLayer::client_side(store).with_insecure_cookie();
    let app = Router::new()
        .route("/visit", post(visit))
        .layer(layer)
        .route("/.well-known/jwks.json", get(move || async move { jwks }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
