//! Driving an axum app in-process, for tests of the layer over any store.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};

use tower::ServiceExt as _;

/// What a test needs from a response.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The `Set-Cookie` header, whole.
    pub set_cookie: Option<String>,
    /// The `Cache-Control` header.
    pub cache_control: Option<String>,
    /// The body as text.
    pub body: String,
    /// Every response header.
    pub headers: axum::http::HeaderMap,
}

impl Reply {
    /// The `name=value` part of the cookie that was set, ready for a `Cookie` header.
    ///
    /// # Panics
    /// When the response set no cookie.
    pub fn cookie(&self) -> String {
        cookie_of(&self.headers)
    }

    /// The cookie's `Max-Age` in seconds; `None` for a browser-session cookie.
    ///
    /// # Panics
    /// When the response set no cookie, or a `Max-Age` that is not a number.
    pub fn max_age(&self) -> Option<u64> {
        let set = self.set_cookie.as_deref().expect("a Set-Cookie header");
        set.split(';')
            .find_map(|a| a.trim().strip_prefix("Max-Age="))
            .map(|v| v.parse().expect("Max-Age is a number"))
    }
}

/// The `name=value` part of the first `Set-Cookie` in `headers` (a reqwest response's
/// too), ready for a `Cookie` header.
///
/// # Panics
/// When there is no `Set-Cookie` header, or it is not text.
pub fn cookie_of(headers: &axum::http::HeaderMap) -> String {
    let set = headers[header::SET_COOKIE]
        .to_str()
        .expect("a Set-Cookie header in text");
    set.split(';').next().unwrap_or_default().to_owned()
}

/// Sends one request with an optional `Cookie` header through `app`.
///
/// # Panics
/// When the request cannot be built or the body cannot be read.
pub async fn send(app: &Router, method: &str, path: &str, cookie: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = cookie.map(|c| ("cookie", c)).into_iter().collect();
    send_with(app, method, path, &headers).await
}

/// Sends one request with the given headers through `app`.
///
/// # Panics
/// When the request cannot be built or the body cannot be read.
pub async fn send_with(app: &Router, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    exchange(app, req.body(Body::empty()).expect("request")).await
}

/// Sends one request with a text body and an optional `Cookie` header through `app`.
///
/// # Panics
/// When the request cannot be built or the body cannot be read.
pub async fn send_body(
    app: &Router,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: &str,
) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    exchange(app, req.body(Body::from(body.to_owned())).expect("request")).await
}

async fn exchange(app: &Router, req: Request<Body>) -> Reply {
    let response = app
        .clone()
        .oneshot(req)
        .await
        .unwrap_or_else(|never| match never {});
    // The headers are read before the body is awaited: the future stays `Send`.
    let (set_cookie, cache_control) = {
        let text = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        (text(header::SET_COOKIE), text(header::CACHE_CONTROL))
    };
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    Reply {
        status,
        set_cookie,
        cache_control,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        headers,
    }
}

/// Starts `n` sessions through the app's `POST /incr` (a counter in the session) and
/// brings each counter to `count`; returns their cookies.
///
/// # Panics
/// When a request fails.
pub async fn sessions_with_counters(app: &Router, n: usize, count: u64) -> Vec<String> {
    let mut cookies = Vec::with_capacity(n);
    for _ in 0..n {
        let cookie = send(app, "POST", "/incr", None).await.cookie();
        for _ in 1..count {
            assert_eq!(
                send(app, "POST", "/incr", Some(&cookie)).await.status,
                StatusCode::OK
            );
        }
        cookies.push(cookie);
    }
    cookies
}

/// While the store is down: every session's request, and a new visitor's, is a 503
/// with the layer's body, and no cookie replaces a real session.
///
/// # Panics
/// When the outage is answered any other way.
pub async fn expect_outage(app: &Router, cookies: &[String]) {
    for cookie in cookies.iter().map(Some).chain([None]) {
        let reply = send(app, "POST", "/incr", cookie.map(String::as_str)).await;
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.body
        );
        assert!(
            reply.body.contains("session store is unavailable"),
            "{}",
            reply.body
        );
        assert_eq!(
            reply.set_cookie, None,
            "no fresh session may replace a real one"
        );
    }
}

/// After the store is back: requests succeed again without restarting the app (the
/// first session is retried for up to `limit`), and every other counter continues
/// from `count`, so nothing saved before the outage was lost.
///
/// # Panics
/// When the app does not recover or a session was lost.
pub async fn expect_recovery(
    app: &Router,
    cookies: &[String],
    count: u64,
    limit: std::time::Duration,
) {
    let deadline = std::time::Instant::now() + limit;
    while send(app, "POST", "/incr", Some(&cookies[0])).await.status != StatusCode::OK {
        assert!(
            std::time::Instant::now() < deadline,
            "requests never succeeded again after the store came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for (i, cookie) in cookies.iter().enumerate().skip(1) {
        let reply = send(app, "POST", "/incr", Some(cookie)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            reply.body,
            (count + 1).to_string(),
            "session {i} lost what was saved before the outage"
        );
    }
}

/// How many store calls `rounds` read requests (`GET /read`) and `rounds` write requests
/// (`POST /write`) cost, as `calls` counts them at the store. Measuring itself is
/// calibrated away by calling `calls` twice in a row first.
///
/// # Panics
/// When a request fails.
pub async fn calls_per_request<F>(app: &Router, rounds: u64, calls: F) -> (u64, u64)
where
    F: Fn() -> futures_util::future::BoxFuture<'static, u64>,
{
    let cookie = send(app, "POST", "/write", None).await.cookie();
    // Warm up connections, prepared statements and scripts.
    for _ in 0..3 {
        send(app, "GET", "/read", Some(&cookie)).await;
        send(app, "POST", "/write", Some(&cookie)).await;
    }
    let a = calls().await;
    let overhead = calls().await - a;
    let measure = async |method: &str, path: &str| {
        let before = calls().await;
        for _ in 0..rounds {
            assert!(
                send(app, method, path, Some(&cookie))
                    .await
                    .status
                    .is_success()
            );
        }
        calls().await - before - overhead
    };
    let reads = measure("GET", "/read").await;
    let writes = measure("POST", "/write").await;
    (reads, writes)
}
