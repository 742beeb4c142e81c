//! The receiving side: the routes peers call, each needing the shared secret.
//!
//! - `GET /hello`: this node's id and readiness, signed over the caller's nonce.
//! - `POST /events`: a signed [`Batch`] addressed to this node's id.
//! - `GET /snapshot?after=ID`: one page of the state, signed over the caller's nonce;
//!   `503` with `x-tether-not-ready` while this node is catching up itself.
//! - `POST /gossip`: a signed membership message (see the `membership` module).
//! - `GET /stats`: replication figures (a signed request: see
//!   [`crate::sign_stats_request`]).
//!
//! Signed requests carry a timestamp; one more than 30 s off this node's clock is
//! refused, and the refusal carries this node's time so the caller can name the skew.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Query, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tether_core::{Id, unix_ms};

use crate::wire::{
    self, BATCH_BYTES, BODY_DEADLINE, Batch, DIGEST, Hello, MAX_BODY, MAX_SKEW_MS, NONCE,
    NOT_READY, ORIGIN, Page, SEQ, SIGNATURE, TIME, TIMESTAMP, TO, batch_binding,
};
use crate::{Inner, LAG_SAMPLES, lock};

/// How many senders' last sequence numbers a node remembers (each restart of a peer
/// is a new sender).
const SEEN_ORIGINS: usize = 256;

pub(crate) fn router(inner: Arc<Inner>) -> axum::Router {
    axum::Router::new()
        .route("/hello", get(hello))
        .route("/events", post(receive_events))
        .route("/snapshot", get(serve_snapshot))
        .route("/stats", get(serve_stats))
        .route(
            "/gossip",
            post(|AxumState(inner): AxumState<Arc<Inner>>, request| {
                crate::membership::receive(inner, request)
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(inner)
}

pub(crate) fn refuse(status: StatusCode, why: &'static str) -> Response {
    tracing::warn!(%status, why, "refused a replication request");
    (status, why).into_response()
}

/// Checks a signed request for `what` (with `extra` signed too); its nonce, or the
/// refusal.
pub(crate) fn check_signed(
    inner: &Inner,
    headers: &HeaderMap,
    what: &str,
    extra: &[u8],
) -> Result<String, Box<Response>> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let (Some(ts), Some(nonce), Some(signature)) = (text(TIMESTAMP), text(NONCE), text(SIGNATURE))
    else {
        return Err(Box::new(refuse(
            StatusCode::UNAUTHORIZED,
            "unsigned request",
        )));
    };
    if !inner.secret.verify(
        &[what.as_bytes(), ts.as_bytes(), nonce.as_bytes(), extra],
        signature,
    ) {
        return Err(Box::new(refuse(
            StatusCode::UNAUTHORIZED,
            "the request's signature does not verify (another secret?)",
        )));
    }
    let now = unix_ms::now_ms();
    if ts
        .parse::<i64>()
        .map_or(true, |t| (now - t).abs() > MAX_SKEW_MS)
    {
        let mut response = refuse(
            StatusCode::UNAUTHORIZED,
            "stale request: its time is more than 30 s from this node's clock (clock skew, or a replay)",
        );
        if let Ok(value) = HeaderValue::from_str(&now.to_string()) {
            response.headers_mut().insert(TIME, value);
        }
        return Err(Box::new(response));
    }
    Ok(nonce.to_owned())
}

/// A JSON body signed over `what` and the request's nonce.
fn signed_json(inner: &Inner, what: &[u8], nonce: &str, value: &impl serde::Serialize) -> Response {
    let Ok(body) = serde_json::to_vec(value) else {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not encode the answer",
        );
    };
    let Ok(signature) = HeaderValue::from_str(&inner.secret.sign(&[what, nonce.as_bytes(), &body]))
    else {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not sign the answer",
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

/// Who says hello, when a joining instance does: its URL and node id.
#[derive(serde::Deserialize)]
struct HelloQuery {
    from: Option<String>,
    node: Option<u64>,
}

async fn hello(
    AxumState(inner): AxumState<Arc<Inner>>,
    headers: HeaderMap,
    Query(query): Query<HelloQuery>,
) -> Response {
    let caller = query.from.zip(query.node);
    let extra = caller
        .as_ref()
        .map(|(from, node)| wire::hello_binding(from, *node).into_bytes())
        .unwrap_or_default();
    let nonce = match check_signed(&inner, &headers, "hello", &extra) {
        Ok(nonce) => nonce,
        Err(refusal) => return *refusal,
    };
    if let Some((from, node)) = &caller {
        inner.peers.introduced(from, *node);
    }
    let answer = Hello {
        node: inner.node,
        ready: inner.ready.load(Ordering::SeqCst),
        // A member counts as listed once it has this node's whole state: a new
        // instance calls itself joined only when every member lists it.
        members: inner.membership.as_ref().map_or_else(Vec::new, |m| {
            let synced = inner.peers.synced_urls();
            m.live()
                .into_iter()
                .filter(|u| synced.contains(u))
                .collect()
        }),
        // And every member it knows of: a new instance must know them all too, even
        // one that joined a moment ago, or a login it answers would miss that one.
        live: inner
            .membership
            .as_ref()
            .map_or_else(Vec::new, crate::membership::Membership::live),
        url: inner.membership.as_ref().map(|m| m.settings.me.clone()),
    };
    signed_json(&inner, b"hello-reply", &nonce, &answer)
}

/// A batch is authenticated from its headers (time, nonce, receiver, sender,
/// sequence, the body's digest, and their signature) before a byte of its body is
/// read, and a replayed sequence is refused there too; the body is then read within
/// [`BODY_DEADLINE`] and [`MAX_BODY`], and must match the digest. So an unsigned,
/// forged or replayed request costs no more than its headers, and a slow one no
/// longer than the deadline.
async fn receive_events(
    AxumState(inner): AxumState<Arc<Inner>>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let batch = match authenticate(&inner, &parts.headers) {
        Ok(signed) => read_batch(body, signed).await,
        Err(refusal) => Err(refusal),
    };
    match batch {
        Ok(batch) => apply(&inner, batch),
        Err(refusal) => *refusal,
    }
}

/// What a batch's signed headers promise of its body.
struct Signed {
    origin: u64,
    seq: u64,
    digest: String,
}

/// The signed headers of a batch for this node, not a replay; or the refusal.
fn authenticate(inner: &Inner, headers: &HeaderMap) -> Result<Signed, Box<Response>> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let refusal = |status, why| Box::new(refuse(status, why));
    let (Some(to), Some(origin), Some(seq), Some(digest)) =
        (text(TO), text(ORIGIN), text(SEQ), text(DIGEST))
    else {
        return Err(refusal(
            StatusCode::UNAUTHORIZED,
            "unsigned replication message",
        ));
    };
    check_signed(
        inner,
        headers,
        "events",
        &batch_binding(to, origin, seq, digest),
    )?;
    if to != inner.node.to_string() {
        return Err(refusal(
            StatusCode::MISDIRECTED_REQUEST,
            "this batch is addressed to another node (or to this one before a restart)",
        ));
    }
    let (Ok(origin), Ok(seq)) = (origin.parse::<u64>(), seq.parse::<u64>()) else {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "malformed replication message",
        ));
    };
    if lock(&inner.seen)
        .iter()
        .any(|(o, last)| *o == origin && *last >= seq)
    {
        return Err(refusal(
            StatusCode::CONFLICT,
            "replayed replication message",
        ));
    }
    Ok(Signed {
        origin,
        seq,
        digest: digest.to_owned(),
    })
}

/// The body its signed headers promised, read within the deadline and the limit.
async fn read_batch(body: axum::body::Body, signed: Signed) -> Result<Batch, Box<Response>> {
    let refusal = |status, why| Box::new(refuse(status, why));
    let body = match tokio::time::timeout(BODY_DEADLINE, axum::body::to_bytes(body, MAX_BODY)).await
    {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => {
            return Err(refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the batch is too large, or its body could not be read",
            ));
        }
        Err(_) => {
            return Err(refusal(
                StatusCode::REQUEST_TIMEOUT,
                "the batch's body did not arrive in time",
            ));
        }
    };
    if wire::digest(&body) != signed.digest {
        return Err(refusal(
            StatusCode::UNAUTHORIZED,
            "the batch's body does not match its signed digest",
        ));
    }
    let Ok(batch) = serde_json::from_slice::<Batch>(&body) else {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "malformed replication message",
        ));
    };
    if batch.origin != signed.origin || batch.seq != signed.seq {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "the batch's sender or sequence differs from its signed headers",
        ));
    }
    Ok(batch)
}

/// Applies an authenticated batch.
fn apply(inner: &Inner, batch: Batch) -> Response {
    if batch.to != inner.node {
        // Meant for another node, or for this one before it restarted.
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "this batch is addressed to another node (or to this one before a restart)",
        );
    }
    let mut seen = lock(&inner.seen);
    if seen
        .iter()
        .any(|(origin, last)| *origin == batch.origin && *last >= batch.seq)
    {
        return refuse(StatusCode::CONFLICT, "replayed replication message");
    }
    let now = unix_ms::now_ms();
    let mut state = lock(&inner.state);
    let oldest = (now - inner.tombstone_ms).max(0);
    let horizon = state.horizon();
    if batch
        .events
        .iter()
        .any(|e| e.stamp.ms < oldest || e.stamp <= horizon)
    {
        // Its tombstone may be gone: the event could bring a session back.
        return refuse(
            StatusCode::GONE,
            "an event is older than this node's tombstone window; send a snapshot",
        );
    }
    let mut lag = lock(&inner.lag);
    for event in &batch.events {
        inner.clock.observe(event.stamp);
        state.apply(event);
        if lag.len() == LAG_SAMPLES {
            lag.pop_front();
        }
        lag.push_back(now - event.stamp.ms);
        #[allow(clippy::cast_precision_loss)] // milliseconds: exact below 2^52
        metrics::histogram!("tether_replication_lag_seconds")
            .record((now - event.stamp.ms) as f64 / 1000.0);
    }
    if let Some(slots) = batch.snapshot {
        for (id, slot) in slots {
            state.merge(id, slot);
        }
    }
    state.bound_tombstones(inner.max_tombstones);
    seen.retain(|(origin, _)| *origin != batch.origin);
    seen.push_back((batch.origin, batch.seq));
    if seen.len() > SEEN_ORIGINS {
        seen.pop_front();
    }
    StatusCode::OK.into_response()
}

#[derive(serde::Deserialize)]
struct PageQuery {
    after: Option<String>,
}

async fn serve_snapshot(
    AxumState(inner): AxumState<Arc<Inner>>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Response {
    let after_text = query.after.unwrap_or_default();
    let nonce = match check_signed(&inner, &headers, "snapshot", after_text.as_bytes()) {
        Ok(nonce) => nonce,
        Err(refusal) => return *refusal,
    };
    if !inner.ready.load(Ordering::SeqCst) {
        // Nothing authoritative here yet: the caller treats this node as down.
        let mut response = (
            StatusCode::SERVICE_UNAVAILABLE,
            "this node is still catching up with its peers",
        )
            .into_response();
        response
            .headers_mut()
            .insert(NOT_READY, HeaderValue::from_static("1"));
        return response;
    }
    let after = if after_text.is_empty() {
        None
    } else {
        match Id::parse(&after_text) {
            Some(id) => Some(id),
            None => return refuse(StatusCode::BAD_REQUEST, "`after` is not a session id"),
        }
    };
    let (slots, next) = lock(&inner.state).snapshot_page(after, BATCH_BYTES);
    signed_json(&inner, b"snapshot-page", &nonce, &Page { slots, next })
}

async fn serve_stats(AxumState(inner): AxumState<Arc<Inner>>, headers: HeaderMap) -> Response {
    if let Err(refusal) = check_signed(&inner, &headers, "stats", b"") {
        return *refusal;
    }
    axum::Json(inner.stats()).into_response()
}
