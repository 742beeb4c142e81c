//! `SessionLayer` and `SessionService`: load lazily, save after the handler.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::cookie::{Cookie, SameSite};
use http::{HeaderValue, Request, Response, header};
use tether_core::{ClientStore, Expiry, Id, LockOptions, SessionStore};
use tower_layer::Layer;
use tower_service::Service;

use crate::config::Config;
use crate::session::{Backend, CookieAction, Presented, Session, Shared};

/// Adds a [`Session`] to every request and saves what the handler changed.
///
/// Secure by default: the cookie is `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure`,
/// with no `Domain`; responses that set it carry `Cache-Control: no-store`.
///
/// ```
/// use std::time::Duration;
/// use axum::{Router, routing::get};
/// use tether::{Expiry, MemoryStore, SessionLayer};
///
/// let sessions = SessionLayer::new(MemoryStore::new())
///     .with_expiry(Expiry::new(Duration::from_secs(30 * 60)).with_absolute(Duration::from_secs(8 * 3600)))
///     .with_max_sessions_per_user(5);
/// let app: Router = Router::new().route("/", get(|| async { "hi" })).layer(sessions);
/// ```
#[derive(Debug, Clone)]
pub struct SessionLayer {
    shared: Arc<Shared>,
}

impl SessionLayer {
    /// A layer that keeps sessions in `store`, with secure defaults.
    pub fn new(store: impl SessionStore) -> Self {
        Self::from_arc(Arc::new(store))
    }

    /// A layer over a store shared with other code (for "log out everywhere" from an
    /// admin task, say).
    ///
    /// ```
    /// use std::sync::Arc;
    /// let store = Arc::new(tether::MemoryStore::new());
    /// let layer = tether::SessionLayer::from_arc(store.clone());
    /// ```
    pub fn from_arc(store: Arc<dyn SessionStore>) -> Self {
        Self::with_backend(Backend::Server(store))
    }

    /// A layer that keeps the whole session in the cookie, sealed by `store` (the
    /// `cookie` feature's `CookieStore`). Handlers cannot tell the difference; what
    /// needs server state (listing a user's sessions, "log out everywhere", lock mode)
    /// fails with `Error::Unsupported`.
    ///
    /// ```
    /// # #[cfg(feature = "cookie")] {
    /// use tether::cookie::{CookieStore, KeyRing};
    /// let keys = KeyRing::parse(&KeyRing::generate_key().unwrap()).unwrap();
    /// let layer = tether::SessionLayer::client_side(CookieStore::new(keys));
    /// # }
    /// ```
    pub fn client_side(store: impl ClientStore) -> Self {
        Self::with_backend(Backend::Client(Arc::new(store)))
    }

    fn with_backend(backend: Backend) -> Self {
        Self {
            shared: Arc::new(Shared {
                backend,
                config: Config::default(),
            }),
        }
    }

    fn config(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut Arc::make_mut(&mut self.shared).config);
        self
    }

    /// The cookie's name (default [`DEFAULT_COOKIE_NAME`](crate::DEFAULT_COOKIE_NAME)).
    #[must_use]
    pub fn with_cookie_name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.config(|c| c.cookie_name = name)
    }

    /// Sends the cookie over plain HTTP too. Only for development on
    /// `http://localhost`: on the internet the id would travel in clear.
    #[must_use]
    pub fn with_insecure_cookie(self) -> Self {
        self.config(|c| c.secure = false)
    }

    /// Prefixes the cookie name with `__Host-`, which browsers accept only with
    /// `Secure`, `Path=/` and no `Domain`, so a sibling subdomain cannot plant it.
    #[must_use]
    pub fn with_host_prefix(self) -> Self {
        self.config(|c| {
            if !c.cookie_name.starts_with("__Host-") {
                c.cookie_name = format!("__Host-{}", c.cookie_name);
            }
            c.secure = true;
            "/".clone_into(&mut c.path);
            c.domain = None;
        })
    }

    /// The cookie's `Path` (default `/`).
    #[must_use]
    pub fn with_path(self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.config(|c| c.path = path)
    }

    /// The cookie's `Domain` (default none: only the host that set it).
    #[must_use]
    pub fn with_domain(self, domain: impl Into<String>) -> Self {
        let domain = domain.into();
        self.config(|c| c.domain = Some(domain))
    }

    /// The cookie's `SameSite` (default `Lax`).
    #[must_use]
    pub fn with_same_site(self, same_site: SameSite) -> Self {
        self.config(|c| c.same_site = same_site)
    }

    /// Idle timeout and absolute lifetime (default 24 h idle, 7 days absolute).
    #[must_use]
    pub fn with_expiry(self, expiry: Expiry) -> Self {
        self.config(|c| c.expiry = expiry)
    }

    /// A cookie without `Max-Age`, which the browser forgets when it closes; the store
    /// still enforces the expiry.
    #[must_use]
    pub fn with_browser_session_cookie(self) -> Self {
        self.config(|c| c.persistent = false)
    }

    /// Refresh a read-only session's idle deadline once less than `share` of the
    /// idle timeout is left (default 0.75; 1.0 refreshes on every request).
    #[must_use]
    pub fn with_refresh_share(self, share: f64) -> Self {
        self.config(|c| c.refresh_share = crate::config::clamp_share(share))
    }

    /// Lock mode: requests of one session run their session work one at a time, for
    /// apps that need strict read-modify-write. A request that waits longer than
    /// `options.wait` gets the error response.
    #[must_use]
    pub fn with_lock(self, options: LockOptions) -> Self {
        self.config(|c| c.lock = Some(options))
    }

    /// When a session is bound to a user, end that user's oldest sessions beyond `max`.
    #[must_use]
    pub fn with_max_sessions_per_user(self, max: u32) -> Self {
        self.config(|c| c.max_sessions_per_user = Some(max.max(1)))
    }

    /// The response to a store error (default [`default_error_response`](crate::default_error_response)).
    ///
    /// ```
    /// let layer = tether::SessionLayer::new(tether::MemoryStore::new()).with_error_handler(|_err| {
    ///     let mut r = http::Response::new(r#"{"error":"sessions are down"}"#.to_owned());
    ///     *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
    ///     r
    /// });
    /// ```
    #[must_use]
    pub fn with_error_handler(
        self,
        handler: impl Fn(&tether_core::Error) -> http::Response<String> + Send + Sync + 'static,
    ) -> Self {
        let handler: crate::ErrorHandler = Arc::new(handler);
        self.config(|c| c.error_handler = handler)
    }
    /// The session id a request presents: the value of the session cookie, if it
    /// has the exact shape of an id. This is the check every request goes through
    /// before any store I/O; it is public for logging and routing. With a client-side
    /// (cookie) store it is always `None`: that cookie carries the sealed session, not
    /// an id.
    ///
    /// ```
    /// use tether::{MemoryStore, SessionLayer};
    /// let layer = SessionLayer::new(MemoryStore::new());
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("cookie", "theme=dark; tether=not-an-id".parse().unwrap());
    /// assert!(layer.session_id(&headers).is_none());
    /// ```
    pub fn session_id(&self, headers: &http::HeaderMap) -> Option<Id> {
        cookie_value(headers, &self.shared.config.cookie_name).and_then(Id::parse)
    }

    /// The server-side store behind this layer; `None` for a client-side one.
    pub fn store(&self) -> Option<&Arc<dyn SessionStore>> {
        match &self.shared.backend {
            Backend::Server(store) => Some(store),
            Backend::Client(_) => None,
        }
    }

    /// The idle timeout and absolute lifetime in force.
    pub fn expiry(&self) -> Expiry {
        self.shared.config.expiry
    }

    /// The cookie's name, prefix included.
    pub fn cookie_name(&self) -> &str {
        &self.shared.config.cookie_name
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`SessionLayer`] wraps around the app. It reads its one cookie from
/// the `Cookie` header and writes its `Set-Cookie` itself: no cookie jar per request.
#[derive(Debug, Clone)]
pub struct SessionService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let shared = self.shared.clone();
        let value = cookie_value(req.headers(), &shared.config.cookie_name);
        // A cookie value not of the id's exact shape is no session: no store I/O.
        let presented = match (&shared.backend, value) {
            (Backend::Server(_), Some(v)) => Id::parse(v).map_or(Presented::None, Presented::Id),
            (Backend::Client(store), Some(v)) if v.len() <= store.size_limit() => {
                Presented::Sealed(v.to_owned())
            }
            // No cookie, or one too long to be ours.
            _ => Presented::None,
        };
        let session = Session::new(shared.clone(), presented);
        req.extensions_mut().insert(session.clone());

        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let mut response = inner.call(req).await?;
            if !session.was_touched() {
                return Ok(response);
            }
            let server_error = response.status().is_server_error();
            match session.finish(server_error).await {
                Ok(action) => {
                    apply_cookie(&shared.config, action, &mut response);
                    Ok(response)
                }
                Err(error) => {
                    let (parts, body) = (shared.config.error_handler)(&error).into_parts();
                    Ok(Response::from_parts(parts, ResBody::from(body)))
                }
            }
        })
    }
}

/// The value of the cookie `name`, found without parsing every cookie of the request
/// (what a cookie jar does, allocating per cookie): this runs on every
/// request, touched or not. Values are used verbatim; ids and sealed values are
/// URL-safe, so they are never percent-encoded.
fn cookie_value<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"'))
        })
}

fn apply_cookie<B>(config: &Config, action: CookieAction, response: &mut Response<B>) {
    let mut cookie = Cookie::build((config.cookie_name.clone(), String::new()))
        .path(config.path.clone())
        .secure(config.secure)
        .http_only(config.http_only)
        .same_site(config.same_site)
        .build();
    if let Some(domain) = &config.domain {
        cookie.set_domain(domain.clone());
    }
    match action {
        CookieAction::Keep => return,
        CookieAction::Set { value, max_age } => {
            cookie.set_value(value);
            if let Some(max_age) = max_age {
                cookie.set_max_age(max_age.max(time::Duration::ZERO));
            }
        }
        CookieAction::Remove => cookie.make_removal(),
    }
    // The value is ours and URL-safe; the name, path and domain come from the
    // configuration, and a character a header cannot carry there is a setup mistake
    // that must not pass silently.
    match HeaderValue::from_str(&cookie.to_string()) {
        Ok(value) => {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        Err(error) => tracing::error!(
            cookie = config.cookie_name,
            %error,
            "the session cookie cannot be sent: its name, path or domain is not a valid header value"
        ),
    }
    // A shared cache must never hand one user's session cookie to another.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}
