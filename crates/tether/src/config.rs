//! How the layer names, scopes and times its cookie and sessions.

use std::fmt;
use std::sync::Arc;

use ::cookie::{Cookie, SameSite};
use http::HeaderName;
use http::header;
use tether_core::{Error, Expiry, LockOptions};

use crate::error::{ErrorHandler, default_error_response};

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
    /// What follows `name=value` in every `Set-Cookie` that sets the cookie (its
    /// fixed attributes, formatted by the `cookie` crate once, not per response).
    attributes: String,
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
    pub(crate) transport: Transport,
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
            attributes: String::new(),
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
            transport: Transport::Cookie,
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

    /// The cookie's fixed attributes as a `Set-Cookie` that sets it carries them
    /// (`; HttpOnly; SameSite=Lax; Secure; Path=/`), before any `Max-Age`.
    pub(crate) fn attributes(&self) -> &str {
        &self.attributes
    }

    /// Recomputes the name, and the attributes sent with it, after a change.
    pub(crate) fn refresh_name(&mut self) {
        self.name = self.name_to_send();
        self.attributes = self.attributes_to_send();
    }

    /// The cookie as configured, with an empty value.
    pub(crate) fn cookie(&self) -> Cookie<'_> {
        let mut cookie = Cookie::build((self.name.as_str(), ""))
            .path(self.path.as_str())
            .secure(self.secure)
            .http_only(self.http_only)
            .same_site(self.same_site)
            .build();
        if let Some(domain) = &self.domain {
            cookie.set_domain(domain.as_str());
        }
        cookie
    }

    /// What follows `name=value` in a `Set-Cookie` that sets the cookie as configured
    /// (without `Max-Age`, which comes last), as the `cookie` crate writes it.
    fn attributes_to_send(&self) -> String {
        let text = self.cookie().to_string();
        // `name=` first: the name is written as it is.
        text.get(self.name.len() + 1..)
            .unwrap_or_default()
            .to_owned()
    }

    /// The name to send. A name the app chose is sent as written. The default name is
    /// sent as `__Host-tether` whenever the cookie is `Secure`, has `Path=/` and no
    /// `Domain` (what browsers require of the prefix, so a sibling subdomain or a
    /// plain-http page cannot plant it), `__Secure-tether` when it is `Secure` but
    /// scoped otherwise, and plain without `Secure`.
    fn name_to_send(&self) -> String {
        if self.name_chosen {
            return self.cookie_name.clone();
        }
        let base = self
            .cookie_name
            .trim_start_matches("__Host-")
            .trim_start_matches("__Secure-");
        if !self.host_prefix || !self.secure {
            base.to_owned()
        } else if self.path == "/" && self.domain.is_none() {
            format!("__Host-{base}")
        } else {
            format!("__Secure-{base}")
        }
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

pub(crate) fn clamp_share(share: f64) -> f64 {
    if share.is_nan() {
        DEFAULT_REFRESH_SHARE
    } else {
        share.clamp(0.0, 1.0)
    }
}

/// Where the layer reads the session's token and writes a new one.
///
/// With a header the layer sets no cookie: it answers a new or renewed token in the
/// response header (the same header, or `x-session-token` for bearer tokens), and an
/// empty value there when the session ended. The client keeps the token and sends it
/// back; browsers never attach it on their own, so such requests cannot be forged
/// cross-site. Stores, locks, rotation and every guarantee are the same.
///
/// ```
/// use tether::{MemoryStore, SessionLayer, Transport};
/// let api = SessionLayer::new(MemoryStore::new()).with_transport(Transport::bearer());
/// let mobile = SessionLayer::new(MemoryStore::new())
///     .with_transport(Transport::header(http::HeaderName::from_static("x-session")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Transport {
    /// The session cookie (see the layer's cookie settings).
    #[default]
    Cookie,
    /// `name: TOKEN` on requests, and on responses that give a new token.
    Header(HeaderName),
    /// `Authorization: Bearer TOKEN` on requests; new tokens in the response header
    /// `response`.
    Bearer {
        /// The response header that carries a new token.
        response: HeaderName,
    },
}

impl Transport {
    /// The token in the header `name`, both ways.
    pub fn header(name: HeaderName) -> Self {
        Self::Header(name)
    }

    /// `Authorization: Bearer` on requests, new tokens in `x-session-token`.
    pub fn bearer() -> Self {
        Self::Bearer {
            response: HeaderName::from_static("x-session-token"),
        }
    }

    /// The header a response carries the token in (`None` for the cookie).
    pub(crate) fn response_header(&self) -> Option<&HeaderName> {
        match self {
            Self::Cookie => None,
            Self::Header(name) | Self::Bearer { response: name } => Some(name),
        }
    }

    /// The header a cache must vary on: the one the token comes in.
    pub(crate) fn request_header(&self) -> HeaderName {
        match self {
            Self::Cookie => header::COOKIE,
            Self::Header(name) => name.clone(),
            Self::Bearer { .. } => header::AUTHORIZATION,
        }
    }
}
