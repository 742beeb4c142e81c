//! The admin API: the pool and its health, and live pool changes. It is served only
//! on its own listener (never the proxied one), and every request needs the token.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq as _;

use crate::config::MIN_TOKEN_LEN;
use crate::{Balancer, ConfigError};

/// The secret an admin request must present as `Authorization: Bearer TOKEN`.
///
/// ```
/// use tether_balancer::AdminToken;
/// assert!(AdminToken::new("correct horse battery staple").is_ok());
/// assert!(AdminToken::new("short").is_err());
/// ```
#[derive(Clone)]
pub struct AdminToken(String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl AdminToken {
    /// A token of at least [`MIN_TOKEN_LEN`] characters.
    pub fn new(token: impl Into<String>) -> Result<Self, ConfigError> {
        let token = token.into().trim().to_owned();
        if token.len() < MIN_TOKEN_LEN {
            return Err(ConfigError::AdminToken);
        }
        Ok(Self(token))
    }

    fn admits(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| bool::from(given.trim().as_bytes().ct_eq(self.0.as_bytes())))
    }
}

#[derive(Clone)]
struct Admin {
    balancer: Balancer,
    token: AdminToken,
}

pub(crate) fn router(balancer: Balancer, token: AdminToken) -> axum::Router {
    axum::Router::new()
        .route(
            "/_balancer/backends",
            axum::routing::get(show_backends).put(put_backends),
        )
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(Admin { balancer, token })
}

fn refuse() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "401 Unauthorized: the admin API needs Authorization: Bearer TOKEN\n",
    )
        .into_response()
}

async fn show_backends(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    use std::fmt::Write as _;
    if !admin.token.admits(&headers) {
        return refuse();
    }
    let mut out = String::new();
    for b in &admin.balancer.pool().backends {
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
    out.into_response()
}

async fn put_backends(State(admin): State<Admin>, headers: HeaderMap, body: String) -> Response {
    if !admin.token.admits(&headers) {
        return refuse();
    }
    let urls: Vec<String> = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if urls.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "400 Bad Request: no backend given\n",
        )
            .into_response();
    }
    if let Err(e) = crate::config::check_backends(&urls) {
        return (StatusCode::BAD_REQUEST, format!("400 Bad Request: {e}\n")).into_response();
    }
    println!("balancer: backends now {}", urls.join(" "));
    admin.balancer.set_backends(urls);
    StatusCode::NO_CONTENT.into_response()
}
