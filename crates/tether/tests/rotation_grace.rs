//! Rotation grace through a real axum app: requests still carrying the id a session
//! just left (arriving after the login, or in flight during it) are anonymous and
//! read-only, and never replace the browser's new cookie.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use tether::{MemoryStore, Session, SessionError, SessionLayer};
use tether_testkit::http::send;
use tokio::sync::Notify;

/// `/slow`: reads `n`, says so, waits to be let go, then writes `n + 1`.
#[derive(Clone, Default)]
struct Gate {
    read: Arc<Notify>,
    go: Arc<Notify>,
}

async fn slow(State(gate): State<Gate>, session: Session) -> Result<String, SessionError> {
    let n: u64 = session.get("n").await?.unwrap_or(0);
    gate.read.notify_one();
    gate.go.notified().await;
    session.insert("n", n + 1).await?;
    Ok((n + 1).to_string())
}

fn app(store: Arc<MemoryStore>, grace: Option<Duration>, gate: Gate) -> Router {
    let mut layer = SessionLayer::from_arc(store);
    if let Some(grace) = grace {
        layer = layer.with_rotation_grace(grace);
    }
    tether_testkit::app::routes()
        .merge(Router::new().route("/slow", post(slow)).with_state(gate))
        .layer(layer)
}

#[tokio::test]
async fn a_request_with_the_old_id_after_login_is_anonymous_and_read_only() {
    let store = Arc::new(MemoryStore::new());
    let app = app(store.clone(), None, Gate::default());
    let old = send(&app, "POST", "/incr", None).await.cookie();
    let new = send(&app, "POST", "/login", Some(&old)).await.cookie();
    let sessions = store.len();

    let straggler = send(&app, "POST", "/incr", Some(&old)).await;
    assert_eq!(straggler.status, 200);
    assert_eq!(straggler.body, "1", "it saw no data: anonymous");
    assert!(straggler.set_cookie.is_none(), "{straggler:?}");
    assert_eq!(store.len(), sessions, "it started no session");
    let logout = send(&app, "POST", "/logout", Some(&old)).await;
    assert!(
        logout.set_cookie.is_none(),
        "a logout with the old id cleared the cookie"
    );

    assert_eq!(send(&app, "GET", "/me", Some(&new)).await.body, "alice");
    assert_eq!(send(&app, "GET", "/read", Some(&new)).await.body, "1");
}

#[tokio::test]
async fn a_request_in_flight_during_login_does_not_replace_the_new_cookie() {
    let store = Arc::new(MemoryStore::new());
    let gate = Gate::default();
    let app = app(store.clone(), None, gate.clone());
    let old = send(&app, "POST", "/incr", None).await.cookie();

    let in_flight = {
        let (app, old) = (app.clone(), old.clone());
        tokio::spawn(async move { send(&app, "POST", "/slow", Some(&old)).await })
    };
    gate.read.notified().await;
    let new = send(&app, "POST", "/login", Some(&old)).await.cookie();
    gate.go.notify_one();
    let straggler = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("the in-flight request finishes")
        .unwrap();
    assert_eq!(straggler.status, 200);
    assert!(straggler.set_cookie.is_none(), "{straggler:?}");
    assert_eq!(send(&app, "GET", "/me", Some(&new)).await.body, "alice");
    assert_eq!(send(&app, "GET", "/read", Some(&new)).await.body, "1");
}

#[tokio::test]
async fn without_grace_or_after_it_a_straggler_starts_a_new_session() {
    // Grace off: the old id's write starts a fresh anonymous session and sets its
    // cookie (what the grace exists to prevent).
    let store = Arc::new(MemoryStore::new());
    let app = app(store.clone(), Some(Duration::ZERO), Gate::default());
    let old = send(&app, "POST", "/incr", None).await.cookie();
    send(&app, "POST", "/login", Some(&old)).await;
    let straggler = send(&app, "POST", "/incr", Some(&old)).await;
    assert!(straggler.set_cookie.is_some(), "{straggler:?}");

    // A short grace, over: the same.
    let app = app_with_short_grace();
    let old = send(&app, "POST", "/incr", None).await.cookie();
    send(&app, "POST", "/login", Some(&old)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let late = send(&app, "POST", "/incr", Some(&old)).await;
    assert!(late.set_cookie.is_some(), "{late:?}");
    assert_eq!(late.body, "1");
}

fn app_with_short_grace() -> Router {
    app(
        Arc::new(MemoryStore::new()),
        Some(Duration::from_millis(200)),
        Gate::default(),
    )
}

#[tokio::test]
async fn a_login_with_an_unknown_id_starts_a_session_despite_its_own_marker() {
    // The login leaves a grace marker for the id it rotates before rotating it; when
    // that id turns out unknown, the login must still start a session.
    let store = Arc::new(MemoryStore::new());
    let app = app(store, None, Gate::default());
    let stranger = format!("__Host-tether={}", tether::Id::generate().unwrap());
    let login = send(&app, "POST", "/login", Some(&stranger)).await;
    assert!(login.set_cookie.is_some(), "{login:?}");
    assert_eq!(
        send(&app, "GET", "/me", Some(&login.cookie())).await.body,
        "alice"
    );
}
