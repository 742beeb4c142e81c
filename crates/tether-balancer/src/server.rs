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
//! idle (no request in progress) the longest, as nginx reuses kept-alive connections
//! when it runs out; when every connection is busy, the new one is closed at once. So
//! idle or half-sent connections can never lock out a real request for long.
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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
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

/// One open connection: how many requests it is serving, and how to close it.
struct Open {
    busy: Arc<AtomicUsize>,
    close: Arc<Notify>,
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

    /// Makes room for one more connection: `false` when every connection is busy.
    fn make_room(&self, max: usize) -> bool {
        let mut open = self.open();
        if open.len() < max {
            return true;
        }
        let idle = open
            .iter()
            .find(|(_, c)| c.busy.load(Ordering::SeqCst) == 0)
            .map(|(id, _)| *id);
        match idle.and_then(|id| open.remove(&id)) {
            Some(evicted) => {
                evicted.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Counts a request in progress on its connection while alive.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
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
        let busy = Arc::new(AtomicUsize::new(0));
        let close = Arc::new(Notify::new());
        registry.open().insert(
            id,
            Open {
                busy: busy.clone(),
                close: close.clone(),
            },
        );
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let busy = Busy::new(&busy);
            let mut req = req.map(Body::new);
            req.extensions_mut()
                .insert(ConnectInfo::<std::net::SocketAddr>(peer));
            let mut app = app.clone();
            async move {
                let response = app.call(req).await;
                drop(busy);
                response
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
                    // Evicted to make room: it had no request in progress, so closing
                    // it at once loses nothing (a half-sent request never arrived).
                    () = close.notified() => break,
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
