//! Session synchronisation between instances: every instance keeps every session in
//! memory and pushes each change to its peers. No store server to run.
//!
//! ```no_run
//! # async fn serve() -> Result<(), tether_core::Error> {
//! use tether_replicated::ReplicatedStore;
//!
//! let store = ReplicatedStore::builder(b"a shared secret of 16+ bytes")
//!     .peers(["http://10.0.0.2:8080/_tether", "http://10.0.0.3:8080/_tether"])
//!     .start()?;
//! store.catch_up().await; // pull a live peer's state before serving
//! let app: axum::Router = axum::Router::new()
//!     .nest("/_tether", store.router()) // what peers call
//!     .layer(tether::SessionLayer::new(store.clone()));
//! # Ok(()) }
//! ```
//!
//! # How it works
//!
//! - Each save pushes only the keys it changed, with the record's version and a
//!   hybrid logical timestamp, to every peer. Delivery is asynchronous, through a
//!   bounded queue per peer, retried until the peer answers.
//! - Concurrent writes resolve the same way on every instance: per key, the write with
//!   the later timestamp wins (ties broken by node), and a `clear` removes every key
//!   written before it.
//! - Deletes, logouts and id rotations replicate as tombstones, kept for ten minutes
//!   (longer than any retry), so a late message cannot bring a session back.
//! - A new or restarted instance pulls a full snapshot from a live peer
//!   ([`ReplicatedStore::catch_up`]) before [`ReplicatedStore::is_ready`] says yes.
//! - Messages are signed with HMAC-SHA256 over the shared secret; a batch carries the
//!   sender's per-start origin and a growing sequence number, so a replayed batch is
//!   refused. Snapshot requests carry a signed timestamp. Peers talk plain HTTP: keep
//!   them on a private network or behind TLS.
//! - If a peer's queue overflows (it was unreachable too long), the queue is dropped
//!   and the peer gets a full snapshot when it is back.
//!
//! # Costs and limits
//!
//! Memory: every instance holds every session. Bandwidth: each change goes to N-1
//! peers. Lock mode is not offered (it would need consensus between instances); the
//! store refuses it. A new session, a login, a logout or an id rotation waits (up to
//! [`ReplicatedStoreBuilder::settle_timeout`]) until the reachable peers have it, so the
//! next request sees it wherever it lands; other data changes reach the peers after
//! the replication lag, so a request on another instance within that window can miss
//! one.
//! [`ReplicatedStoreBuilder::max_sessions`] bounds memory: beyond it, creating a
//! session fails with 503 (existing sessions keep working; nothing is evicted, which
//! would make instances disagree).

mod clock;
mod state;
mod wire;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tether_core::{
    Capabilities, Changes, Created, Error, Id, Record, Result, Saved, SessionInfo, SessionStore,
    Touch, async_trait, unix_ms,
};
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::clock::Clock;
pub use crate::clock::Stamp;
use crate::state::{Event, Meta, Op, Slot, State};
use crate::wire::{Batch, MAX_SKEW_MS, SIGNATURE, Secret, TIMESTAMP};

const LAG_SAMPLES: usize = 10_000;
const BATCH_MAX: usize = 500;

/// Settings for a [`ReplicatedStore`].
#[derive(Debug, Clone)]
pub struct ReplicatedStoreBuilder {
    secret: Vec<u8>,
    peers: Vec<String>,
    max_sessions: usize,
    queue_capacity: usize,
    tombstone_ttl: Duration,
    sweep_every: Duration,
    timeout: Duration,
    settle: Duration,
}

impl ReplicatedStoreBuilder {
    /// The peers' replication URLs (where they mounted [`ReplicatedStore::router`]).
    #[must_use]
    pub fn peers<I, S>(mut self, peers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.peers = peers
            .into_iter()
            .map(|p| p.into().trim_end_matches('/').to_owned())
            .collect();
        self
    }

    /// The most sessions this instance holds (default 100,000).
    #[must_use]
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = max;
        self
    }

    /// Events queued per unreachable peer before it is marked for a full snapshot
    /// instead (default 10,000).
    #[must_use]
    pub fn queue_capacity(mut self, events: usize) -> Self {
        self.queue_capacity = events.max(1);
        self
    }

    /// How long a delivery to a peer may take (default 2 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a write that creates, rotates, binds or deletes a session waits for
    /// every reachable peer to acknowledge it before answering (default 1 s; zero turns
    /// the wait off). It is what lets the next request, on any instance, see a login or
    /// a logout. Peers whose last delivery failed are not waited for.
    #[must_use]
    pub fn settle_timeout(mut self, wait: Duration) -> Self {
        self.settle = wait;
        self
    }

    /// Starts the store's background tasks (senders, sweeper) on the current tokio
    /// runtime. Fails on a secret shorter than 16 bytes.
    ///
    /// With peers, the store answers every operation on existing sessions with
    /// [`Error::Unavailable`] until [`ReplicatedStore::catch_up`] has run: call it
    /// before serving.
    pub fn start(self) -> Result<ReplicatedStore> {
        if self.secret.len() < 16 {
            return Err(Error::Unsupported {
                store: "replicated",
                operation: "starting",
                why: "the shared secret must be at least 16 bytes",
            });
        }
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .build()
            .map_err(|e| Error::unavailable("building the replication HTTP client", e))?;
        let node = u64::from_le_bytes(Id::generate()?.as_bytes()[..8].try_into().expect("8 bytes"));
        let inner = Arc::new(Inner {
            node,
            clock: Clock::new(node),
            state: Mutex::new(State::default()),
            secret: Secret::new(&self.secret),
            peers: self
                .peers
                .iter()
                .map(|url| Peer::new(url.clone()))
                .collect(),
            max_sessions: self.max_sessions,
            queue_capacity: self.queue_capacity,
            tombstone_ms: i64::try_from(self.tombstone_ttl.as_millis()).unwrap_or(i64::MAX),
            seen: Mutex::new(HashMap::new()),
            ready: AtomicBool::new(self.peers.is_empty()),
            lag: Mutex::new(VecDeque::new()),
            client,
            settle: self.settle,
        });
        for index in 0..inner.peers.len() {
            tokio::spawn(send_loop(Arc::downgrade(&inner), index));
        }
        tokio::spawn(sweep_loop(Arc::downgrade(&inner), self.sweep_every));
        Ok(ReplicatedStore { inner })
    }
}

/// Sessions replicated between instances.
#[derive(Debug, Clone)]
pub struct ReplicatedStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    node: u64,
    clock: Clock,
    state: Mutex<State>,
    secret: Secret,
    peers: Vec<Peer>,
    max_sessions: usize,
    queue_capacity: usize,
    tombstone_ms: i64,
    /// The highest batch sequence applied, per origin.
    seen: Mutex<HashMap<u64, u64>>,
    ready: AtomicBool,
    lag: Mutex<VecDeque<i64>>,
    client: reqwest::Client,
    settle: Duration,
}

#[derive(Debug)]
struct Peer {
    url: String,
    queue: Mutex<VecDeque<Event>>,
    wake: Notify,
    resync: AtomicBool,
    /// Events ever queued for this peer (a resync's snapshot covers the dropped ones).
    queued_total: AtomicU64,
    /// Events ever acknowledged by this peer, as a count comparable to `queued_total`.
    acked_total: AtomicU64,
    /// Woken whenever `acked_total` grows or a delivery fails.
    acked: Notify,
    /// Whether the last delivery attempt failed.
    failing: AtomicBool,
    delivered: AtomicU64,
    sent_bytes: AtomicU64,
    failures: AtomicU64,
    resyncs: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Peer {
    fn new(url: String) -> Self {
        Self {
            url,
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            resync: AtomicBool::new(false),
            queued_total: AtomicU64::new(0),
            acked_total: AtomicU64::new(0),
            acked: Notify::new(),
            failing: AtomicBool::new(false),
            delivered: AtomicU64::new(0),
            sent_bytes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Replication figures, as served at `GET /stats` of the router.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// This process's node id.
    pub node: u64,
    /// Whether it caught up with a peer (or has none).
    pub ready: bool,
    /// Sessions held (expired ones not yet swept included).
    pub sessions: usize,
    /// Tombstones held.
    pub tombstones: usize,
    /// Replication lag of events received from peers, in ms: time from the write's
    /// timestamp at its origin to its application here.
    pub lag_ms_p50: Option<i64>,
    /// The 99th percentile of the same.
    pub lag_ms_p99: Option<i64>,
    /// How many lag samples (the most recent 10,000 events).
    pub lag_samples: usize,
    /// Outgoing queues.
    pub peers: Vec<PeerStats>,
}

/// One peer's outgoing queue.
#[derive(Debug, Clone, Serialize)]
pub struct PeerStats {
    /// The peer's URL.
    pub url: String,
    /// Events waiting to be delivered.
    pub queued: usize,
    /// Events delivered.
    pub delivered: u64,
    /// Bytes of the batch bodies delivered (events and snapshots), without HTTP headers.
    pub sent_bytes: u64,
    /// Failed delivery attempts.
    pub failures: u64,
    /// Full snapshots pushed after a queue overflow.
    pub resyncs: u64,
    /// The last delivery error.
    pub last_error: Option<String>,
}

impl ReplicatedStore {
    /// Settings, starting from the shared secret (at least 16 bytes).
    pub fn builder(secret: impl AsRef<[u8]>) -> ReplicatedStoreBuilder {
        ReplicatedStoreBuilder {
            secret: secret.as_ref().to_vec(),
            peers: Vec::new(),
            max_sessions: 100_000,
            queue_capacity: 10_000,
            tombstone_ttl: Duration::from_secs(600),
            sweep_every: Duration::from_secs(30),
            timeout: Duration::from_secs(2),
            settle: Duration::from_secs(1),
        }
    }

    /// Whether this instance has caught up with a live peer (or has no peers).
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst)
    }

    /// Pulls a full snapshot from the first peer that answers and merges it, then
    /// marks the instance ready. With no live peer (the first instance of a cluster)
    /// it marks the instance ready with the state it has. Returns the peer used.
    pub async fn catch_up(&self) -> Option<String> {
        for peer in &self.inner.peers {
            match self.inner.pull_snapshot(&peer.url).await {
                Ok(slots) => {
                    let mut state = lock(&self.inner.state);
                    for (id, slot) in slots {
                        state.merge(id, slot);
                    }
                    drop(state);
                    self.inner.ready.store(true, Ordering::SeqCst);
                    tracing::info!(peer = %peer.url, "caught up from a peer's snapshot");
                    return Some(peer.url.clone());
                }
                Err(e) => tracing::warn!(peer = %peer.url, error = %e, "no snapshot from peer"),
            }
        }
        self.inner.ready.store(true, Ordering::SeqCst);
        None
    }

    /// Before catching up, "unknown" could be a session a peer has, and a user's
    /// sessions could be only some of them: answering from that would log users out or
    /// miss sessions. Unavailable (`503`, retried) is the truthful answer. Creating a
    /// session needs no history, so it is not held back.
    fn ensure_ready(&self, operation: &'static str) -> Result<()> {
        if self.is_ready() {
            return Ok(());
        }
        Err(Error::unavailable(
            operation,
            std::io::Error::other("this instance is still catching up with its peers"),
        ))
    }

    /// Replication figures: queues, lag, memory.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// The routes peers call: `POST /events`, `GET /snapshot`, and `GET /stats`.
    /// Mount it under a path of the app (the peers' URLs point there).
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .route("/events", post(receive_events))
            .route("/snapshot", get(serve_snapshot))
            .route("/stats", get(serve_stats))
            .with_state(self.inner.clone())
    }

    /// Applies local events and queues them for every peer, in stamp order.
    fn publish(&self, state: &mut State, ops: Vec<Op>) {
        for op in ops {
            let event = Event {
                stamp: self.inner.clock.tick(),
                op,
            };
            state.apply(&event);
            for peer in &self.inner.peers {
                let mut queue = lock(&peer.queue);
                peer.queued_total.fetch_add(1, Ordering::SeqCst);
                if queue.len() >= self.inner.queue_capacity {
                    // Too far behind: a full snapshot will replace the queue.
                    queue.clear();
                    peer.resync.store(true, Ordering::SeqCst);
                } else {
                    queue.push_back(event.clone());
                }
                drop(queue);
                peer.wake.notify_one();
            }
        }
    }

    /// Each peer's count of events queued so far: what [`Self::settle`] waits for.
    fn marks(&self) -> Vec<u64> {
        self.inner
            .peers
            .iter()
            .map(|p| p.queued_total.load(Ordering::SeqCst))
            .collect()
    }

    /// Waits until every peer that is not failing has acknowledged the events up to
    /// `marks`, or the settle timeout passes. Never fails: replication still catches
    /// up later; this only narrows the window in which another instance has not
    /// heard of a login or a logout yet.
    async fn settle(&self, marks: Vec<u64>) {
        let wait = async {
            for (peer, mark) in self.inner.peers.iter().zip(marks) {
                loop {
                    let notified = peer.acked.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    if peer.acked_total.load(Ordering::SeqCst) >= mark
                        || peer.failing.load(Ordering::SeqCst)
                    {
                        break;
                    }
                    notified.await;
                }
            }
        };
        if tokio::time::timeout(self.inner.settle, wait).await.is_err() {
            tracing::debug!("a peer did not acknowledge a session change in time");
        }
    }

    fn enforce_cap(&self, state: &mut State, user: &str, keep: &Id, cap: u32) {
        let sessions = state
            .user_sessions(user, OffsetDateTime::now_utc())
            .into_iter()
            .map(|s| (s.id, s.created));
        let ops = tether_core::sessions_beyond_cap(sessions, keep, cap)
            .into_iter()
            .map(|id| Op::Delete { id })
            .collect();
        self.publish(state, ops);
    }
}

impl Inner {
    fn stats(&self) -> Stats {
        let (sessions, tombstones) = {
            let state = lock(&self.state);
            (state.live_count(), state.tombstones())
        };
        let mut lags: Vec<i64> = lock(&self.lag).iter().copied().collect();
        lags.sort_unstable();
        let pct = |p: usize| (!lags.is_empty()).then(|| lags[(lags.len() - 1) * p / 100]);
        Stats {
            node: self.node,
            ready: self.ready.load(Ordering::SeqCst),
            sessions,
            tombstones,
            lag_ms_p50: pct(50),
            lag_ms_p99: pct(99),
            lag_samples: lags.len(),
            peers: self
                .peers
                .iter()
                .map(|p| PeerStats {
                    url: p.url.clone(),
                    queued: lock(&p.queue).len(),
                    delivered: p.delivered.load(Ordering::Relaxed),
                    sent_bytes: p.sent_bytes.load(Ordering::Relaxed),
                    failures: p.failures.load(Ordering::Relaxed),
                    resyncs: p.resyncs.load(Ordering::Relaxed),
                    last_error: lock(&p.last_error).clone(),
                })
                .collect(),
        }
    }

    async fn pull_snapshot(&self, url: &str) -> Result<Vec<(Id, Slot)>, String> {
        let ts = unix_ms::now_ms().to_string();
        let response = self
            .client
            .get(format!("{url}/snapshot"))
            .header(TIMESTAMP, &ts)
            .header(SIGNATURE, self.secret.sign(&[b"snapshot", ts.as_bytes()]))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        let signature = response
            .headers()
            .get(SIGNATURE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or("unsigned snapshot")?;
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        if !self.secret.verify(&[b"snapshot-body", &body], &signature) {
            return Err("snapshot signature does not verify".into());
        }
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    }
}

async fn send_loop(inner: Weak<Inner>, index: usize) {
    let mut seq = 0u64;
    let mut pending: Vec<Event> = Vec::new();
    let mut pending_snapshot: Option<Vec<(Id, Slot)>> = None;
    // How many of this peer's queued events the pending batch acknowledges.
    let mut covers = 0u64;
    let mut pause = Duration::from_millis(50);
    loop {
        let Some(store) = inner.upgrade() else { return };
        let peer = &store.peers[index];
        if pending.is_empty() && pending_snapshot.is_none() {
            if peer.resync.swap(false, Ordering::SeqCst) {
                let state = lock(&store.state);
                pending_snapshot = Some(state.snapshot());
                let mut queue = lock(&peer.queue);
                queue.clear();
                // Events are queued under the state lock, so the snapshot holds
                // every event counted so far.
                covers = peer.queued_total.load(Ordering::SeqCst);
                drop(queue);
                drop(state);
                peer.resyncs.fetch_add(1, Ordering::Relaxed);
            } else {
                let mut queue = lock(&peer.queue);
                let n = queue.len().min(BATCH_MAX);
                pending.extend(queue.drain(..n));
                covers += n as u64;
            }
            if pending.is_empty() && pending_snapshot.is_none() {
                // Wakes for new events, or once a second to notice shutdown.
                let _ = tokio::time::timeout(Duration::from_secs(1), peer.wake.notified()).await;
                continue;
            }
            seq += 1;
        }
        let batch = Batch {
            origin: store.node,
            seq,
            events: pending.clone(),
            snapshot: pending_snapshot.clone(),
        };
        let body = match serde_json::to_vec(&batch) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(error = %e, "could not encode a replication batch; dropping it");
                pending.clear();
                pending_snapshot = None;
                continue;
            }
        };
        let signature = store.secret.sign(&[b"events", &body]);
        let size = body.len() as u64;
        let sent = store
            .client
            .post(format!("{}/events", peer.url))
            .header(SIGNATURE, signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        match sent {
            // 409: the peer had already applied this batch (an earlier try got through).
            Ok(r) if r.status().is_success() || r.status() == StatusCode::CONFLICT => {
                peer.delivered
                    .fetch_add(pending.len() as u64, Ordering::Relaxed);
                peer.sent_bytes.fetch_add(size, Ordering::Relaxed);
                peer.acked_total.fetch_max(covers, Ordering::SeqCst);
                peer.failing.store(false, Ordering::SeqCst);
                peer.acked.notify_waiters();
                pending.clear();
                pending_snapshot = None;
                pause = Duration::from_millis(50);
            }
            outcome => {
                let why = match outcome {
                    Ok(r) => format!("answered {}", r.status()),
                    Err(e) => e.to_string(),
                };
                peer.failures.fetch_add(1, Ordering::Relaxed);
                peer.failing.store(true, Ordering::SeqCst);
                peer.acked.notify_waiters();
                tracing::debug!(peer = %peer.url, error = %why, "replication delivery failed; retrying");
                *lock(&peer.last_error) = Some(why);
                drop(store);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn sweep_loop(inner: Weak<Inner>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(store) = inner.upgrade() else { return };
        let swept = lock(&store.state).sweep(OffsetDateTime::now_utc(), store.tombstone_ms);
        if swept > 0 {
            tracing::debug!(swept, "swept expired sessions and old tombstones");
        }
    }
}

fn refuse(status: StatusCode, why: &'static str) -> Response {
    tracing::warn!(%status, why, "refused a replication request");
    (status, why).into_response()
}

async fn receive_events(
    AxumState(inner): AxumState<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(signature) = headers.get(SIGNATURE).and_then(|v| v.to_str().ok()) else {
        return refuse(StatusCode::UNAUTHORIZED, "unsigned replication message");
    };
    if !inner.secret.verify(&[b"events", &body], signature) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "replication message signature does not verify",
        );
    }
    let Ok(batch) = serde_json::from_slice::<Batch>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "malformed replication message");
    };
    let mut seen = lock(&inner.seen);
    if seen
        .get(&batch.origin)
        .is_some_and(|last| *last >= batch.seq)
    {
        return refuse(StatusCode::CONFLICT, "replayed replication message");
    }
    let now = unix_ms::now_ms();
    let mut state = lock(&inner.state);
    let mut lag = lock(&inner.lag);
    for event in &batch.events {
        inner.clock.observe(event.stamp);
        state.apply(event);
        if lag.len() == LAG_SAMPLES {
            lag.pop_front();
        }
        lag.push_back(now - event.stamp.ms);
    }
    if let Some(slots) = batch.snapshot {
        for (id, slot) in slots {
            state.merge(id, slot);
        }
    }
    seen.insert(batch.origin, batch.seq);
    StatusCode::OK.into_response()
}

async fn serve_snapshot(AxumState(inner): AxumState<Arc<Inner>>, headers: HeaderMap) -> Response {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let (Some(ts), Some(signature)) = (text(TIMESTAMP), text(SIGNATURE)) else {
        return refuse(StatusCode::UNAUTHORIZED, "unsigned snapshot request");
    };
    if !inner
        .secret
        .verify(&[b"snapshot", ts.as_bytes()], signature)
    {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "snapshot request signature does not verify",
        );
    }
    if ts
        .parse::<i64>()
        .map_or(true, |t| (unix_ms::now_ms() - t).abs() > MAX_SKEW_MS)
    {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "stale or replayed snapshot request",
        );
    }
    let slots = lock(&inner.state).snapshot();
    let Ok(body) = serde_json::to_vec(&slots) else {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not encode the snapshot",
        );
    };
    let Ok(signature) = HeaderValue::from_str(&inner.secret.sign(&[b"snapshot-body", &body]))
    else {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not sign the snapshot",
        );
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(SIGNATURE, signature);
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn serve_stats(AxumState(inner): AxumState<Arc<Inner>>) -> axum::Json<Stats> {
    axum::Json(inner.stats())
}

#[async_trait]
impl SessionStore for ReplicatedStore {
    fn name(&self) -> &'static str {
        "replicated"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            user_index: true,
            locking: false,
            size_limit: None,
        }
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        self.ensure_ready("loading a session")?;
        Ok(lock(&self.inner.state)
            .get(id, OffsetDateTime::now_utc())
            .cloned())
    }

    async fn create(&self, id: &Id, record: &Record) -> Result<Created> {
        let marks = {
            let mut state = lock(&self.inner.state);
            if state.known(id) {
                return Ok(Created::IdTaken);
            }
            if state.live_count() >= self.inner.max_sessions {
                return Err(Error::unavailable(
                    "creating a session",
                    std::io::Error::other(format!(
                        "the replicated store is full ({} sessions; raise max_sessions or use a central store)",
                        self.inner.max_sessions
                    )),
                ));
            }
            let op = Op::Upsert {
                id: *id,
                meta: Meta::of(record, Some(record.user.clone())),
                clear: true,
                updates: record
                    .data
                    .iter()
                    .map(|(k, v)| (k.clone(), Some(v.clone())))
                    .collect(),
            };
            self.publish(&mut state, vec![op]);
            self.marks()
        };
        self.settle(marks).await;
        Ok(Created::Yes)
    }

    async fn save(&self, id: &Id, changes: &Changes) -> Result<Saved> {
        self.ensure_ready("saving a session")?;
        let (version, marks) = {
            let mut state = lock(&self.inner.state);
            let Some(current) = state.get(id, OffsetDateTime::now_utc()) else {
                return Ok(Saved::Gone);
            };
            let mut after = current.clone();
            after.apply(changes);
            let op = Op::Upsert {
                id: *id,
                meta: Meta::of(&after, changes.user.clone()),
                clear: changes.clear,
                updates: changes.updates.clone(),
            };
            self.publish(&mut state, vec![op]);
            if let (Some(user), Some(cap)) = (&after.user, changes.user_cap) {
                self.enforce_cap(&mut state, user, id, cap);
            }
            // A login or logout must be seen by the next request wherever it lands; a
            // data change may trail by the replication lag.
            (
                after.version,
                (changes.user.is_some() || changes.clear).then(|| self.marks()),
            )
        };
        if let Some(marks) = marks {
            self.settle(marks).await;
        }
        Ok(Saved::Version(version))
    }

    async fn touch(&self, id: &Id, touch: &Touch) -> Result<bool> {
        self.ensure_ready("touching a session")?;
        let mut state = lock(&self.inner.state);
        if state.get(id, OffsetDateTime::now_utc()).is_none() {
            return Ok(false);
        }
        let op = Op::Touch {
            id: *id,
            last_seen: unix_ms::to_ms(touch.last_seen),
            idle_deadline: unix_ms::to_ms(touch.idle_deadline),
        };
        self.publish(&mut state, vec![op]);
        Ok(true)
    }

    async fn delete(&self, id: &Id) -> Result<bool> {
        self.ensure_ready("deleting a session")?;
        let marks = {
            let mut state = lock(&self.inner.state);
            if state.get(id, OffsetDateTime::now_utc()).is_none() {
                return Ok(false);
            }
            self.publish(&mut state, vec![Op::Delete { id: *id }]);
            self.marks()
        };
        self.settle(marks).await;
        Ok(true)
    }

    async fn cycle_id(&self, old: &Id, new: &Id, changes: &Changes) -> Result<Saved> {
        self.ensure_ready("rotating a session id")?;
        let (version, marks) = {
            let mut state = lock(&self.inner.state);
            let Some(current) = state.get(old, OffsetDateTime::now_utc()) else {
                return Ok(Saved::Gone);
            };
            if state.known(new) {
                return Err(Error::IdCollision);
            }
            let mut moved = current.clone();
            moved.apply(changes);
            let ops = vec![
                Op::Delete { id: *old },
                Op::Upsert {
                    id: *new,
                    meta: Meta::of(&moved, Some(moved.user.clone())),
                    clear: true,
                    updates: moved
                        .data
                        .iter()
                        .map(|(k, v)| (k.clone(), Some(v.clone())))
                        .collect(),
                },
            ];
            self.publish(&mut state, ops);
            if let (Some(user), Some(cap)) = (&moved.user, changes.user_cap) {
                self.enforce_cap(&mut state, user, new, cap);
            }
            (moved.version, self.marks())
        };
        self.settle(marks).await;
        Ok(Saved::Version(version))
    }

    async fn user_sessions(&self, user: &str) -> Result<Vec<SessionInfo>> {
        self.ensure_ready("listing a user's sessions")?;
        Ok(lock(&self.inner.state).user_sessions(user, OffsetDateTime::now_utc()))
    }

    async fn delete_user_sessions(&self, user: &str) -> Result<u64> {
        self.ensure_ready("ending a user's sessions")?;
        let (ended, marks) = {
            let mut state = lock(&self.inner.state);
            let ids: Vec<Id> = state
                .user_sessions(user, OffsetDateTime::now_utc())
                .into_iter()
                .map(|s| s.id)
                .collect();
            let ended = ids.len() as u64;
            self.publish(
                &mut state,
                ids.into_iter().map(|id| Op::Delete { id }).collect(),
            );
            (ended, self.marks())
        };
        self.settle(marks).await;
        Ok(ended)
    }
}
