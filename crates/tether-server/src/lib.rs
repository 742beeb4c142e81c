//! Serving HTTP/1 with bounds a slow or hostile client cannot get around: a time limit
//! for request headers (also the idle limit of a kept-alive connection), a deadline
//! for a request's body, and a cap on open connections. Every listener tether's
//! binaries open serves through it: the demo app's, its metrics', the balancer's and
//! the balancer's admin API. [`TrustedProxies`] says whose `X-Forwarded-For` a
//! server believes.
//!
//! | bound | default | nginx's equivalent |
//! |---|---|---|
//! | [`Limits::header_read_timeout`] | 10 s | `client_header_timeout` (60 s) and `keepalive_timeout` (75 s) |
//! | [`Limits::body_read_timeout`] | 15 s | `client_body_timeout` (60 s, between reads) |
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
//! use tether_server::{Limits, serve};
//! let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! serve(listener, app, Limits::default(), std::future::pending()).await
//! # }
//! ```

mod body;
mod connections;
mod forwarded;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower_service::Service as _;

pub use crate::body::BodyTimeout;
use crate::body::{Counted, Deadline};
use crate::connections::{Activity, Busy, Open, Registry};
pub use crate::forwarded::{TrustedProxies, TrustedProxyError, X_FORWARDED_FOR};

/// The bounds of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a client may take to send a request's headers, and how long a
    /// kept-alive connection may sit idle between requests.
    pub header_read_timeout: Duration,
    /// How long a request's body may take to arrive in full, counted from its
    /// headers; past it, the handler reading the body gets a [`BodyTimeout`] error
    /// (axum answers `400`) and the connection closes.
    pub body_read_timeout: Duration,
    /// The most connections open at once.
    pub max_connections: usize,
}

impl Default for Limits {
    /// 10 s for headers; 15 s for a body; 512 connections.
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(15),
            max_connections: 512,
        }
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
            let mut req = req.map(|body| Body::new(Deadline::new(body, limits.body_read_timeout)));
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
