//! A small reverse proxy for the tether demo and lab.
//!
//! Production deployments use nginx (see `examples/nginx`); this one exists so the
//! demo runs with nothing installed and so the lab can measure each routing strategy.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use tether_balancer::{Balancer, Config, Strategy};
//!
//! let config = Config::new(vec!["http://127.0.0.1:9001".into(), "http://127.0.0.1:9002".into()])
//!     .strategy(Strategy::CookieHash);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! Balancer::new(config).serve(listener).await
//! # }
//! ```
//!
//! # Strategies
//!
//! - `round-robin`: each request to the next healthy backend.
//! - `ip-hash`: by client address (the L4 answer): the connection's peer, or, for a
//!   connection from a [trusted proxy](Config::trusted_proxies), the rightmost
//!   untrusted address of its `X-Forwarded-For`.
//! - `cookie-hash`: consistent hashing with bounded load (the L7 answer). The key is the
//!   cookie named by `hash_cookie`, by default the balancer's own `tether_route`. A
//!   request without it gets a random key, drawn again while the backend it maps to
//!   has more than 1.25× its share of in-flight requests, and the response sets it as
//!   the cookie, so the client stays on that backend. A pool change moves about 1/N of
//!   the keys. Hashing the session cookie itself (`hash_cookie = "tether"`) is possible
//!   but cannot keep a memory-store login sticky: the id changes at login.
//! - `modulo-hash`: the same key, modulo the pool size; for contrast in the lab, since a
//!   pool change moves most keys.
//!
//! Unhealthy backends are skipped until a health check passes again. A backend is
//! unhealthy after a request to it failed, or after
//! [three health checks in a row](Config::unhealthy_after) got no 2xx from
//! `GET /healthz` in time (HAProxy's default `fall 3`): one slow check under load does
//! not move a backend's sticky clients, and with them every session only it holds.
//! As with nginx's default `proxy_next_upstream
//! error`, a request whose backend fails before answering goes to the next backend the
//! strategy picks when that is safe: the connection was refused (the request never
//! reached the backend), or the method is idempotent (`GET`, `HEAD`, `PUT`, `DELETE`,
//! …). A `POST` that fails after it was sent is answered `502`, not sent again. Request
//! bodies are read before forwarding, up to [`MAX_REQUEST_BODY`] (larger: `413`).
//!
//! # Security and bounds
//!
//! | what | default | nginx's equivalent |
//! |---|---|---|
//! | admin API (pool changes, status) | off; [`Balancer::serve_admin`] on its own listener, token required | `api` / `status` in a separate `server` |
//! | `X-Forwarded-For` from the client | dropped unless the peer is a trusted proxy; the peer's address appended | `set_real_ip_from`, `real_ip_recursive on`, `$proxy_add_x_forwarded_for` |
//! | hop-by-hop headers | removed both ways ([`strip_hop_by_hop`]) | always |
//! | `/_tether/…` (replication) | never forwarded: `404` | `location /_tether/ { return 404; }` |
//! | connect timeout | 3 s, then the next backend | `proxy_connect_timeout` (60 s) |
//! | response timeout | 30 s, then `504` | `proxy_read_timeout` (60 s) |
//! | request header timeout, idle keep-alive | 10 s | `client_header_timeout` (60 s), `keepalive_timeout` (75 s) |
//! | connections | 512, the longest-idle closed to make room | `worker_connections` (512) |
//! | request body | 1 MiB, `413` above | `client_max_body_size` (1 MiB) |
//!
//! Error answers (`502`, `503`, `504`) name no backend.

mod admin;
mod config;
mod proxy;
mod ring;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The bounded HTTP/1 server the balancer (and tether's other binaries) listen with.
pub use tether_server as server;

pub use crate::admin::AdminToken;
pub use crate::config::{Config, ConfigError, MIN_TOKEN_LEN};
pub use crate::proxy::strip_hop_by_hop;
pub use crate::ring::{Ring, Strategy, hash, ip_index, modulo_index};
pub use tether_server::{TrustedProxies, TrustedProxyError, X_FORWARDED_FOR};

/// The routing cookie the balancer sets for `cookie-hash` and `modulo-hash`.
pub const ROUTE_COOKIE: &str = "tether_route";

/// The largest request body the balancer forwards. It reads the body before it
/// forwards the request (as nginx does by default), so that a request can go to the
/// next backend when the first fails.
pub const MAX_REQUEST_BODY: usize = 1 << 20;

#[derive(Debug)]
struct Backend {
    url: String,
    healthy: AtomicBool,
    /// Health checks failed in a row.
    failed_checks: AtomicU32,
    in_flight: AtomicUsize,
    served: AtomicU64,
}

#[derive(Debug)]
struct Pool {
    backends: Vec<Arc<Backend>>,
    ring: Ring,
}

impl Pool {
    fn new(urls: &[String], previous: Option<&Pool>) -> Self {
        let backends = urls
            .iter()
            .map(|url| {
                previous
                    .and_then(|p| p.backends.iter().find(|b| &b.url == url).cloned())
                    .unwrap_or_else(|| {
                        Arc::new(Backend {
                            url: url.clone(),
                            healthy: AtomicBool::new(true),
                            failed_checks: AtomicU32::new(0),
                            in_flight: AtomicUsize::new(0),
                            served: AtomicU64::new(0),
                        })
                    })
            })
            .collect();
        Self {
            backends,
            ring: Ring::new(urls),
        }
    }

    fn healthy(&self, i: usize) -> bool {
        self.backends[i].healthy.load(Ordering::Relaxed)
    }

    /// The first healthy backend in `order`.
    fn first_healthy(&self, order: impl IntoIterator<Item = usize>) -> Option<usize> {
        order.into_iter().find(|i| self.healthy(*i))
    }

    fn from(&self, start: usize) -> impl Iterator<Item = usize> + '_ {
        let n = self.backends.len();
        (0..n).map(move |k| (start + k) % n)
    }
}

/// The proxy.
#[derive(Debug, Clone)]
pub struct Balancer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    pool: RwLock<Arc<Pool>>,
    next: AtomicUsize,
    client: Client<HttpConnector, Body>,
}

/// What the routing decided for one request.
struct Route {
    backend: Arc<Backend>,
    set_cookie: Option<String>,
}

fn cookie_value<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

fn random_key() -> String {
    let mut bytes = [0u8; 16];
    // A predictable routing key is harmless (it only picks a backend).
    if getrandom::fill(&mut bytes).is_err() {
        bytes = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            .to_le_bytes();
    }
    hex::encode(bytes)
}

impl Balancer {
    /// A balancer with `config`; start it with [`Balancer::serve`].
    pub fn new(config: Config) -> Self {
        let pool = Pool::new(&config.backends, None);
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        Self {
            inner: Arc::new(Inner {
                pool: RwLock::new(Arc::new(pool)),
                next: AtomicUsize::new(0),
                client: Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(30))
                    .build(connector),
                config,
            }),
        }
    }

    fn pool(&self) -> Arc<Pool> {
        self.inner
            .pool
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the backends while running (scale-out, scale-in); backends that stay
    /// keep their health and counters.
    pub fn set_backends(&self, urls: Vec<String>) {
        let urls: Vec<String> = urls
            .into_iter()
            .map(|b| b.trim_end_matches('/').to_owned())
            .collect();
        let mut pool = self
            .inner
            .pool
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = Pool::new(&urls, Some(&pool));
        *pool = Arc::new(next);
    }

    /// Requests served per backend URL so far.
    pub fn served(&self) -> Vec<(String, u64)> {
        self.pool()
            .backends
            .iter()
            .map(|b| (b.url.clone(), b.served.load(Ordering::Relaxed)))
            .collect()
    }

    /// The proxied app: every path goes to a backend, except `/_tether/…` (`404`).
    /// Handlers need `ConnectInfo<SocketAddr>`, which [`server::serve`] provides.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .fallback(proxy::proxy)
            .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BODY))
            .with_state(self.clone())
    }

    /// The admin app, for its own listener: `GET /_balancer/backends` (a line per
    /// backend: `URL up|down served=N in_flight=N`) and `PUT /_balancer/backends` (one
    /// URL per line: the new pool). Every request needs `Authorization: Bearer TOKEN`.
    pub fn admin_router(&self, token: AdminToken) -> axum::Router {
        admin::router(self.clone(), token)
    }

    /// Serves the proxy on `listener` until the process ends, checking backend health
    /// meanwhile.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        tokio::spawn(health_loop(self.clone()));
        let limits = self.inner.config.limits;
        server::serve(listener, self.router(), limits, std::future::pending()).await
    }

    /// Serves the admin API on its own `listener` (keep it on loopback or a private
    /// network) until the process ends, within the proxy listener's limits.
    pub async fn serve_admin(
        self,
        listener: tokio::net::TcpListener,
        token: AdminToken,
    ) -> std::io::Result<()> {
        let app = self.admin_router(token);
        let limits = self.inner.config.limits;
        server::serve(listener, app, limits, std::future::pending()).await
    }

    fn choose(&self, pool: &Pool, client: IpAddr, headers: &http::HeaderMap) -> Option<Route> {
        let n = pool.backends.len();
        if n == 0 {
            return None;
        }
        let config = &self.inner.config;
        let round_robin =
            || pool.first_healthy(pool.from(self.inner.next.fetch_add(1, Ordering::Relaxed) % n));
        let (index, set_cookie) = match config.strategy {
            Strategy::RoundRobin => (round_robin()?, None),
            Strategy::IpHash => (
                pool.first_healthy(pool.from(ring::ip_index(client, n)))?,
                None,
            ),
            Strategy::CookieHash | Strategy::ModuloHash => {
                let locate = |key: &str| match config.strategy {
                    Strategy::ModuloHash => {
                        pool.first_healthy(pool.from(ring::modulo_index(key.as_bytes(), n)))
                    }
                    _ => pool.first_healthy(pool.ring.walk(key.as_bytes())),
                };
                match cookie_value(headers, &config.hash_cookie) {
                    Some(key) => (locate(key)?, None),
                    None if config.hash_cookie == ROUTE_COOKIE => {
                        let (index, key) = Self::draw_key(pool, &locate)?;
                        (index, Some(key))
                    }
                    None => (round_robin()?, None),
                }
            }
        };
        Some(Route {
            backend: pool.backends[index].clone(),
            set_cookie,
        })
    }

    /// A new routing key whose backend is not over its share of in-flight requests.
    fn draw_key(pool: &Pool, locate: &dyn Fn(&str) -> Option<usize>) -> Option<(usize, String)> {
        let healthy = (0..pool.backends.len())
            .filter(|i| pool.healthy(*i))
            .count()
            .max(1);
        let total: usize = pool
            .backends
            .iter()
            .map(|b| b.in_flight.load(Ordering::Relaxed))
            .sum();
        let bound = ((total + 1) * 5).div_ceil(4 * healthy);
        let mut fallback = None;
        for _ in 0..16 {
            let key = random_key();
            let index = locate(&key)?;
            if pool.backends[index].in_flight.load(Ordering::Relaxed) < bound.max(1) {
                return Some((index, key));
            }
            fallback.get_or_insert((index, key));
        }
        fallback
    }
}

async fn health_loop(balancer: Balancer) {
    let every = balancer.inner.config.health_interval;
    loop {
        let pool = balancer.pool();
        for backend in &pool.backends {
            let Ok(uri) = format!("{}/healthz", backend.url).parse::<Uri>() else {
                continue;
            };
            let Ok(request) = http::Request::get(uri).body(Body::empty()) else {
                continue;
            };
            let check = tokio::time::timeout(
                every.max(Duration::from_millis(500)),
                balancer.inner.client.request(request),
            )
            .await;
            let passed = matches!(check, Ok(Ok(ref r)) if r.status().is_success());
            let failed_in_a_row = if passed {
                backend.failed_checks.store(0, Ordering::Relaxed);
                0
            } else {
                backend.failed_checks.fetch_add(1, Ordering::Relaxed) + 1
            };
            if !passed && failed_in_a_row < balancer.inner.config.unhealthy_after {
                continue;
            }
            let was = backend.healthy.swap(passed, Ordering::Relaxed);
            if was != passed {
                println!(
                    "balancer: {} is {}",
                    backend.url,
                    if passed { "up" } else { "down" }
                );
            }
        }
        tokio::time::sleep(every).await;
    }
}
