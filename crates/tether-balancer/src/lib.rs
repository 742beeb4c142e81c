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
//! - `ip-hash`: by client address (the L4 answer). With `trust_forwarded_for`, the first
//!   address in `X-Forwarded-For` counts (for load generators that simulate clients).
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
//! Unhealthy backends (no 2xx from `GET /healthz`, or a failed request) are skipped
//! until a health check passes again. As with nginx's default `proxy_next_upstream
//! error`, a request whose backend fails before answering goes to the next backend the
//! strategy picks when that is safe: the connection was refused (the request never
//! reached the backend), or the method is idempotent (`GET`, `HEAD`, `PUT`, `DELETE`,
//! …). A `POST` that fails after it was sent is answered `502`, not sent again. Request
//! bodies are read before forwarding, up to [`MAX_REQUEST_BODY`] (larger: `413`).

mod ring;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub use crate::ring::{Ring, Strategy, hash, ip_index, modulo_index};

/// The routing cookie the balancer sets for `cookie-hash` and `modulo-hash`.
pub const ROUTE_COOKIE: &str = "tether_route";

/// Balancer settings.
#[derive(Debug, Clone)]
pub struct Config {
    backends: Vec<String>,
    strategy: Strategy,
    hash_cookie: String,
    trust_forwarded_for: bool,
    health_interval: Duration,
    log_requests: bool,
}

impl Config {
    /// Round-robin over `backends` (base URLs such as `http://127.0.0.1:9001`).
    pub fn new(backends: Vec<String>) -> Self {
        Self {
            backends: backends
                .into_iter()
                .map(|b| b.trim_end_matches('/').to_owned())
                .collect(),
            strategy: Strategy::RoundRobin,
            hash_cookie: ROUTE_COOKIE.to_owned(),
            trust_forwarded_for: false,
            health_interval: Duration::from_secs(1),
            log_requests: true,
        }
    }

    /// The strategy.
    #[must_use]
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// The cookie `cookie-hash` and `modulo-hash` hash (default [`ROUTE_COOKIE`]).
    #[must_use]
    pub fn hash_cookie(mut self, name: impl Into<String>) -> Self {
        self.hash_cookie = name.into();
        self
    }

    /// Take the client address for `ip-hash` from `X-Forwarded-For`.
    #[must_use]
    pub fn trust_forwarded_for(mut self, trust: bool) -> Self {
        self.trust_forwarded_for = trust;
        self
    }

    /// How often backends are checked (default 1 s).
    #[must_use]
    pub fn health_interval(mut self, every: Duration) -> Self {
        self.health_interval = every;
        self
    }

    /// Print one line per routed request (default on).
    #[must_use]
    pub fn log_requests(mut self, log: bool) -> Self {
        self.log_requests = log;
        self
    }
}

#[derive(Debug)]
struct Backend {
    url: String,
    healthy: AtomicBool,
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
        Self {
            inner: Arc::new(Inner {
                config,
                pool: RwLock::new(Arc::new(pool)),
                next: AtomicUsize::new(0),
                client: Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(30))
                    .build_http(),
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

    /// The app: every path is proxied, except `PUT /_balancer/backends` (one URL per
    /// line: reconfigure) and `GET /_balancer/backends` (the pool and its health).
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .route(
                "/_balancer/backends",
                axum::routing::get(show_backends).put(put_backends),
            )
            .fallback(proxy)
            .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BODY))
            .with_state(self.clone())
    }

    /// Serves on `listener` until the process ends, checking backend health meanwhile.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        tokio::spawn(health_loop(self.clone()));
        axum::serve(
            listener,
            self.router()
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
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

async fn show_backends(State(balancer): State<Balancer>) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for b in &balancer.pool().backends {
        let _ = writeln!(
            out,
            "{} {} served={} in_flight={}",
            b.url,
            if b.healthy.load(Ordering::Relaxed) {
                "up"
            } else {
                "down"
            },
            b.served.load(Ordering::Relaxed),
            b.in_flight.load(Ordering::Relaxed)
        );
    }
    out
}

async fn put_backends(State(balancer): State<Balancer>, body: String) -> StatusCode {
    let urls: Vec<String> = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if urls.is_empty() {
        return StatusCode::BAD_REQUEST;
    }
    println!("balancer: backends now {}", urls.join(" "));
    balancer.set_backends(urls);
    StatusCode::NO_CONTENT
}

fn client_ip(balancer: &Balancer, peer: SocketAddr, headers: &http::HeaderMap) -> IpAddr {
    if balancer.inner.config.trust_forwarded_for
        && let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return ip;
    }
    peer.ip()
}

struct InFlight(Arc<Backend>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The largest request body the balancer forwards. It reads the body before it
/// forwards the request (as nginx does by default), so that a request can go to the
/// next backend when the first fails.
pub const MAX_REQUEST_BODY: usize = 1 << 20;

async fn proxy(
    State(balancer): State<Balancer>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut parts: http::request::Parts,
    // Read whole, up to `MAX_REQUEST_BODY` (the router's `DefaultBodyLimit`; `413`
    // above it), so that the request can be sent again.
    body: Bytes,
) -> Response {
    let client = client_ip(&balancer, peer, &parts.headers);
    let forwarded = match parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(prior) => format!("{prior}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded) {
        parts.headers.insert("x-forwarded-for", value);
    }
    parts
        .headers
        .insert("x-forwarded-proto", HeaderValue::from_static("http"));
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();

    // A backend that failed is marked down, and a request that is safe to send again
    // goes to the next one the strategy picks: as many tries as there are backends.
    let pool = balancer.pool();
    let mut failed = None;
    for _ in 0..pool.backends.len().max(1) {
        let Some(route) = balancer.choose(&pool, client, &parts.headers) else {
            break;
        };
        let Ok(uri) = format!("{}{path}", route.backend.url).parse::<Uri>() else {
            return (StatusCode::BAD_REQUEST, "400 Bad Request: bad path\n").into_response();
        };
        let mut req = http::Request::from_parts(parts.clone(), Body::from(body.clone()));
        *req.uri_mut() = uri;
        match forward(&balancer, route, req, &path).await {
            Ok(response) => return response,
            Err(Failed(url)) => failed = Some(url),
        }
    }
    match failed {
        Some(url) => (
            StatusCode::BAD_GATEWAY,
            format!("502 Bad Gateway: backend {url} did not answer\n"),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Unavailable: no healthy backend\n",
        )
            .into_response(),
    }
}

/// The backend (by URL) failed before answering a request that is safe to send again.
struct Failed(String);

/// Sends `req` to the route's backend. A non-idempotent request that fails after the
/// connection was made is a `502` answer: the backend may have acted on it, so it is
/// not sent again.
async fn forward(
    balancer: &Balancer,
    route: Route,
    req: http::Request<Body>,
    path: &str,
) -> Result<Response, Failed> {
    let backend = route.backend;
    backend.in_flight.fetch_add(1, Ordering::Relaxed);
    let _in_flight = InFlight(backend.clone());
    let method = req.method().clone();
    match balancer.inner.client.request(req).await {
        Ok(response) => {
            backend.served.fetch_add(1, Ordering::Relaxed);
            let mut response = response.map(Body::new);
            if balancer.inner.config.log_requests {
                let instance = response
                    .headers()
                    .get("x-instance")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                println!(
                    "{method} {path} -> {instance} ({}) {}",
                    backend.url,
                    response.status().as_u16()
                );
            }
            if let Some(key) = route.set_cookie
                && let Ok(value) = HeaderValue::from_str(&format!(
                    "{ROUTE_COOKIE}={key}; Path=/; HttpOnly; SameSite=Lax"
                ))
            {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            Ok(response)
        }
        Err(e) => {
            if backend.healthy.swap(false, Ordering::Relaxed) {
                println!("balancer: {} is down ({e})", backend.url);
            }
            if e.is_connect() || method.is_idempotent() {
                return Err(Failed(backend.url.clone()));
            }
            Ok((
                StatusCode::BAD_GATEWAY,
                format!("502 Bad Gateway: backend {} did not answer\n", backend.url),
            )
                .into_response())
        }
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
            let up = matches!(check, Ok(Ok(ref r)) if r.status().is_success());
            let was = backend.healthy.swap(up, Ordering::Relaxed);
            if was != up {
                println!(
                    "balancer: {} is {}",
                    backend.url,
                    if up { "up" } else { "down" }
                );
            }
        }
        tokio::time::sleep(every).await;
    }
}
