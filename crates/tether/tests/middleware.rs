//! tether beside the middleware production apps run: tower-http's `CatchPanicLayer`
//! (a panicking handler saves nothing and releases its lock) and tower-cookies'
//! `CookieManagerLayer` (both cookies set, neither lost nor doubled, in either order),
//! and a plain Tower service with state of its own.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::{get, post};
use tether::{LockOptions, MemoryStore, Session, SessionError, SessionLayer};
use tether_testkit::http::send;
use tower::{Service as _, ServiceExt as _};
use tower_cookies::{CookieManagerLayer, Cookies};
use tower_http::catch_panic::CatchPanicLayer;

/// Changes the session, then panics before answering.
async fn write_then_panic(session: Session) -> Result<&'static str, SessionError> {
    session.insert("half-done", true).await?;
    panic!("a handler bug after a write");
}

async fn half_done(session: Session) -> Result<String, SessionError> {
    Ok(format!("{:?}", session.get::<bool>("half-done").await?))
}

#[tokio::test]
async fn behind_catch_panic_a_panic_is_a_500_that_saved_nothing_and_freed_the_lock() {
    let layer = SessionLayer::new(MemoryStore::new()).with_lock(LockOptions {
        wait: Duration::from_secs(2),
        ttl: Duration::from_mins(1),
    });
    let app = tether_testkit::app::routes()
        .route("/panic", post(write_then_panic))
        .route("/half-done", get(half_done))
        .layer(layer)
        .layer(CatchPanicLayer::new());
    let cookie = send(&app, "POST", "/login", None).await.cookie();

    let reply = send(&app, "POST", "/panic", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.set_cookie, None, "a panicked request set a cookie");

    // The next request of the same session gets the lock at once (the wait is 2 s;
    // a held lock would answer 503 after it) and sees no trace of the write.
    let reply = send(&app, "GET", "/half-done", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, "None", "the panicked request's write was saved");
    assert_eq!(send(&app, "GET", "/me", Some(&cookie)).await.body, "alice");
}

/// Sets a tower-cookies cookie and a session value in one request.
async fn both(cookies: Cookies, session: Session) -> Result<&'static str, SessionError> {
    cookies.add(tower_cookies::Cookie::new("theme", "dark"));
    session.insert("n", 1).await?;
    Ok("both")
}

/// Reads the session value and the tower-cookies cookie.
async fn read_both(cookies: Cookies, session: Session) -> Result<String, SessionError> {
    let theme = cookies.get("theme").map(|c| c.value().to_owned());
    Ok(format!("{theme:?} {:?}", session.get::<u64>("n").await?))
}

/// Every `Set-Cookie` header of one response.
async fn set_cookies(app: &Router, cookie: Option<&str>) -> (Vec<String>, String) {
    let mut request = Request::post("/both");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let all = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (all, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn tower_cookies_and_tether_set_their_cookies_side_by_side_in_either_order() {
    let routes = || {
        Router::new()
            .route("/both", post(both))
            .route("/read", get(read_both))
    };
    let session = || SessionLayer::new(MemoryStore::new()).with_insecure_cookie();
    let apps = [
        (
            "cookies outside",
            routes().layer(session()).layer(CookieManagerLayer::new()),
        ),
        (
            "cookies inside",
            routes().layer(CookieManagerLayer::new()).layer(session()),
        ),
    ];
    for (order, app) in apps {
        let (set, body) = set_cookies(&app, None).await;
        assert_eq!(body, "both", "{order}");
        let themes = set.iter().filter(|c| c.starts_with("theme=")).count();
        let sessions = set.iter().filter(|c| c.starts_with("tether=")).count();
        assert_eq!((themes, sessions), (1, 1), "{order}: {set:?}");

        // The browser sends both back: each layer reads its own.
        let jar: Vec<&str> = set.iter().map(|c| c.split(';').next().unwrap()).collect();
        let jar = jar.join("; ");
        let reply = send(&app, "GET", "/read", Some(&jar)).await;
        assert_eq!(reply.body, "Some(\"dark\") Some(1)", "{order}");
    }
}

/// A Tower service that counts the requests it answered, in its own state.
#[derive(Clone, Default)]
struct Counting(u32);

impl tower::Service<Request<Body>> for Counting {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<Body>) -> Self::Future {
        self.0 += 1;
        std::future::ready(Ok(axum::response::Response::new(Body::from(
            self.0.to_string(),
        ))))
    }
}

/// The layer calls the service it wraps in place, once per request, as Tower's
/// contract has it: never a clone, so the service's own state carries on.
#[tokio::test]
async fn the_wrapped_service_is_called_in_place() {
    use tower::Layer as _;
    let mut service = SessionLayer::new(MemoryStore::new()).layer(Counting::default());
    for n in 1..=3 {
        let response = service
            .ready()
            .await
            .unwrap()
            .call(Request::new(Body::empty()))
            .await
            .unwrap();
        let body = axum::body::to_bytes(response.into_body(), 64)
            .await
            .unwrap();
        assert_eq!(body, n.to_string(), "request {n}");
    }
}
