//! The balancer's settings and the mistakes in them it refuses.

use std::time::Duration;

use axum::http::Uri;

use crate::{ROUTE_COOKIE, Strategy, TrustedProxies, server};

/// The shortest admin token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// A setting the balancer cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An admin token that is too short to be a secret.
    #[error(
        "the admin token must be at least {MIN_TOKEN_LEN} characters (generate one with: head -c 24 /dev/urandom | base64)"
    )]
    AdminToken,
    /// A backend that is not an `http://host:port` URL.
    #[error("backend {0:?} is not an http://host:port URL")]
    Backend(String),
}

/// Checks that every backend is an `http://host[:port]` base URL.
pub(crate) fn check_backends(urls: &[String]) -> Result<(), ConfigError> {
    for url in urls {
        let ok = url.parse::<Uri>().is_ok_and(|uri| {
            uri.scheme_str() == Some("http")
                && uri.host().is_some()
                && uri.path_and_query().is_none_or(|p| p.as_str() == "/")
        });
        if !ok {
            return Err(ConfigError::Backend(url.clone()));
        }
    }
    Ok(())
}

/// Balancer settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) backends: Vec<String>,
    pub(crate) strategy: Strategy,
    pub(crate) hash_cookie: String,
    pub(crate) trusted_proxies: TrustedProxies,
    pub(crate) health_interval: Duration,
    pub(crate) unhealthy_after: u32,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) limits: server::Limits,
    pub(crate) log_requests: bool,
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
            trusted_proxies: TrustedProxies::none(),
            health_interval: Duration::from_secs(1),
            unhealthy_after: 3,
            connect_timeout: Duration::from_secs(3),
            response_timeout: Duration::from_secs(30),
            limits: server::Limits::default(),
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

    /// The peers whose `X-Forwarded-For` is believed (default: none). From anyone
    /// else, the header is replaced by the peer's own address.
    #[must_use]
    pub fn trusted_proxies(mut self, trusted: TrustedProxies) -> Self {
        self.trusted_proxies = trusted;
        self
    }

    /// Believe `X-Forwarded-For` from this machine (loopback), for load generators
    /// that simulate many clients; `false` trusts nobody.
    #[must_use]
    pub fn trust_forwarded_for(self, trust: bool) -> Self {
        self.trusted_proxies(if trust {
            TrustedProxies::loopback()
        } else {
            TrustedProxies::none()
        })
    }

    /// How often backends are checked (default 1 s).
    #[must_use]
    pub fn health_interval(mut self, every: Duration) -> Self {
        self.health_interval = every;
        self
    }

    /// How many health checks in a row must fail before a backend is taken out of
    /// the pool (default 3; at least 1). A request that fails takes it out at once.
    ///
    /// ```
    /// let config = tether_balancer::Config::new(vec!["http://127.0.0.1:9001".into()])
    ///     .unhealthy_after(5);
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn unhealthy_after(mut self, failed_checks: u32) -> Self {
        self.unhealthy_after = failed_checks.max(1);
        self
    }

    /// How long connecting to a backend may take before the next one is tried
    /// (default 3 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a backend may take to start its answer before the client gets `504`
    /// (default 30 s).
    #[must_use]
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The header-read timeout and connection cap of the proxied listener.
    #[must_use]
    pub fn limits(mut self, limits: server::Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Print one line per routed request (default on).
    #[must_use]
    pub fn log_requests(mut self, log: bool) -> Self {
        self.log_requests = log;
        self
    }

    /// Checks the backends' URLs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_backends(&self.backends)
    }
}
