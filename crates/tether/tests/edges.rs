//! The layer's edges, as a new user and as an attacker meet them: lock mode on every
//! path out of a request, which errors replace the handler's response, cookies that
//! hide or shadow the session, caching headers, and the memory store's bound.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::{get, post};
use tether::{LockOptions, MemoryStore, Session, SessionError, SessionLayer};
use tether_testkit::http::send;
use tower::ServiceExt as _;

/// Touches the session (taking the lock in lock mode), then never finishes.
async fn hang(session: Session) -> Result<&'static str, SessionError> {
    session.insert("hang", true).await?;
    std::future::pending::<()>().await;
    Ok("never")
}

/// Touches the session, then panics.
async fn panics(session: Session) -> &'static str {
    let _ = session.get::<u64>("n").await;
    panic!("a handler bug");
}

async fn put(session: Session) -> Result<&'static str, SessionError> {
    session.insert("x", 1).await?;
    Ok("ok")
}

fn app(layer: SessionLayer) -> Router {
    tether_testkit::app::routes()
        .route("/hang", post(hang))
        .route("/panic", get(panics))
        .route("/put", post(put))
        .layer(layer)
}

fn locked() -> SessionLayer {
    SessionLayer::new(MemoryStore::new()).with_lock(LockOptions {
        wait: Duration::from_millis(500),
        ttl: Duration::from_mins(1),
    })
}

#[tokio::test]
async fn lock_mode_releases_the_lock_at_logout_and_log_out_everywhere() {
    let app = app(locked());
    for path in ["/logout", "/logout-everywhere"] {
        let cookie = send(&app, "POST", "/login", None).await.cookie();
        assert_eq!(send(&app, "GET", "/me", Some(&cookie)).await.body, "alice");
        let reply = send(&app, "POST", path, Some(&cookie)).await;
        assert!(reply.status.is_success(), "{path}: {}", reply.body);
        // The old cookie is simply logged out: no wait, no 503 for the lock's TTL.
        let reply = send(&app, "GET", "/me", Some(&cookie)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
        assert_eq!(reply.body, "nobody");
    }
}

#[tokio::test]
async fn lock_mode_releases_the_lock_when_the_client_goes_away_or_the_handler_panics() {
    let app = app(locked());
    let cookie = send(&app, "POST", "/login", None).await.cookie();

    // The client gives up: the response future is dropped mid-handler.
    let request = Request::post("/hang")
        .header(header::COOKIE, &cookie)
        .body(Body::empty())
        .unwrap();
    let gone = tokio::time::timeout(Duration::from_millis(200), app.clone().oneshot(request)).await;
    assert!(gone.is_err(), "the hanging handler answered");
    let mut answered = false;
    for _ in 0..50 {
        let reply = send(&app, "GET", "/me", Some(&cookie)).await;
        if reply.status == StatusCode::OK {
            assert_eq!(reply.body, "alice");
            answered = true;
            break;
        }
    }
    assert!(answered, "the lock outlived the dropped request");

    // The handler panics: unwinding drops the request and its session.
    let request = Request::get("/panic")
        .header(header::COOKIE, &cookie)
        .body(Body::empty())
        .unwrap();
    let panicked = tokio::spawn(app.clone().oneshot(request)).await;
    assert!(panicked.is_err(), "the handler did not panic");
    let mut answered = false;
    for _ in 0..50 {
        if send(&app, "GET", "/me", Some(&cookie)).await.status == StatusCode::OK {
            answered = true;
            break;
        }
    }
    assert!(answered, "the lock outlived the panicked request");
}

#[tokio::test]
async fn other_cookies_neither_hide_nor_shadow_the_session() {
    let layer = SessionLayer::new(MemoryStore::new());
    let name = layer.cookie_name().to_owned();
    let app = app(layer);
    let cookie = send(&app, "POST", "/login", None).await.cookie();
    let value = cookie.split_once('=').unwrap().1.to_owned();

    // A Latin-1 byte in another app's cookie.
    let request = Request::get("/me")
        .header(
            header::COOKIE,
            header::HeaderValue::from_bytes(format!("theme=caf\u{e9}; {cookie}").as_bytes())
                .unwrap(),
        )
        .body(Body::empty())
        .unwrap();
    let mixed = [b"theme=caf\xe9; ".as_slice(), cookie.as_bytes()].concat();
    let latin1 = Request::get("/me")
        .header(
            header::COOKIE,
            header::HeaderValue::from_bytes(&mixed).unwrap(),
        )
        .body(Body::empty())
        .unwrap();
    for request in [request, latin1] {
        let response = app.clone().oneshot(request).await.unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(body, "alice");
    }

    // A cookie of the same name planted first (a sibling domain, a longer path).
    let planted = tether::Id::generate().unwrap();
    for header_value in [
        format!("{name}={planted}; {name}={value}"),
        format!("{name}=garbage; {name}={value}"),
    ] {
        let reply = send(&app, "GET", "/me", Some(&header_value)).await;
        assert_eq!(reply.body, "alice", "{header_value}");
    }
}

#[tokio::test]
async fn responses_made_with_the_session_vary_on_cookie() {
    let app = app(SessionLayer::new(MemoryStore::new()));
    let cookie = send(&app, "POST", "/login", None).await.cookie();
    let read = app
        .clone()
        .oneshot(
            Request::get("/me")
                .header(header::COOKIE, &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(read.headers()[header::VARY], "Cookie");
    let plain = app
        .clone()
        .oneshot(Request::get("/plain").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert!(plain.headers().get(header::VARY).is_none());
}

#[tokio::test]
async fn the_secure_cookie_has_the_host_prefix_by_default() {
    let app = app(SessionLayer::new(MemoryStore::new()));
    let set = send(&app, "POST", "/login", None).await.set_cookie.unwrap();
    assert!(set.starts_with("__Host-tether="), "{set}");
    let insecure = app_plain();
    let set = send(&insecure, "POST", "/login", None)
        .await
        .set_cookie
        .unwrap();
    assert!(set.starts_with("tether="), "{set}");
}

fn app_plain() -> Router {
    app(SessionLayer::new(MemoryStore::new()).with_insecure_cookie())
}

#[tokio::test]
async fn the_memory_store_is_bounded_and_logins_still_get_in() {
    let store = std::sync::Arc::new(MemoryStore::new().with_max_sessions(100));
    let app = app(SessionLayer::from_arc(store.clone()));
    for _ in 0..2_000 {
        assert_eq!(
            send(&app, "POST", "/put", None).await.status,
            StatusCode::OK
        );
    }
    assert!(store.len() <= 50, "{} sessions held", store.len());
    for _ in 0..60 {
        let reply = send(&app, "POST", "/login", None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    assert!(store.len() <= 100);
}

const DAY: u64 = 24 * 3600;

/// Sessions that may idle 30 days but live 7 in all, on a memory store the test
/// can reach.
struct Week {
    app: Router,
    store: std::sync::Arc<MemoryStore>,
    expiry: tether::Expiry,
    cookie_name: String,
}

impl Week {
    fn new() -> Self {
        let expiry = tether::Expiry::new(Duration::from_secs(30 * DAY))
            .with_absolute(Duration::from_secs(7 * DAY));
        let store = std::sync::Arc::new(MemoryStore::new());
        let layer = SessionLayer::from_arc(store.clone()).with_expiry(expiry);
        let cookie_name = layer.cookie_name().to_owned();
        Self {
            app: app(layer),
            store,
            expiry,
            cookie_name,
        }
    }

    /// A session created six days ago (one day of its absolute lifetime is left): its
    /// id, its record and the cookie that presents it.
    async fn six_days_old(&self) -> (tether::Id, tether::Record, String) {
        use tether::SessionStore as _;
        let created = time::OffsetDateTime::now_utc() - time::Duration::days(6);
        let record = tether::Record::new(created, &self.expiry);
        let id = tether::Id::generate().unwrap();
        self.store.create(&id, &record).await.unwrap();
        (id, record, format!("{}={id}", self.cookie_name))
    }
}

#[tokio::test]
async fn max_age_never_outlives_the_session_even_without_a_read() {
    let week = Week::new();
    for path in ["/login", "/put"] {
        let (_, _, cookie) = week.six_days_old().await;
        let reply = send(&week.app, "POST", path, Some(&cookie)).await;
        let set = reply.set_cookie.expect("a cookie");
        let max_age: i64 = set
            .split(';')
            .find_map(|a| a.trim().strip_prefix("Max-Age="))
            .expect("Max-Age")
            .parse()
            .unwrap();
        assert!(
            max_age <= i64::try_from(DAY).unwrap(),
            "{path}: Max-Age {max_age} outlives the session"
        );
        assert!(max_age > 0, "{path}: {set}");
    }
}

#[tokio::test]
async fn a_read_at_the_absolute_limit_neither_touches_the_session_nor_sends_a_cookie() {
    use tether::SessionStore as _;
    let week = Week::new();
    // Its idle deadline is its absolute one already: no activity can move it, and a
    // refresh would gain nothing.
    let (id, record, cookie) = week.six_days_old().await;
    assert_eq!(Some(record.idle_deadline), record.absolute_deadline);
    let reply = send(&week.app, "GET", "/me", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.set_cookie, None);
    let stored = week.store.load(&id).await.unwrap().expect("the session");
    assert_eq!(stored.last_seen, record.last_seen);
}
