//! Testing your own app (feature `test-util`): an in-process client with a cookie jar,
//! sessions seeded without going through your login route, and the session read back
//! after a request.
//!
//! ```
//! use axum::{Router, routing::get};
//! use tether::testing::TestClient;
//! use tether::{MemoryStore, Session, SessionLayer};
//!
//! async fn dashboard(session: Session) -> Result<String, tether::SessionError> {
//!     match session.user().await? {
//!         Some(user) => Ok(format!("hello {user}")),
//!         None => Ok("please log in".into()),
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tether::Error> {
//! let layer = SessionLayer::new(MemoryStore::new()); // the app's own store and settings
//! let app = Router::new().route("/", get(dashboard)).layer(layer.clone());
//! let client = TestClient::new(app, &layer);
//!
//! client.login_as("alice").await?;
//! assert_eq!(client.get("/").await.text(), "hello alice");
//! # Ok(()) }
//! ```

use std::sync::Mutex;

use axum::Router;
use axum::body::{Body, Bytes};
use http::{HeaderMap, Request, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tower::ServiceExt as _;

use crate::{Error, SessionLayer};

/// An in-process client for an app behind a [`SessionLayer`]: requests go through the
/// app's router (no socket), and its cookie jar follows `Set-Cookie` for the session
/// cookie as a browser does. It works with every store, server-side or client-side,
/// with the cookie transport.
#[derive(Debug)]
pub struct TestClient {
    app: Router,
    layer: SessionLayer,
    /// The session cookie's value, as the last response left it.
    cookie: Mutex<Option<String>>,
}

/// A response the [`TestClient`] got.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TestResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl TestResponse {
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    ///
    /// # Panics
    /// When the body is not JSON of that shape.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("the body is not the JSON asked for ({e}): {}", self.text()))
    }
}

impl TestClient {
    /// A client for `app`, which has `layer` (the same layer, or a clone) around it.
    pub fn new(app: Router, layer: &SessionLayer) -> Self {
        Self {
            app,
            layer: layer.clone(),
            cookie: Mutex::new(None),
        }
    }

    fn jar(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.cookie
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The session cookie's value the jar holds.
    pub fn cookie(&self) -> Option<String> {
        self.jar().clone()
    }

    /// Forgets the session cookie (a new browser).
    pub fn clear_cookie(&self) {
        *self.jar() = None;
    }

    /// Sends `request`, with the jar's session cookie added, and keeps what the
    /// response sets.
    ///
    /// # Panics
    /// When the app's body cannot be read.
    pub async fn request(&self, mut request: Request<Body>) -> TestResponse {
        let name = self.layer.cookie_name().to_owned();
        if let Some(value) = self.cookie() {
            let pair = format!("{name}={value}");
            let joined = match request.headers().get(header::COOKIE) {
                Some(other) => format!("{}; {pair}", other.to_str().unwrap_or_default()),
                None => pair,
            };
            if let Ok(value) = joined.parse() {
                request.headers_mut().insert(header::COOKIE, value);
            }
        }
        let response = self
            .app
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {});
        let (parts, body) = response.into_parts();
        for set in parts.headers.get_all(header::SET_COOKIE) {
            let Some((pair, attributes)) = set
                .to_str()
                .ok()
                .map(|s| s.split_once(';').unwrap_or((s, "")))
            else {
                continue;
            };
            let Some(value) = pair.strip_prefix(&name).and_then(|v| v.strip_prefix('=')) else {
                continue;
            };
            let removed = value.is_empty()
                || attributes
                    .split(';')
                    .any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
            *self.jar() = (!removed).then(|| value.to_owned());
        }
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("the app's response body");
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> TestResponse {
        self.request(request("GET", path, None, Body::empty()))
            .await
    }

    /// `POST path` with no body.
    pub async fn post(&self, path: &str) -> TestResponse {
        self.request(request("POST", path, None, Body::empty()))
            .await
    }

    /// `POST path` with a JSON body.
    ///
    /// # Panics
    /// When `value` does not serialize.
    pub async fn post_json(&self, path: &str, value: &impl Serialize) -> TestResponse {
        let body = serde_json::to_vec(value).expect("a JSON body");
        self.request(request("POST", path, Some("application/json"), body.into()))
            .await
    }

    /// `POST path` with a form body (`application/x-www-form-urlencoded`, already
    /// encoded: `"name=alice&password=demo"`).
    pub async fn post_form(&self, path: &str, form: &str) -> TestResponse {
        let content_type = "application/x-www-form-urlencoded";
        self.request(request(
            "POST",
            path,
            Some(content_type),
            form.to_owned().into(),
        ))
        .await
    }

    /// Starts a session bound to `user` at the app's own store, with the layer's
    /// settings, and puts its cookie in the jar: the state your login route would
    /// leave, without going through it.
    pub async fn login_as(&self, user: &str) -> Result<(), Error> {
        self.seed(Some(user), Map::new()).await
    }

    /// Starts a session holding `values` (and bound to `user`, if given) and puts its
    /// cookie in the jar.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tether::Error> {
    /// # let layer = tether::SessionLayer::new(tether::MemoryStore::new());
    /// # let client = tether::testing::TestClient::new(axum::Router::new().layer(layer.clone()), &layer);
    /// let mut values = serde_json::Map::new();
    /// values.insert("cart".into(), serde_json::json!(["book"]));
    /// client.seed(None, values).await?;
    /// assert_eq!(client.session_value::<Vec<String>>("cart").await?, Some(vec!["book".to_owned()]));
    /// # Ok(()) }
    /// ```
    pub async fn seed(&self, user: Option<&str>, values: Map<String, Value>) -> Result<(), Error> {
        let value = self.layer.seed_session(user, values).await?;
        *self.jar() = Some(value);
        Ok(())
    }

    /// The data of the session the jar's cookie names, as the store holds it now
    /// (`None` without a live session).
    pub async fn session(&self) -> Result<Option<Map<String, Value>>, Error> {
        let Some(value) = self.cookie() else {
            return Ok(None);
        };
        Ok(self.layer.peek_session(&value).await?.map(|r| r.data))
    }

    /// The value under `key` in the jar's session, as the store holds it now.
    pub async fn session_value<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        let Some(mut data) = self.session().await? else {
            return Ok(None);
        };
        data.remove(key)
            .map(|v| {
                serde_json::from_value(v)
                    .map_err(|e| Error::Corrupt(format!("session value for {key:?}: {e}")))
            })
            .transpose()
    }

    /// The user the jar's session is bound to, as the store holds it now.
    pub async fn user(&self) -> Result<Option<String>, Error> {
        let Some(value) = self.cookie() else {
            return Ok(None);
        };
        Ok(self.layer.peek_session(&value).await?.and_then(|r| r.user))
    }
}

fn request(method: &str, path: &str, content_type: Option<&str>, body: Body) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(content_type) = content_type {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    builder
        .body(body)
        .unwrap_or_else(|e| panic!("a request for {method} {path}: {e}"))
}

impl SessionLayer {
    /// A new session holding `data` (bound to `user`), stored as the layer stores one
    /// (its store, expiry and per-user cap; sealed in the value for a client-side
    /// store): the cookie value a client then presents.
    pub(crate) async fn seed_session(
        &self,
        user: Option<&str>,
        data: Map<String, Value>,
    ) -> Result<String, Error> {
        use crate::backend::Backend;
        let config = &self.shared.config;
        let now = time::OffsetDateTime::now_utc();
        let mut record = tether_core::Record::new(now, &config.expiry);
        record.data = data;
        record.user = user.map(str::to_owned);
        let id = tether_core::Id::generate()?;
        match &self.shared.backend {
            Backend::Server(store) => {
                let cap = config.max_sessions_per_user.filter(|_| user.is_some());
                match store.create_capped(&id, &record, cap).await? {
                    tether_core::Created::Yes => Ok(config.write_id(&id)),
                    tether_core::Created::IdTaken => Err(Error::IdCollision),
                }
            }
            Backend::Client(store) => store.seal_with_id(&id, &record, config.name(), now),
        }
    }

    /// The session a cookie value names, as the store holds it now.
    pub(crate) async fn peek_session(
        &self,
        value: &str,
    ) -> Result<Option<tether_core::Record>, Error> {
        use crate::backend::Backend;
        let config = &self.shared.config;
        match &self.shared.backend {
            Backend::Server(store) => match config.read_id(value) {
                Some(id) => store.load(&id).await,
                None => Ok(None),
            },
            Backend::Client(store) => Ok(store
                .open_with_id(value, config.name(), time::OffsetDateTime::now_utc())
                .map(|(_, record)| record)),
        }
    }
}
