//! What the process tests share: the node process (re-executed from the test
//! binary) and the test's handles on it.
#![allow(dead_code)] // each test binary uses some of it

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use tether_core::{Changes, Expiry, Id, Record, SessionStore};
use tether_replicated::ReplicatedStore;

pub(crate) mod proxy;

pub(crate) const ROLE: &str = "TETHER_REPLICATED_TEST_NODE";
pub(crate) const SECRET: &[u8] = b"three-process test secret";
/// What a node started with [`Flags::wrong_secret`] signs with.
pub(crate) const WRONG_SECRET: &[u8] = b"not the cluster's secret!";

// ---- the node process ----------------------------------------------------------------

/// `PORT;PEER,PEER;FLAGS`: serves the store's replication routes under /_tether and a
/// small API for the test. FLAGS: `m` takes part in membership (advertising
/// `http://127.0.0.1:PORT/_tether`, the peers being seeds), `n` names this node and
/// its seeds `localhost` rather than `127.0.0.1`, `s` probes every 5 s
/// instead of 200 ms, `x` signs with [`WRONG_SECRET`]. SIGTERM leaves the cluster,
/// then exits.
pub(crate) fn node(spec: &str) {
    let mut fields = spec.split(';');
    let port: u16 = fields.next().unwrap().parse().unwrap();
    let peers: Vec<String> = fields
        .next()
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    let flags = fields.next().unwrap_or_default();
    let host = if flags.contains('n') {
        "localhost"
    } else {
        "127.0.0.1"
    };
    let peers: Vec<String> = peers
        .into_iter()
        .map(|p| p.replace("127.0.0.1", host))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let secret = if flags.contains('x') {
            WRONG_SECRET
        } else {
            SECRET
        };
        let mut builder = ReplicatedStore::builder(secret)
            .peers(peers)
            .timeout(Duration::from_millis(500))
            // Long enough that a settled write never times out on a slow machine: the
            // checks below that a create or delete is everywhere once answered then
            // test the acknowledgement, not the speed.
            .settle_timeout(Duration::from_secs(30));
        if flags.contains('m') {
            builder = builder
                .advertise(format!("http://{host}:{port}/_tether"))
                .membership_refresh(Duration::from_millis(500))
                .probe_period(if flags.contains('s') {
                    Duration::from_secs(5)
                } else {
                    Duration::from_millis(200)
                });
        }
        let store = builder.start().unwrap();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let app = Router::new()
            .route("/ready", get(ready))
            .route("/stats", get(stats))
            .route("/s/{id}", get(read).post(create).delete(remove))
            .route("/s/{id}/{key}", put(write))
            .with_state(store.clone())
            .nest("/_tether", store.router());
        let serve = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        store.catch_up_until_ready().await;
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        tokio::select! {
            served = serve => served.unwrap(),
            _ = term.recv() => store.leave().await,
        }
    });
}

/// The store's figures, unsigned: the test's own view.
pub(crate) async fn stats(
    State(store): State<ReplicatedStore>,
) -> axum::Json<tether_replicated::Stats> {
    axum::Json(store.stats())
}

/// Ready for traffic: caught up and, with membership, known to every member.
pub(crate) async fn ready(State(store): State<ReplicatedStore>) -> StatusCode {
    if store.is_ready() && store.is_joined() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

pub(crate) async fn create(
    State(store): State<ReplicatedStore>,
    Path(id): Path<String>,
) -> StatusCode {
    let id = Id::parse(&id).unwrap();
    let record = Record::new(time::OffsetDateTime::now_utc(), &Expiry::default());
    store.create(&id, &record).await.unwrap();
    StatusCode::CREATED
}

pub(crate) async fn write(
    State(store): State<ReplicatedStore>,
    Path((id, key)): Path<(String, String)>,
    axum::Json(value): axum::Json<Value>,
) -> StatusCode {
    let id = Id::parse(&id).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let mut changes = Changes::new(now, now + time::Duration::hours(1));
    changes.set(key, value);
    store.save(&id, &changes).await.unwrap();
    StatusCode::NO_CONTENT
}

pub(crate) async fn remove(
    State(store): State<ReplicatedStore>,
    Path(id): Path<String>,
) -> StatusCode {
    let id = Id::parse(&id).unwrap();
    store.delete(&id).await.unwrap();
    StatusCode::NO_CONTENT
}

pub(crate) async fn read(
    State(store): State<ReplicatedStore>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, StatusCode> {
    let id = Id::parse(&id).ok_or(StatusCode::BAD_REQUEST)?;
    match store.load(&id).await.unwrap() {
        Some(record) => Ok(axum::Json(Value::Object(record.data))),
        None => Err(StatusCode::NOT_FOUND),
    }
}

// ---- the test --------------------------------------------------------------------------

pub(crate) struct Node {
    pub(crate) port: u16,
    pub(crate) child: Child,
}

impl Node {
    pub(crate) fn start(port: u16, peers: &[u16]) -> Self {
        Self::spawn(port, peers, "")
    }

    /// A node in membership, knowing only `seeds`.
    pub(crate) fn join(port: u16, seeds: &[u16]) -> Self {
        Self::spawn(port, seeds, "m")
    }

    pub(crate) fn spawn(port: u16, peers: &[u16], flags: &str) -> Self {
        Self::spawn_with(port, peers, flags, &[])
    }

    /// As [`Node::spawn`], with more environment variables (`HTTP_PROXY`, say).
    pub(crate) fn spawn_with(
        port: u16,
        peers: &[u16],
        flags: &str,
        env: &[(&str, String)],
    ) -> Self {
        let peers: Vec<String> = peers
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}/_tether"))
            .collect();
        let child = Command::new(std::env::current_exe().unwrap())
            .env(ROLE, format!("{port};{};{flags}", peers.join(",")))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Self { port, child }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

pub(crate) fn is_ready(http: &reqwest::blocking::Client, node: &Node) -> bool {
    http.get(node.url("/ready"))
        .send()
        .is_ok_and(|r| r.status() == 200)
}

pub(crate) fn data(
    http: &reqwest::blocking::Client,
    node: &Node,
    id: &Id,
) -> Option<serde_json::Map<String, Value>> {
    let r = http.get(node.url(&format!("/s/{id}"))).send().ok()?;
    (r.status() == 200).then(|| r.json().unwrap())
}

pub(crate) fn write_keys(
    http: &reqwest::blocking::Client,
    node: &Node,
    id: &Id,
    range: std::ops::Range<usize>,
) {
    for i in range {
        let r = http
            .put(node.url(&format!("/s/{id}/k{i}")))
            .json(&json!(i))
            .send()
            .unwrap();
        assert_eq!(r.status(), 204);
    }
}

pub(crate) fn has_keys(data: Option<&serde_json::Map<String, Value>>, n: usize) -> bool {
    data.is_some_and(|d| (0..n).all(|i| d.get(&format!("k{i}")) == Some(&json!(i))))
}

pub(crate) fn sign(parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET).unwrap();
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}
