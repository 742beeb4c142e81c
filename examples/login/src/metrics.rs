//! The instance's metrics for Prometheus, on a listener of their own (never the app's,
//! so the public site and the balancer never expose them).

use std::time::Duration;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusBuilder;

/// The most connections the metrics listener keeps open: a few scrapers, never
/// enough to take the descriptors the app needs.
const MAX_CONNECTIONS: usize = 8;

/// Installs the Prometheus recorder for the `metrics` facade (tether's store calls,
/// sessions, locks, replication) and serves `GET /metrics` on `addr`, within the app
/// listener's deadlines (`limits`) and a cap of its own.
///
/// # Errors
/// When the recorder cannot be installed or the address cannot be bound.
pub(crate) async fn serve(addr: &str, limits: tether_server::Limits) -> Result<(), String> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} for metrics: {e}"))?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let body = handle.render();
            async move { ([(CONTENT_TYPE, "text/plain; version=0.0.4")], body) }
        }),
    );
    let limits = tether_server::Limits {
        max_connections: MAX_CONNECTIONS.min(limits.max_connections),
        ..limits
    };
    tokio::spawn(async move {
        if let Err(e) = tether_server::serve(listener, app, limits, std::future::pending()).await {
            eprintln!("login: the metrics listener failed: {e}");
        }
    });
    Ok(())
}
