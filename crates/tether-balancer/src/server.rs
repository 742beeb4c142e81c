//! Serving HTTP/1 with bounds a slow or hostile client cannot get around: a time limit
//! for request headers (also the idle limit of a kept-alive connection) and a cap on
//! open connections. The balancer and the demo app serve through it.
//!
//! | bound | default | nginx's equivalent |
//! |---|---|---|
//! | [`Limits::header_read_timeout`] | 10 s | `client_header_timeout` (60 s) and `keepalive_timeout` (75 s) |
//! | [`Limits::max_connections`] | 512 | `worker_connections` (512) |
//!
//! At the cap, a new connection makes room by closing the connection that has been
//! idle (no request in progress, no response still being sent) the longest, as nginx
//! reuses kept-alive connections when it runs out. When every connection is busy, one
//! busy for over a minute (a request body trickled in, a response its client does not
//! read: nginx's `client_body_timeout` and `send_timeout`) makes room; else the new one
//! is closed at once. So idle, half-sent or stalled connections can never lock out a
//! real request for long.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use tether_balancer::server::{Limits, serve};
//! let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! serve(listener, app, Limits::default(), std::future::pending()).await
//! # }
//! ```

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower_service::Service as _;

/// The bounds of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a client may take to send a request's headers, and how long a
    /// kept-alive connection may sit idle between requests.
    pub header_read_timeout: Duration,
    /// The most connections open at once.
    pub max_connections: usize,
}

impl Default for Limits {
    /// 10 s for headers; 512 connections.
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 512,
        }
    }
}

/// One open connection: how many requests it is serving (until each response's body
/// is sent), since when it has been idle, and how to close it.
struct Open {
    activity: Arc<Activity>,
    close: Arc<Notify>,
}

/// What a connection is doing, shared by its requests.
struct Activity {
    busy: AtomicUsize,
    /// Milliseconds after the server's start at which it last went idle.
    idle_since: AtomicU64,
    /// Milliseconds after the server's start at which it last went busy.
    busy_since: AtomicU64,
    start: Instant,
}

impl Activity {
    fn new(start: Instant) -> Self {
        let activity = Self {
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            busy_since: AtomicU64::new(0),
            start,
        };
        activity.mark_idle();
        activity
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn mark_idle(&self) {
        self.idle_since.store(self.now_ms(), Ordering::SeqCst);
    }
}

/// How long a connection may stay busy (a request body trickled in, a response its
/// client never reads) before it may be closed to make room when every other
/// connection is busy too: nginx's `client_body_timeout` and `send_timeout` (60 s).
const STALLED_MS: u64 = 60_000;

impl Activity {
    fn stalled(&self, now_ms: u64) -> Option<u64> {
        let since = self.busy_since.load(Ordering::SeqCst);
        (self.busy.load(Ordering::SeqCst) > 0 && now_ms.saturating_sub(since) > STALLED_MS)
            .then_some(since)
    }
}

/// The open connections, oldest first (ids grow with each accept).
#[derive(Default)]
struct Registry {
    open: Mutex<BTreeMap<u64, Open>>,
}

impl Registry {
    fn open(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Open>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes room for one more connection, closing the one idle the longest: `false`
    /// when every connection is busy.
    fn make_room(&self, max: usize) -> bool {
        let mut open = self.open();
        if open.len() < max {
            return true;
        }
        let idle = open
            .iter()
            .filter(|(_, c)| c.activity.busy.load(Ordering::SeqCst) == 0)
            .min_by_key(|(_, c)| c.activity.idle_since.load(Ordering::SeqCst))
            .map(|(id, _)| *id)
            .or_else(|| {
                // Every connection is busy: one stalled for over a minute goes.
                open.iter()
                    .filter_map(|(id, c)| {
                        let now = c.activity.now_ms();
                        c.activity.stalled(now).map(|since| (since, *id))
                    })
                    .min()
                    .map(|(_, id)| id)
            });
        match idle.and_then(|id| open.remove(&id)) {
            Some(evicted) => {
                evicted.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Counts a request in progress on its connection while alive: from the request's
/// arrival until its response's body has been sent (or dropped).
struct Busy(Arc<Activity>);

impl Busy {
    fn new(activity: &Arc<Activity>) -> Self {
        if activity.busy.fetch_add(1, Ordering::SeqCst) == 0 {
            activity
                .busy_since
                .store(activity.now_ms(), Ordering::SeqCst);
        }
        Self(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.mark_idle();
        }
    }
}

/// A response body that keeps its connection busy until it is sent or dropped, so a
/// download in progress is never taken for an idle connection.
struct Counted {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then stops
/// accepting, lets requests in progress finish, and returns. Handlers can take
/// `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let registry = Arc::new(Registry::default());
    let start = Instant::now();
    let (stop, stopping) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut next_id = 0u64;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors, say: wait a moment rather than spin.
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while tasks.try_join_next().is_some() {}
        if !registry.make_room(limits.max_connections.max(1)) {
            drop(stream);
            continue;
        }
        next_id += 1;
        let id = next_id;
        let activity = Arc::new(Activity::new(start));
        let close = Arc::new(Notify::new());
        registry.open().insert(
            id,
            Open {
                activity: activity.clone(),
                close: close.clone(),
            },
        );
        let app = app.clone();
        let watched = activity.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let busy = Busy::new(&activity);
            let mut req = req.map(Body::new);
            req.extensions_mut()
                .insert(ConnectInfo::<std::net::SocketAddr>(peer));
            let mut app = app.clone();
            async move {
                let response = app.call(req).await?;
                Ok::<_, std::convert::Infallible>(
                    response.map(|body| Counted { body, _busy: busy }),
                )
            }
        });
        let registry = registry.clone();
        let mut stopping = stopping.clone();
        tasks.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let mut closing = false;
            loop {
                tokio::select! {
                    _ = conn.as_mut() => break,
                    // Evicted to make room. Idle (a half-sent request never arrived)
                    // or stalled for over a minute: closed at once. A request that
                    // began since it was chosen finishes first.
                    () = close.notified() => {
                        if watched.busy.load(Ordering::SeqCst) == 0
                            || watched.stalled(watched.now_ms()).is_some()
                        {
                            break;
                        }
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    _ = stopping.changed(), if !closing => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            registry.open().remove(&id);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}
