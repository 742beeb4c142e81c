//! Driving an axum app in-process, for tests of the layer over any store.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt as _;

/// What a test needs from a response.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The `Set-Cookie` header, whole.
    pub set_cookie: Option<String>,
    /// The `Cache-Control` header.
    pub cache_control: Option<String>,
    /// The body as text.
    pub body: String,
}

impl Reply {
    /// The `name=value` part of the cookie that was set, ready for a `Cookie` header.
    ///
    /// # Panics
    /// When the response set no cookie.
    pub fn cookie(&self) -> String {
        let set = self.set_cookie.as_deref().expect("a Set-Cookie header");
        set.split(';').next().unwrap_or_default().to_owned()
    }
}

/// Sends one request with an optional `Cookie` header through `app`.
///
/// # Panics
/// When the request cannot be built or the body cannot be read.
pub async fn send(app: &Router, method: &str, path: &str, cookie: Option<&str>) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    let response = app
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .unwrap_or_else(|never| match never {});
    let text = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let set_cookie = text(header::SET_COOKIE);
    let cache_control = text(header::CACHE_CONTROL);
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    Reply {
        status,
        set_cookie,
        cache_control,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}
