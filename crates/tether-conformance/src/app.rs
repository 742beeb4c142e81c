//! The standard app the layer tests of every crate drive: one set of handlers, so a
//! store's tests say only what is particular to the store.
//!
//! | route | what the handler does |
//! |---|---|
//! | `GET /plain` | nothing with the session |
//! | `POST /login` | rotates the id and binds the session to `alice` |
//! | `GET /me` | the bound user, or `nobody` |
//! | `POST /incr` | increments `n`, answers its new value |
//! | `GET /read` | reads `n` (0 when missing), writes nothing |
//! | `POST /write` | sets `last` without reading |
//! | `POST /logout` | ends the session (`204`) |
//! | `POST /logout-everywhere` | ends every session of the user, answers how many |
//!
//! ```
//! let app = tether_conformance::app::routes()
//!     .layer(tether::SessionLayer::new(tether::MemoryStore::new()));
//! ```

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tether::{Session, SessionError};

/// The routes, without a layer: add your own, then the layer under test.
pub fn routes() -> Router {
    Router::new()
        .route("/plain", get(|| async { "no session here" }))
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/incr", post(incr))
        .route("/read", get(read))
        .route("/write", post(write))
        .route("/logout", post(logout))
        .route("/logout-everywhere", post(logout_everywhere))
}

async fn login(session: Session) -> Result<&'static str, SessionError> {
    session.cycle_id().await?;
    session.set_user("alice").await?;
    Ok("welcome")
}

async fn me(session: Session) -> Result<String, SessionError> {
    Ok(session.user().await?.unwrap_or_else(|| "nobody".into()))
}

async fn incr(session: Session) -> Result<String, SessionError> {
    let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
    session.insert("n", n).await?;
    Ok(n.to_string())
}

async fn read(session: Session) -> Result<String, SessionError> {
    Ok(session.get::<u64>("n").await?.unwrap_or(0).to_string())
}

async fn write(session: Session) -> Result<&'static str, SessionError> {
    session.insert("last", "written").await?;
    Ok("ok")
}

async fn logout(session: Session) -> Result<StatusCode, SessionError> {
    session.logout().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn logout_everywhere(session: Session) -> Result<String, SessionError> {
    Ok(session.logout_everywhere().await?.to_string())
}
