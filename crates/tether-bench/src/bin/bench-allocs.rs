//! `bench-allocs`: heap allocations per request, counted by an instrumented global
//! allocator while the benchmark app (router, session layer, handler; no HTTP server
//! or socket) answers requests in process. Takes `bench-server`'s arguments (not
//! `--listen`) and prints one JSON object, endpoint to mean allocations per request.
//!
//! A binary of its own, so the throughput runs' `bench-server` pays nothing for the
//! counting.

use std::alloc::System;

use axum::Router;
use axum::body::Body;
use bench_apps::apps::{app, fail, run};
use http::{Request, header};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::ServiceExt as _;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Requests per endpoint; the figure is their mean.
const REQUESTS: u32 = 1000;

/// Seeded sessions the cookied requests cycle through.
const SESSIONS: usize = 100;

fn request(method: &str, path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    builder
        .body(Body::empty())
        .unwrap_or_else(|e| fail(&e.to_string()))
}

/// Sends one request and reads the whole response; the `Set-Cookie` pair, if any.
async fn send(app: &Router, request: Request<Body>) -> Option<String> {
    let response = app
        .clone()
        .oneshot(request)
        .await
        .unwrap_or_else(|e| match e {});
    if !response.status().is_success() {
        fail(&format!("the app answered {}", response.status()));
    }
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let _ = axum::body::to_bytes(response.into_body(), usize::MAX).await;
    cookie
}

/// Allocations per request for each endpoint: `untouched`, `read` and `write` with
/// a seeded session's cookie, `login` with none. Building the requests is not counted.
async fn count(app: Router) -> String {
    let mut cookies = Vec::new();
    for _ in 0..SESSIONS {
        cookies.push(send(&app, request("POST", "/write", None)).await);
    }
    let mut out = Vec::new();
    for (name, method, path, with_cookie) in [
        ("untouched", "GET", "/untouched", true),
        ("read", "GET", "/read", true),
        ("write", "POST", "/write", true),
        ("login", "POST", "/login", false),
    ] {
        let cookie = |i: usize| cookies[i % SESSIONS].as_deref().filter(|_| with_cookie);
        // A warm-up pass, so state built lazily on first use is not counted.
        for i in 0..10 {
            send(&app, request(method, path, cookie(i))).await;
        }
        let requests: Vec<Request<Body>> = (0..REQUESTS as usize)
            .map(|i| request(method, path, cookie(i)))
            .collect();
        let region = Region::new(GLOBAL);
        for request in requests {
            send(&app, request).await;
        }
        let stats = region.change();
        let allocations = stats.allocations + stats.reallocations;
        #[allow(clippy::cast_precision_loss)]
        let mean = allocations as f64 / f64::from(REQUESTS);
        out.push(format!("\"{name}\":{mean:.1}"));
    }
    format!("{{{}}}", out.join(","))
}

fn main() {
    run(async |args| {
        let app = app(&args).await;
        println!("{}", count(app).await);
    });
}
