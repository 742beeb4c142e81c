//! A forward HTTP proxy per node (the node's `HTTP_PROXY`), through which all its
//! replication and membership requests go: the test cuts a node off, or one node
//! from another, by refusing what passes, on loopback.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// What one proxy lets through.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    /// Ports it refuses to reach.
    blocked: Mutex<HashSet<u16>>,
}

impl Gate {
    pub(crate) fn block(&self, ports: &[u16]) {
        self.blocked.lock().unwrap().extend(ports);
    }

    pub(crate) fn open(&self) {
        self.blocked.lock().unwrap().clear();
    }
}

/// Starts a proxy on `runtime`: its port and its gate.
pub(crate) fn start(runtime: &tokio::runtime::Runtime) -> (u16, Arc<Gate>) {
    let gate = Arc::new(Gate::default());
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let app = axum::Router::new()
        .fallback(forward)
        .with_state((gate.clone(), client));
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, gate)
}

/// Forwards an absolute-form request (`POST http://127.0.0.1:PORT/…`) unless its
/// destination is blocked; a blocked one is answered 502, as a proxy that cannot
/// reach the host answers.
async fn forward(
    State((gate, client)): State<(Arc<Gate>, reqwest::Client)>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let Some(port) = parts.uri.port_u16() else {
        return (StatusCode::BAD_REQUEST, "not a proxy request").into_response();
    };
    if gate.blocked.lock().unwrap().contains(&port) {
        return (StatusCode::BAD_GATEWAY, "cut by the test").into_response();
    }
    let Ok(body) = axum::body::to_bytes(body, 16 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut outgoing = client.request(parts.method, parts.uri.to_string());
    for (name, value) in &parts.headers {
        if name != axum::http::header::HOST && name != "proxy-connection" {
            outgoing = outgoing.header(name, value);
        }
    }
    let Ok(answer) = outgoing.body(body).send().await else {
        return (StatusCode::BAD_GATEWAY, "unreachable").into_response();
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        response = response.header(name, value);
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    response.body(Body::from(bytes)).unwrap()
}
