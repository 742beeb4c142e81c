//! The app the tests of a session's own lifetime (`Session::set_expiry`) drive, on any
//! store, server-side or client-side.
//!
//! | route | what the handler does |
//! |---|---|
//! | `POST /login/{kind}` | rotates the id, binds `alice`; `remember` sets [`remember`], `shared` sets [`shared_computer`], anything else keeps the layer's |
//! | `POST /again` | sets [`remember`] again |
//! | `POST /write` | sets `theme` without reading |
//! | `GET /me` | `USER idle=SECONDS browser=BOOL` from `Session::expiry` |
//! | `POST /rotate` | rotates the id |
//!
//! ```
//! let app = tether_conformance::lifetime::routes()
//!     .layer(tether::SessionLayer::new(tether::MemoryStore::new()).with_expiry(tether_conformance::lifetime::layer_expiry()));
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::{get, post};
use tether::{Expiry, Id, Session, SessionError, SessionLayer, SessionStore};

use crate::http::send;

/// A day, in seconds.
pub const DAY: u64 = 86_400;

/// The layer's lifetime in these tests: an hour idle, two absolute.
pub fn layer_expiry() -> Expiry {
    Expiry::new(Duration::from_hours(1)).with_absolute(Duration::from_hours(2))
}

/// "Remember me": 30 days idle and absolute.
pub fn remember() -> Expiry {
    Expiry::new(Duration::from_secs(30 * DAY)).with_absolute(Duration::from_secs(30 * DAY))
}

/// A shared computer: ten minutes idle, a browser-session cookie.
pub fn shared_computer() -> Expiry {
    Expiry::new(Duration::from_mins(10)).browser_session()
}

/// The id in a `name=value` cookie pair.
///
/// # Panics
/// When the value is not an id.
pub fn id_of(cookie: &str) -> Id {
    Id::parse(cookie.split_once('=').expect("name=value").1).expect("an id")
}

/// The key `store` keeps the session of a `name=value` cookie pair under, as the
/// layer gives it (the id itself in process, else its hash at rest).
///
/// # Panics
/// When the value is not an id.
pub fn key_of(store: &dyn SessionStore, cookie: &str) -> Id {
    store.capabilities().key(&id_of(cookie))
}

/// The routes, without a layer.
pub fn routes() -> Router {
    Router::new()
        .route("/login/{kind}", post(login))
        .route("/again", post(again))
        .route("/write", post(write))
        .route("/me", get(me))
        .route("/rotate", post(rotate))
}

async fn login(session: Session, Path(kind): Path<String>) -> Result<&'static str, SessionError> {
    session.cycle_id().await?;
    session.set_user("alice").await?;
    match kind.as_str() {
        "remember" => session.set_expiry(remember()).await?,
        "shared" => session.set_expiry(shared_computer()).await?,
        _ => {}
    }
    Ok("welcome")
}

async fn again(session: Session) -> Result<&'static str, SessionError> {
    session.set_expiry(remember()).await?;
    Ok("same")
}

async fn write(session: Session) -> Result<&'static str, SessionError> {
    session.insert("theme", "dark").await?;
    Ok("written")
}

async fn me(session: Session) -> Result<String, SessionError> {
    let expiry = session.expiry().await?;
    Ok(format!(
        "{} idle={} browser={}",
        session.user().await?.unwrap_or_else(|| "nobody".into()),
        expiry.idle.as_secs(),
        expiry.browser_session
    ))
}

async fn rotate(session: Session) -> Result<&'static str, SessionError> {
    session.cycle_id().await?;
    Ok("rotated")
}

/// Through the layer on a server-side store: a remembered login lives by its 30 days
/// on every write (one that did not read the session too), asking again changes
/// nothing, a rotation keeps it; a shared-computer login keeps a browser-session
/// cookie and its ten minutes; a plain login keeps the layer's lifetime.
///
/// # Panics
/// When the store or the layer breaks any of it.
pub async fn check_server_store(store: Arc<dyn SessionStore>) {
    let app = routes().layer(SessionLayer::from_arc(store.clone()).with_expiry(layer_expiry()));
    let now = time::OffsetDateTime::now_utc;

    let anonymous = send(&app, "POST", "/write", None).await.cookie();
    let reply = send(&app, "POST", "/login/remember", Some(&anonymous)).await;
    let age = reply
        .max_age()
        .expect("a remembered login's cookie has a Max-Age");
    assert!(age > 29 * DAY, "Max-Age {age}: not the 30 days asked for");
    let cookie = reply.cookie();
    assert_ne!(cookie, anonymous, "the session was issued under a new id");
    assert!(
        store
            .load(&key_of(&*store, &anonymous))
            .await
            .unwrap()
            .is_none(),
        "the pre-login id still works"
    );
    let record = store
        .load(&key_of(&*store, &cookie))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.lifetime, Some(remember().lifetime()));
    assert_eq!(record.user.as_deref(), Some("alice"));
    assert_eq!(
        record.data["theme"], "dark",
        "the data moved with the session"
    );
    assert_eq!(
        send(&app, "GET", "/me", Some(&cookie)).await.body,
        format!("alice idle={} browser=false", 30 * DAY)
    );

    // A request that writes without reading: the store still refreshes by 30 days,
    // and a cookie it sets stays persistent.
    let wrote = send(&app, "POST", "/write", Some(&cookie)).await;
    if wrote.set_cookie.is_some() {
        assert!(wrote.max_age().is_some_and(|a| a > 29 * DAY), "{wrote:?}");
    }
    let record = store
        .load(&key_of(&*store, &cookie))
        .await
        .unwrap()
        .unwrap();
    let left = record.expires_at() - now();
    assert!(left > time::Duration::days(29), "{left} left after a write");

    // Asking again for the lifetime it has changes nothing (no new id).
    let same = send(&app, "POST", "/again", Some(&cookie)).await;
    assert!(same.set_cookie.is_none(), "{same:?}");

    // It survives a rotation.
    let rotated = send(&app, "POST", "/rotate", Some(&cookie)).await.cookie();
    let record = store
        .load(&key_of(&*store, &rotated))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.lifetime, Some(remember().lifetime()));

    // A shared computer: a browser-session cookie, on a write that did not read the
    // session too, and ten minutes idle, not the layer's hour.
    let reply = send(&app, "POST", "/login/shared", None).await;
    assert_eq!(reply.max_age(), None, "{reply:?}");
    let cookie = reply.cookie();
    let wrote = send(&app, "POST", "/write", Some(&cookie)).await;
    assert!(
        wrote.set_cookie.is_some(),
        "a write-only request refreshes the cookie"
    );
    assert_eq!(wrote.max_age(), None, "{wrote:?}");
    let record = store
        .load(&key_of(&*store, &cookie))
        .await
        .unwrap()
        .unwrap();
    let left = record.expires_at() - now();
    assert!(left <= time::Duration::minutes(10), "{left} left");
    assert_eq!(
        send(&app, "GET", "/me", Some(&cookie)).await.body,
        "alice idle=600 browser=true"
    );

    // A plain login keeps the layer's persistent cookie and hour.
    let plain = send(&app, "POST", "/login/plain", None).await;
    assert!(plain.max_age().is_some_and(|a| a <= 3600), "{plain:?}");
    assert_eq!(
        send(&app, "GET", "/me", Some(&plain.cookie())).await.body,
        "alice idle=3600 browser=false"
    );
}

/// Through `layer` over a client-side store (the session sealed in the cookie): the
/// lifetime is sealed with the session and rules the cookie on every write, and its
/// absolute part counts from the session's creation
/// ([`check_absolute_from_creation`]).
///
/// # Panics
/// When the store or the layer breaks any of it.
pub async fn check_client_store(layer: SessionLayer) {
    check_absolute_from_creation(layer.clone()).await;
    let app = routes().layer(layer.with_expiry(layer_expiry()));
    let reply = send(&app, "POST", "/login/remember", None).await;
    assert!(reply.max_age().is_some_and(|a| a > 29 * DAY), "{reply:?}");
    let wrote = send(&app, "POST", "/write", Some(&reply.cookie())).await;
    assert!(wrote.max_age().is_some_and(|a| a > 29 * DAY), "{wrote:?}");
    assert_eq!(
        send(&app, "GET", "/me", Some(&wrote.cookie())).await.body,
        format!("alice idle={} browser=false", 30 * DAY)
    );
    let shared = send(&app, "POST", "/login/shared", None).await;
    assert_eq!(shared.max_age(), None, "{shared:?}");
    let wrote = send(&app, "POST", "/write", Some(&shared.cookie())).await;
    assert_eq!(wrote.max_age(), None, "{wrote:?}");
    assert_eq!(
        send(&app, "GET", "/me", Some(&wrote.cookie())).await.body,
        "alice idle=600 browser=true"
    );
}

/// The absolute lifetime counts from the session's creation, whatever `set_expiry`
/// does after: with the layer's absolute lifetime at 3 s, a session given an hour of
/// idle time (`Expiry::new(1h)`) or a shared computer's lifetime at 2 s is gone at
/// 4 s; one whose "remember me" (5 s absolute) is switched on, off and on again over
/// its first seconds is gone 5 s after its login, not 5 s after the last switch; one
/// given a shorter one (2 s) is gone 2 s after its login.
/// Real waits: about 6 seconds.
///
/// # Panics
/// When a lifetime was restarted or dropped.
pub async fn check_absolute_from_creation(layer: SessionLayer) {
    async fn login(session: Session) -> Result<&'static str, SessionError> {
        session.cycle_id().await?;
        session.set_user("alice").await?;
        Ok("welcome")
    }
    async fn set(session: Session, Path(kind): Path<String>) -> Result<&'static str, SessionError> {
        let hour = Duration::from_hours(1);
        let expiry = match kind.as_str() {
            "hour" => Expiry::new(hour),
            "shared" => Expiry::new(Duration::from_mins(15)).browser_session(),
            "remember" => Expiry::new(hour).with_absolute(Duration::from_secs(5)),
            "short" => Expiry::new(hour).with_absolute(Duration::from_secs(2)),
            _ => Expiry::new(hour).with_absolute(Duration::from_secs(3)),
        };
        session.set_expiry(expiry).await?;
        Ok("set")
    }
    async fn me(session: Session) -> Result<String, SessionError> {
        Ok(session.user().await?.unwrap_or_else(|| "nobody".into()))
    }
    let app = Router::new()
        .route("/login", post(login))
        .route("/set/{kind}", post(set))
        .route("/me", get(me))
        .layer(layer.with_expiry(
            Expiry::new(Duration::from_hours(1)).with_absolute(Duration::from_secs(3)),
        ));
    let start = tokio::time::Instant::now();
    let at = |seconds: f64| tokio::time::sleep_until(start + Duration::from_secs_f64(seconds));
    let mut hour = send(&app, "POST", "/login", None).await.cookie();
    let mut shared = send(&app, "POST", "/login", None).await.cookie();
    let mut toggled = send(&app, "POST", "/login", None).await.cookie();
    let mut shortened = send(&app, "POST", "/login", None).await.cookie();
    // Whatever a reply sets replaces the cookie, as a browser does.
    let follow = async |cookie: &mut String, path: &str| {
        let reply = send(&app, "POST", path, Some(cookie)).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        if reply.set_cookie.is_some() {
            *cookie = reply.cookie();
        }
    };
    at(0.5).await;
    follow(&mut toggled, "/set/remember").await;
    follow(&mut shortened, "/set/remember").await;
    at(1.0).await;
    follow(&mut toggled, "/set/plain").await;
    // The same idle time and cookie kind, a shorter absolute lifetime: 2 s from login.
    follow(&mut shortened, "/set/short").await;
    at(1.5).await;
    follow(&mut toggled, "/set/remember").await;
    at(2.0).await;
    follow(&mut toggled, "/set/plain").await;
    follow(&mut hour, "/set/hour").await;
    follow(&mut shared, "/set/shared").await;
    for cookie in [&hour, &shared, &toggled] {
        assert_eq!(send(&app, "GET", "/me", Some(cookie)).await.body, "alice");
    }
    at(2.5).await;
    follow(&mut toggled, "/set/remember").await;
    assert_eq!(
        send(&app, "GET", "/me", Some(&shortened)).await.body,
        "nobody",
        "a shorter absolute lifetime (2 s from creation) was not applied"
    );
    at(4.0).await;
    assert_eq!(
        send(&app, "GET", "/me", Some(&hour)).await.body,
        "nobody",
        "Expiry::new(1h) at 2 s restarted or dropped the 3 s absolute lifetime"
    );
    assert_eq!(
        send(&app, "GET", "/me", Some(&shared)).await.body,
        "nobody",
        "a shared computer's lifetime at 2 s restarted or dropped the 3 s absolute lifetime"
    );
    assert_eq!(
        send(&app, "GET", "/me", Some(&toggled)).await.body,
        "alice",
        "\"remember me\" (5 s from creation) ended early"
    );
    at(5.5).await;
    assert_eq!(
        send(&app, "GET", "/me", Some(&toggled)).await.body,
        "nobody",
        "switching \"remember me\" again restarted the absolute lifetime"
    );
}
