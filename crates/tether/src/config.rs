//! How the layer names, scopes and times its cookie and sessions.

use std::fmt;
use std::sync::Arc;

use ::cookie::SameSite;
use tether_core::{Error, Expiry, LockOptions};

/// Turns a store error into the response the client sees.
pub type ErrorHandler = Arc<dyn Fn(&Error) -> http::Response<String> + Send + Sync>;

/// Everything the [`SessionLayer`](crate::SessionLayer) can be told.
// Each flag is an independent cookie attribute, as the builder sets them.
#[allow(clippy::struct_excessive_bools)]
#[derive(Clone)]
pub(crate) struct Config {
    /// The name as configured.
    pub(crate) cookie_name: String,
    /// Whether the app chose the name: then it is sent exactly as written.
    pub(crate) name_chosen: bool,
    /// Prefix the default name with `__Host-` when the cookie qualifies (default on).
    pub(crate) host_prefix: bool,
    /// The name sent: see [`Config::refresh_name`].
    name: String,
    pub(crate) path: String,
    pub(crate) domain: Option<String>,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
    pub(crate) same_site: SameSite,
    pub(crate) expiry: Expiry,
    pub(crate) refresh_share: f64,
    pub(crate) lock: Option<LockOptions>,
    pub(crate) max_sessions_per_user: Option<u32>,
    pub(crate) error_handler: ErrorHandler,
    pub(crate) events: Option<crate::events::EventHook>,
    pub(crate) rotation_grace: std::time::Duration,
    pub(crate) transport: crate::Transport,
    /// Sign ids in the cookie ([`crate::SessionLayer::with_signed_ids`]).
    pub(crate) id_keys: Option<crate::IdKeys>,
    /// Session values are sealed at rest ([`crate::SessionLayer::with_sealed_data`]).
    pub(crate) sealed_data: bool,
}

impl Default for Config {
    fn default() -> Self {
        let mut config = Self {
            cookie_name: DEFAULT_COOKIE_NAME.to_owned(),
            name_chosen: false,
            host_prefix: true,
            name: String::new(),
            path: "/".to_owned(),
            domain: None,
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            expiry: Expiry::default(),
            refresh_share: DEFAULT_REFRESH_SHARE,
            lock: None,
            max_sessions_per_user: None,
            error_handler: Arc::new(default_error_response),
            events: None,
            rotation_grace: crate::grace::DEFAULT_ROTATION_GRACE,
            transport: crate::Transport::Cookie,
            id_keys: None,
            sealed_data: false,
        };
        config.refresh_name();
        config
    }
}

impl Config {
    /// The id a presented token carries: the token itself when it is an id, or with
    /// signed ids, an id whose signature verifies. Anything else is no id.
    pub(crate) fn read_id(&self, token: &str) -> Option<tether_core::Id> {
        match &self.id_keys {
            Some(keys) => keys.verify(token),
            None => tether_core::Id::parse(token),
        }
    }

    /// The token a client is given for `id`.
    pub(crate) fn write_id(&self, id: &tether_core::Id) -> String {
        match &self.id_keys {
            Some(keys) => keys.sign(id),
            None => id.to_string(),
        }
    }

    /// The cookie's name as sent and read.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Recomputes the name after a change. A name the app chose is sent as written.
    /// The default name is sent as `__Host-tether` whenever the cookie is `Secure`, has
    /// `Path=/` and no `Domain` (what browsers require of the prefix, so a sibling
    /// subdomain or a plain-http page cannot plant it), `__Secure-tether` when it is
    /// `Secure` but scoped otherwise, and plain without `Secure`.
    pub(crate) fn refresh_name(&mut self) {
        if self.name_chosen {
            self.name.clone_from(&self.cookie_name);
            return;
        }
        let base = self
            .cookie_name
            .trim_start_matches("__Host-")
            .trim_start_matches("__Secure-");
        self.name = if !self.host_prefix || !self.secure {
            base.to_owned()
        } else if self.path == "/" && self.domain.is_none() {
            format!("__Host-{base}")
        } else {
            format!("__Secure-{base}")
        };
    }
}

impl Config {
    /// What the configuration cannot hold: a `__Host-` name on a cookie that is not
    /// `Secure` with `Path=/` and no `Domain`, or a `__Secure-` name on one that is not
    /// `Secure` (browsers drop such cookies: every request would arrive without its
    /// session).
    pub(crate) fn check(&self) -> Result<(), Error> {
        let name = &self.name;
        let has = |prefix: &str| {
            name.as_bytes()
                .get(..prefix.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(prefix.as_bytes()))
        };
        if has("__Host-") && !(self.secure && self.path == "/" && self.domain.is_none()) {
            return Err(Error::config(format!(
                "the cookie name {name:?} has the __Host- prefix, which browsers accept only on a Secure cookie with Path=/ and no Domain; drop the prefix or the attribute that breaks it"
            )));
        }
        if has("__Secure-") && !self.secure {
            return Err(Error::config(format!(
                "the cookie name {name:?} has the __Secure- prefix, which browsers accept only on a Secure cookie; drop the prefix or keep the cookie Secure"
            )));
        }
        Ok(())
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("cookie_name", &self.name)
            .field("path", &self.path)
            .field("domain", &self.domain)
            .field("secure", &self.secure)
            .field("http_only", &self.http_only)
            .field("same_site", &self.same_site)
            .field("expiry", &self.expiry)
            .field("refresh_share", &self.refresh_share)
            .field("lock", &self.lock)
            .field("max_sessions_per_user", &self.max_sessions_per_user)
            .field("rotation_grace", &self.rotation_grace)
            .field("transport", &self.transport)
            .field("id_keys", &self.id_keys)
            .finish_non_exhaustive()
    }
}

/// The session cookie's default name. It is a valid nginx variable suffix, so
/// `hash $cookie_tether consistent;` routes on it.
pub const DEFAULT_COOKIE_NAME: &str = "tether";

/// By default the idle deadline is refreshed once less than three quarters of the idle
/// timeout is left: an active user causes one refresh per quarter of the timeout, and an
/// idle one is logged out between 75 % and 100 % of it.
pub const DEFAULT_REFRESH_SHARE: f64 = 0.75;

/// The default answer to a store error: 503 (or 500 for errors retrying cannot fix;
/// 413 for a session grown past the store's size limit) with a plain-text body that
/// says what happened without leaking internals.
///
/// ```
/// let err = tether_core::Error::Unavailable { context: "redis down".into(), source: None };
/// let response = tether::default_error_response(&err);
/// assert_eq!(response.status(), 503);
/// assert!(response.body().contains("try again"));
/// ```
pub fn default_error_response(error: &Error) -> http::Response<String> {
    let (status, body) = match error {
        Error::TooLarge { .. } => (
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "413 Content Too Large: the session would exceed the store's size limit.\n",
        ),
        Error::LockTimeout(_) => (
            http::StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Unavailable: this session is busy with another request; try again shortly.\n",
        ),
        e if e.is_transient() => (
            http::StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Unavailable: the session store is unavailable; try again shortly.\n",
        ),
        _ => (
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "500 Internal Server Error: the session could not be saved.\n",
        ),
    };
    let mut response = http::Response::new(body.to_owned());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == http::StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
    }
    response
}

pub(crate) fn clamp_share(share: f64) -> f64 {
    if share.is_nan() {
        DEFAULT_REFRESH_SHARE
    } else {
        share.clamp(0.0, 1.0)
    }
}
