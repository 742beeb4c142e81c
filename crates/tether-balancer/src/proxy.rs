//! Forwarding one request: headers cleaned of hop-by-hop fields, the client's address
//! appended, a bounded wait for the backend, and the retry rule.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::{Backend, Balancer, ROUTE_COOKIE, Route};
use tether_server::X_FORWARDED_FOR;

/// Removes the hop-by-hop fields of RFC 9110 §7.6.1: the ones `Connection` names, and
/// `Connection`, `Keep-Alive`, `Proxy-Connection`, `Proxy-Authenticate`,
/// `Proxy-Authorization`, `TE`, `Trailer`, `Transfer-Encoding` and `Upgrade`. They
/// describe one connection, not the message, and must not cross a proxy.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert("connection", "close, x-secret".parse().unwrap());
/// headers.insert("x-secret", "1".parse().unwrap());
/// headers.insert("proxy-authorization", "Basic Zm9vOmJhcg==".parse().unwrap());
/// headers.insert("accept", "*/*".parse().unwrap());
/// tether_balancer::strip_hop_by_hop(&mut headers);
/// assert_eq!(headers.len(), 1);
/// assert!(headers.contains_key("accept"));
/// ```
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

/// Paths the balancer never forwards: the replicated store's peer protocol
/// (`/_tether/…`) is for instances only.
fn is_private(path: &str) -> bool {
    path == "/_tether" || path.starts_with("/_tether/")
}

pub(crate) async fn proxy(
    State(balancer): State<Balancer>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut parts: http::request::Parts,
    // Read whole, up to `MAX_REQUEST_BODY` (the router's `DefaultBodyLimit`; `413`
    // above it), so that the request can be sent again.
    body: Bytes,
) -> Response {
    if is_private(parts.uri.path()) {
        return (StatusCode::NOT_FOUND, "404 Not Found\n").into_response();
    }
    let trusted = &balancer.inner.config.trusted_proxies;
    let client = trusted.client(peer.ip(), &parts.headers);
    let forwarded = trusted.forward_header(peer.ip(), &parts.headers);
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.insert(X_FORWARDED_FOR, forwarded);
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
    let mut failed = false;
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
            Err(Retry) => failed = true,
        }
    }
    if failed {
        bad_gateway()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Unavailable: no healthy backend\n",
        )
            .into_response()
    }
}

/// The backend failed before answering a request that is safe to send again.
struct Retry;

// The body names no backend: internal addresses are not the client's business.
fn bad_gateway() -> Response {
    (
        StatusCode::BAD_GATEWAY,
        "502 Bad Gateway: the backend did not answer\n",
    )
        .into_response()
}

struct InFlight(Arc<Backend>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Sends `req` to the route's backend. A non-idempotent request that fails after the
/// connection was made is a `502` answer: the backend may have acted on it, so it is
/// not sent again. A backend that does not answer within the response timeout is a
/// `504`, and the request is not sent again (it may still be running there).
async fn forward(
    balancer: &Balancer,
    route: Route,
    req: http::Request<Body>,
    path: &str,
) -> Result<Response, Retry> {
    let backend = route.backend;
    backend.in_flight.fetch_add(1, Ordering::Relaxed);
    let _in_flight = InFlight(backend.clone());
    let method = req.method().clone();
    let config = &balancer.inner.config;
    let answer =
        tokio::time::timeout(config.response_timeout, balancer.inner.client.request(req)).await;
    let Ok(result) = answer else {
        println!(
            "balancer: {} did not answer {method} {path} within {:?}",
            backend.url, config.response_timeout
        );
        return Ok((
            StatusCode::GATEWAY_TIMEOUT,
            "504 Gateway Timeout: the backend did not answer in time\n",
        )
            .into_response());
    };
    match result {
        Ok(response) => {
            backend.served.fetch_add(1, Ordering::Relaxed);
            let mut response = response.map(Body::new);
            strip_hop_by_hop(response.headers_mut());
            if config.log_requests {
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
                return Err(Retry);
            }
            Ok(bad_gateway())
        }
    }
}
