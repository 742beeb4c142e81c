//! A session used after its response (a spawned task, a WebSocket loop): a plain
//! handle refuses instead of pretending to save and never takes the lock again; a
//! detached one saves.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tether::{LockOptions, MemoryStore, Session, SessionError, SessionLayer};
use tether_testkit::http::send;
use tokio::sync::{mpsc, oneshot};

/// Where a late task reports the outcome of its session call.
type Report = mpsc::UnboundedSender<Result<(), SessionError>>;

/// What a task spawned by a handler reports, and the go-ahead it waits for.
#[derive(Clone, Default)]
struct Late {
    go: Arc<Mutex<Option<oneshot::Receiver<()>>>>,
    done: Arc<Mutex<Option<Report>>>,
}

impl Late {
    fn arm(
        &self,
    ) -> (
        oneshot::Sender<()>,
        mpsc::UnboundedReceiver<Result<(), SessionError>>,
    ) {
        let (go, wait) = oneshot::channel();
        let (done, results) = mpsc::unbounded_channel();
        *self.go.lock().unwrap() = Some(wait);
        *self.done.lock().unwrap() = Some(done);
        (go, results)
    }

    fn take(
        &self,
    ) -> (
        oneshot::Receiver<()>,
        mpsc::UnboundedSender<Result<(), SessionError>>,
    ) {
        (
            self.go.lock().unwrap().take().unwrap(),
            self.done.lock().unwrap().take().unwrap(),
        )
    }
}

fn app(layer: SessionLayer, late: Late) -> Router {
    let plain = late.clone();
    let detached = late;
    Router::new()
        .route(
            "/plain",
            post(move |session: Session| {
                let (go, done) = plain.take();
                async move {
                    session.insert("now", 1).await?;
                    tokio::spawn(async move {
                        let _ = go.await;
                        let result = session.insert("late", 1).await;
                        let _ = done.send(result);
                        // Kept until the test is over, as a WebSocket loop keeps it.
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        drop(session);
                    });
                    Ok::<_, SessionError>("ok")
                }
            }),
        )
        .route(
            "/detached",
            post(move |session: Session| {
                let (go, done) = detached.take();
                async move {
                    session.insert("now", 1).await?;
                    let session = session.detach();
                    tokio::spawn(async move {
                        let _ = go.await;
                        let _ = done.send(session.insert("late", 1).await);
                    });
                    Ok::<_, SessionError>("ok")
                }
            }),
        )
        .route(
            "/late",
            get(|session: Session| async move {
                Ok::<_, SessionError>(format!("{:?}", session.get::<u64>("late").await?))
            }),
        )
        .layer(layer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_handle_refuses_after_the_response_and_takes_no_lock() {
    for layer in [
        SessionLayer::new(MemoryStore::new()),
        SessionLayer::new(MemoryStore::new()).with_lock(LockOptions {
            wait: Duration::from_secs(1),
            ..LockOptions::default()
        }),
    ] {
        let late = Late::default();
        let app = app(layer, late.clone());
        let (go, mut results) = late.arm();
        let reply = send(&app, "POST", "/plain", None).await;
        assert_eq!(reply.status, 200);
        let cookie = reply.cookie();
        go.send(()).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(10), results.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(result, Err(SessionError::AfterResponse)),
            "a write after the response: {result:?}"
        );
        // The late call took no lock: the session's next request is not held up (in
        // lock mode it would wait a second and fail).
        let next = send(&app, "GET", "/late", Some(&cookie)).await;
        assert_eq!(next.status, 200, "{}", next.body);
        assert_eq!(next.body, "None");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_handle_saves_after_the_response() {
    for layer in [
        SessionLayer::new(MemoryStore::new()),
        SessionLayer::new(MemoryStore::new()).with_lock(LockOptions::default()),
    ] {
        let late = Late::default();
        let app = app(layer, late.clone());
        let (go, mut results) = late.arm();
        let reply = send(&app, "POST", "/detached", None).await;
        let cookie = reply.cookie();
        go.send(()).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(10), results.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(
            send(&app, "GET", "/late", Some(&cookie)).await.body,
            "Some(1)"
        );
    }
}

/// A request abandoned while a task keeps a clone of its session (the client went
/// away mid-handler) leaves no lock behind: the session's next request goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_request_leaves_no_lock_behind_a_kept_clone() {
    use tower::ServiceExt as _;
    let layer = SessionLayer::new(MemoryStore::new()).with_lock(LockOptions {
        wait: Duration::from_secs(1),
        ..LockOptions::default()
    });
    let app = Router::new()
        .route(
            "/hang",
            post(|session: Session| async move {
                session.insert("n", 1).await?;
                let kept = session.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    drop(kept);
                });
                std::future::pending::<()>().await;
                Ok::<_, SessionError>("never")
            }),
        )
        .route(
            "/late",
            get(|session: Session| async move {
                Ok::<_, SessionError>(format!("{:?}", session.get::<u64>("late").await?))
            }),
        )
        .route(
            "/start",
            post(|session: Session| async move {
                session.insert("late", 0).await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .layer(layer);
    let cookie = send(&app, "POST", "/start", None).await.cookie();
    let request = axum::http::Request::post("/hang")
        .header("cookie", &cookie)
        .body(axum::body::Body::empty())
        .unwrap();
    // The client gives up: the response future is dropped mid-handler.
    let abandoned = tokio::time::timeout(Duration::from_millis(300), app.clone().oneshot(request));
    assert!(abandoned.await.is_err());
    let next = send(&app, "GET", "/late", Some(&cookie)).await;
    assert_eq!(
        next.status, 200,
        "the abandoned request's lock held: {}",
        next.body
    );
}
