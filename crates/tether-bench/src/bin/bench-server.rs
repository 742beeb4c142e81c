//! `bench-server`: serves one benchmark app (see `bench_apps::apps`) on one tokio
//! worker thread; the driver pins it to one core.

use bench_apps::apps::{app, fail, run};

fn main() {
    run(async |args| {
        let app = app(&args).await;
        let listen = args
            .listen
            .as_deref()
            .unwrap_or_else(|| fail("--listen ADDR"));
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .unwrap_or_else(|e| fail(&format!("cannot listen on {listen}: {e}")));
        if let Err(e) = axum::serve(listener, app).await {
            fail(&e.to_string());
        }
    });
}
