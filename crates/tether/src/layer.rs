//! `SessionLayer`: the builder of the session layer and its settings.

use std::sync::Arc;

use ::cookie::SameSite;
use tether_core::{ClientStore, Expiry, Id, LockOptions, SessionStore};
use tower_layer::Layer;

use crate::backend::{Backend, Shared};
use crate::config::Config;
use crate::service::SessionService;
use crate::transport;

/// Adds a [`Session`](crate::Session) to every request and saves what the handler changed.
///
/// Secure by default: the cookie is `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure`,
/// with no `Domain`, and named with the `__Host-` prefix (`__Host-tether`); responses
/// that set it carry `Cache-Control: no-store`, and responses made with the session
/// carry `Vary: Cookie`.
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
    pub(crate) shared: Arc<Shared>,
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
    ///
    /// Ids at rest are not credentials: unless the store keeps sessions in this process
    /// ([`Capabilities::in_process`](tether_core::Capabilities::in_process), the
    /// memory store), the layer gives it a hash of each id ([`Id::at_rest`](crate::Id::at_rest)),
    /// never the id the browser presents. Other code that reaches the same store by id
    /// goes through [`HashedIds`](tether_core::HashedIds) too.
    pub fn from_arc(store: Arc<dyn SessionStore>) -> Self {
        let capabilities = store.capabilities();
        let store: Arc<dyn SessionStore> = if capabilities.in_process || capabilities.keys_at_rest {
            store
        } else {
            Arc::new(tether_core::HashedIds::new(store))
        };
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
                tasks: None,
            }),
        }
    }

    /// Keeps `task` (the store's cleanup) running while this layer or a clone lives.
    pub(crate) fn keeping(mut self, task: tether_core::Background) -> Self {
        Arc::make_mut(&mut self.shared).tasks = Some(Arc::new(task));
        self
    }

    fn config(mut self, f: impl FnOnce(&mut Config)) -> Self {
        let config = &mut Arc::make_mut(&mut self.shared).config;
        f(config);
        config.refresh_name();
        self
    }

    /// The cookie's name, sent exactly as written (a proxy that hashes
    /// `$cookie_NAME`, or an app moving from another session layer, keeps matching).
    ///
    /// The default name is [`DEFAULT_COOKIE_NAME`](crate::DEFAULT_COOKIE_NAME), sent as
    /// `__Host-tether` while the cookie is `Secure` with `Path=/` and no `Domain`
    /// (`__Secure-tether` when it is `Secure` but scoped otherwise). A name you give
    /// with a `__Host-` or `__Secure-` prefix must hold with the cookie's attributes:
    /// else the layer is refused when it is built ([`SessionLayer::check`]).
    ///
    /// ```
    /// let layer = tether::SessionLayer::new(tether::MemoryStore::new());
    /// assert_eq!(layer.cookie_name(), "__Host-tether");
    /// let layer = layer.with_cookie_name("my.sid");
    /// assert_eq!(layer.cookie_name(), "my.sid");
    /// let layer = layer.with_cookie_name("__Host-sid");
    /// assert!(layer.check().is_ok());
    /// assert!(layer.with_insecure_cookie().check().is_err(), "__Host- needs Secure");
    /// ```
    #[must_use]
    pub fn with_cookie_name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.config(|c| {
            c.cookie_name = name;
            c.name_chosen = true;
        })
    }

    /// Checks that the configuration can hold: a cookie name with a `__Host-` or
    /// `__Secure-` prefix must have the attributes browsers require of it. Applying
    /// a layer that fails this check panics with the same message, when the app is
    /// built (never on a request); call it first to handle the error yourself.
    ///
    /// ```
    /// let layer = tether::SessionLayer::new(tether::MemoryStore::new())
    ///     .with_cookie_name("__Secure-sid")
    ///     .with_path("/app");
    /// assert!(layer.check().is_ok());
    /// ```
    pub fn check(&self) -> Result<(), tether_core::Error> {
        self.shared.config.check()
    }

    /// Sends the cookie over plain HTTP too, under its plain name (no prefix). Only for
    /// development on `http://localhost`: on the internet the id would travel in clear.
    #[must_use]
    pub fn with_insecure_cookie(self) -> Self {
        self.config(|c| c.secure = false)
    }

    /// Makes the cookie qualify for the `__Host-` prefix (the default already does):
    /// `Secure`, `Path=/` and no `Domain`, so a sibling subdomain cannot plant it.
    #[must_use]
    pub fn with_host_prefix(self) -> Self {
        self.config(|c| {
            c.host_prefix = true;
            c.secure = true;
            "/".clone_into(&mut c.path);
            c.domain = None;
        })
    }

    /// Sends the default name without the `__Host-`/`__Secure-` prefix (for a client
    /// that looks for a fixed name). A name given with
    /// [`SessionLayer::with_cookie_name`] is always sent as written.
    #[must_use]
    pub fn without_name_prefix(self) -> Self {
        self.config(|c| c.host_prefix = false)
    }

    /// Signs session ids: the cookie (or header) carries the id and an HMAC-SHA256 of
    /// it under the first of `keys`, and a token whose signature no key verifies is
    /// no id, dropped before any store I/O. Forged, guessed or random ids then never
    /// reach the store (ids are already 128 random bits; this stops a flood of them
    /// from costing store reads). Rotate by putting a new key first; keep the old one
    /// until the longest session has ended. Turning it on (or off) ends the sessions
    /// of browsers holding the other form. Server-side stores only: a client-side
    /// store's cookie is authenticated already.
    ///
    /// ```
    /// use tether::{IdKeys, MemoryStore, SessionLayer};
    /// let keys = IdKeys::parse(&IdKeys::generate_key()?)?; // IdKeys::from_file in production
    /// let layer = SessionLayer::new(MemoryStore::new()).with_signed_ids(keys);
    /// # Ok::<(), tether::Error>(())
    /// ```
    #[must_use]
    pub fn with_signed_ids(self, keys: crate::IdKeys) -> Self {
        self.config(|c| c.id_keys = Some(keys))
    }

    /// Seals every session value at rest with `keys` (XChaCha20-Poly1305, the first
    /// key seals, all open): a server-side store then holds ciphertexts, per key, so
    /// saves still send only the keys a request changed and merge them at the store.
    /// What stays visible there: key names, the user index, deadlines, versions and
    /// value sizes. A sealed value that opens with none of the keys is an error
    /// response (never a fresh session), and so is sealed data read by a layer without
    /// keys. Turning it on logs nobody out: values written before are read as they are
    /// and sealed at each session's next write.
    /// Client-side stores seal the whole session already: there it changes nothing.
    ///
    /// ```
    /// use tether::{DataKeys, MemoryStore, SessionLayer};
    /// let keys = DataKeys::parse(&DataKeys::generate_key()?)?; // DataKeys::from_file in production
    /// let layer = SessionLayer::new(MemoryStore::new()).with_sealed_data(keys);
    /// # Ok::<(), tether::Error>(())
    /// ```
    #[must_use]
    pub fn with_sealed_data(mut self, keys: crate::DataKeys) -> Self {
        let shared = Arc::make_mut(&mut self.shared);
        if let Backend::Server(store) = &shared.backend {
            let sealed = crate::sealed::SealedData::new(store.clone(), keys);
            shared.backend = Backend::Server(Arc::new(sealed));
            shared.config.sealed_data = true;
        }
        self
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

    /// Idle timeout and absolute lifetime (default 24 h idle, 7 days absolute), and
    /// whether the cookie is a browser-session one ([`Expiry::browser_session`], or
    /// [`SessionLayer::with_browser_session_cookie`]). One session can have its own:
    /// [`Session::set_expiry`](crate::Session::set_expiry).
    #[must_use]
    pub fn with_expiry(self, expiry: Expiry) -> Self {
        self.config(|c| {
            let browser_session = c.expiry.browser_session || expiry.browser_session;
            c.expiry = Expiry {
                browser_session,
                ..expiry
            };
        })
    }

    /// A cookie without `Max-Age`, which the browser forgets when it closes; the store
    /// still enforces the expiry.
    #[must_use]
    pub fn with_browser_session_cookie(self) -> Self {
        self.config(|c| c.expiry.browser_session = true)
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

    /// Where the session's token travels: the cookie (default), a named header, or
    /// `Authorization: Bearer` (see [`Transport`](crate::Transport)). With a header,
    /// no cookie is set; the cookie settings are unused.
    ///
    /// ```
    /// let api = tether::SessionLayer::new(tether::MemoryStore::new())
    ///     .with_transport(tether::Transport::bearer());
    /// ```
    #[must_use]
    pub fn with_transport(self, transport: crate::Transport) -> Self {
        self.config(|c| c.transport = transport)
    }

    /// How long after a session moves to a new id (`cycle_id` at login, a new
    /// lifetime) a request still carrying the old id is answered as anonymous and
    /// read-only: it sees no data, its writes are dropped and it sets no cookie, so a
    /// request that was in flight at login cannot replace the browser's new cookie
    /// with a fresh anonymous session. Default [`DEFAULT_ROTATION_GRACE`](crate::DEFAULT_ROTATION_GRACE)
    /// (5 s); zero turns it off. It costs one store write per rotation and one read
    /// on the rare request whose id turns out gone. Server-side stores only: a
    /// client-side store keeps no state to know an old cookie by.
    ///
    /// ```
    /// use std::time::Duration;
    /// let layer = tether::SessionLayer::new(tether::MemoryStore::new())
    ///     .with_rotation_grace(Duration::from_secs(10));
    /// ```
    #[must_use]
    pub fn with_rotation_grace(self, grace: std::time::Duration) -> Self {
        self.config(|c| c.rotation_grace = grace)
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
    /// Calls `hook` for every [`SessionEvent`](crate::SessionEvent) (created,
    /// rotated, user bound, logged out, logged out everywhere), after the store did
    /// it. The same events go to `tracing` (target `tether::events`) with or without
    /// a hook. The hook runs on the request's task: keep it quick (send to a channel
    /// for slow work).
    ///
    /// ```
    /// let layer = tether::SessionLayer::new(tether::MemoryStore::new()).with_events(|event| {
    ///     if let tether::SessionEvent::UserBound { user, .. } = event {
    ///         println!("{user} logged in");
    ///     }
    /// });
    /// ```
    #[must_use]
    pub fn with_events(self, hook: impl Fn(&crate::SessionEvent) + Send + Sync + 'static) -> Self {
        let hook: crate::EventHook = Arc::new(hook);
        self.config(|c| c.events = Some(hook))
    }

    /// The session id a request presents: the session cookie's value (or the
    /// header's, with a header [`Transport`](crate::Transport)), if it has the exact
    /// shape of an id. This is the check every request goes through
    /// before any store I/O; it is public for logging and routing. With a client-side
    /// (cookie) store it is always `None`: that cookie carries the sealed session, not
    /// an id.
    ///
    /// ```
    /// use tether::{MemoryStore, SessionLayer};
    /// let layer = SessionLayer::new(MemoryStore::new());
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("cookie", "theme=dark; __Host-tether=not-an-id".parse().unwrap());
    /// assert!(layer.session_id(&headers).is_none());
    /// ```
    ///
    /// With several cookies of the session's name, the first well-formed one.
    pub fn session_id(&self, headers: &http::HeaderMap) -> Option<Id> {
        match &self.shared.backend {
            Backend::Server(_) => transport::presented(&self.shared.config, headers)
                .into_iter()
                .find_map(|token| self.shared.config.read_id(token)),
            Backend::Client(_) => None,
        }
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
        self.shared.config.name()
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        if let Err(error) = self.check() {
            // A configuration browsers would silently break: refused when the app is
            // built, before it serves anyone.
            panic!("tether: {error}");
        }
        SessionService::new(inner, self.shared.clone())
    }
}
