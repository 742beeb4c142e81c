//! The send loop of one peer.
//!
//! Every batch fits what the receiver accepts (at most [`BATCH_BYTES`] of events, or
//! one page of a snapshot), is bound to the receiver's current node id (learned from
//! its signed hello) and numbered, and is retried only while retrying can help:
//!
//! | answer | meaning | what the loop does |
//! |---|---|---|
//! | `2xx` | applied | next batch |
//! | `409` | this batch was applied before (an earlier try got through) | next batch |
//! | `421` | the peer restarted: another node id | hello again, resend, then a full resync |
//! | `410` | an event is older than the peer's tombstone window | full resync |
//! | `413` | the peer takes less than we sent | halve the batch size, full resync |
//! | `400`, `401`, `403` | refused (a wrong secret, say) | `refused` in the stats; pause, hello, full resync |
//! | no answer, `5xx` | unreachable or failing | `failing`; retry with backoff |
//!
//! Queued events older than the tombstone window (less the allowed clock skew) are
//! never sent: the queue is dropped and the peer gets a full resync instead, so no
//! event older than a tombstone can reach a peer and bring a session back.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::http::StatusCode;
use tether_core::{Id, unix_ms};

use crate::request::{self, Refusal};
use crate::state::{Event, Slot};
use crate::wire::{
    BATCH_BYTES, Batch, DIGEST, MAX_SKEW_MS, ORIGIN, SEQ, TO, batch_binding, digest,
};
use crate::{Inner, lock};

use super::Peer;

/// What the loop is sending: events, or a page of a snapshot.
struct Outgoing {
    events: Vec<Event>,
    snapshot: Option<Vec<(Id, Slot)>>,
    /// `acked_total` once this is applied (only the last page of a resync counts).
    covers: Option<u64>,
    /// `caught_up_ms` once this is applied.
    caught_up_ms: Option<i64>,
}

/// Snapshot pages still to send.
type Pages = VecDeque<Vec<(Id, Slot)>>;

/// How a send ended.
enum Answer {
    Applied,
    Misdirected,
    TooOld,
    TooLarge,
    Refused(String),
    Failed(String),
}

/// The smallest batch budget a `413` can bring us down to.
const MIN_BUDGET: usize = 16 * 1024;
/// How long to wait after a refusal before trying again with a fresh hello.
const REFUSED_PAUSE: Duration = Duration::from_secs(5);

pub(crate) async fn send_loop(inner: Weak<Inner>, peer: Arc<Peer>) {
    let mut seq = 0u64;
    let mut to: Option<u64> = None;
    // The peer's node id as last greeted (another one means it restarted).
    let mut known: Option<u64> = None;
    let mut pending: Option<Outgoing> = None;
    let mut pages = Pages::new();
    // The resync request the snapshot being sent answers.
    let mut snapshot_of = 0u64;
    let mut resync_end = (0u64, 0i64);
    // How many of this peer's queued events the batches built so far account for.
    let mut covered = 0u64;
    let mut budget = BATCH_BYTES;
    let mut pause = Duration::from_millis(50);
    loop {
        let Some(store) = inner.upgrade() else { return };
        let peer = &*peer;
        if pending.is_none() {
            if pages.is_empty() && peer.resync.swap(false, Ordering::SeqCst) {
                // Read after taking the request: a request made since will be
                // taken again, and this snapshot is newer than it anyway.
                snapshot_of = peer.generation();
                (pages, resync_end) = snapshot_pages(&store, peer, budget);
                covered = resync_end.0;
            }
            pending = if let Some(page) = pages.pop_front() {
                let last = pages.is_empty();
                Some(Outgoing {
                    events: Vec::new(),
                    snapshot: Some(page),
                    covers: last.then_some(resync_end.0),
                    caught_up_ms: last.then_some(resync_end.1),
                })
            } else {
                drain(&store, peer, budget, &mut covered)
            };
            let Some(_) = pending else {
                // Nothing to send: the peer has everything so far.
                if !peer.failing.load(Ordering::SeqCst) {
                    peer.caught_up_ms
                        .fetch_max(store.clock.tick().ms, Ordering::SeqCst);
                }
                // Wakes for new events, or once a second to notice shutdown.
                let _ = tokio::time::timeout(Duration::from_secs(1), peer.wake.notified()).await;
                continue;
            };
            // From the store's one counter, not this loop's: a peer dropped and added
            // again (a member back after a partition) gets a new loop, whose batches
            // must still number above what the peer applied from the old one.
            seq = store.batches.fetch_add(1, Ordering::SeqCst) + 1;
        }
        // The peer's node id, asked for only when there is something to send: a peer
        // that is still starting is not marked failing before anything waits on it.
        let Some(node) = to else {
            let restarted;
            (to, restarted) = greet_again(&store, peer, &mut pause, &mut known).await;
            if restarted {
                // Start over with a snapshot taken now: what was in flight, pages of
                // an older snapshot included, is dropped.
                pending = None;
                pages.clear();
            }
            continue;
        };
        let outgoing = pending.as_ref().expect("set above");
        match send(&store, peer, node, seq, outgoing).await {
            Answer::Applied => {
                if let Some(covers) = outgoing.covers {
                    peer.acked_total.fetch_max(covers, Ordering::SeqCst);
                }
                if let Some(ms) = outgoing.caught_up_ms {
                    peer.caught_up_ms.fetch_max(ms, Ordering::SeqCst);
                }
                if outgoing.snapshot.is_some() && outgoing.covers.is_some() {
                    // The last page of a full snapshot.
                    peer.synced_at(snapshot_of);
                }
                peer.failing.store(false, Ordering::SeqCst);
                peer.refused.store(false, Ordering::SeqCst);
                peer.acked.notify_waiters();
                peer.gauge_behind();
                pending = None;
                pause = Duration::from_millis(50);
            }
            Answer::Misdirected => to = None,
            Answer::TooOld => {
                pending = None;
                pages.clear();
                peer.want_resync();
            }
            Answer::TooLarge => {
                budget = (budget / 2).max(MIN_BUDGET);
                pending = None;
                pages.clear();
                peer.want_resync();
            }
            Answer::Refused(why) => {
                peer.fail(why, true);
                pending = None;
                pages.clear();
                to = None;
                peer.want_resync();
                drop(store);
                tokio::time::sleep(REFUSED_PAUSE).await;
            }
            Answer::Failed(why) => {
                peer.fail(why, false);
                drop(store);
                let _ = tokio::time::timeout(pause, peer.poke.notified()).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// The whole state in pages of `budget` bytes, replacing the peer's queue; with the
/// queued total and the stamp (ms) the last page brings the peer up to.
fn snapshot_pages(store: &Inner, peer: &Peer, budget: usize) -> (Pages, (u64, i64)) {
    let state = lock(&store.state);
    let mut pages = VecDeque::new();
    let mut after = None;
    loop {
        let (page, next) = state.snapshot_page(after, budget);
        pages.push_back(page);
        match next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut queue = lock(&peer.queue);
    queue.clear();
    // Events are queued under the state lock, so the snapshot holds every event
    // counted so far.
    let covered = peer.queued_total.load(Ordering::SeqCst);
    drop(queue);
    drop(state);
    peer.resyncs.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("tether_replication_resyncs_total", "peer" => peer.url.clone()).increment(1);
    peer.gauge_queue(0);
    (pages, (covered, store.clock.tick().ms))
}

/// The next events for `peer`, within `budget` bytes; a resync instead when the
/// oldest is older than the tombstone window allows.
fn drain(store: &Inner, peer: &Peer, budget: usize, covered: &mut u64) -> Option<Outgoing> {
    let mut queue = lock(&peer.queue);
    let margin = MAX_SKEW_MS.min(store.tombstone_ms / 2);
    let oldest_allowed = unix_ms::now_ms() - (store.tombstone_ms - margin);
    if queue.front().is_some_and(|e| e.stamp.ms < oldest_allowed) {
        queue.clear();
        drop(queue);
        peer.want_resync();
        peer.wake.notify_one();
        return None;
    }
    let mut size = 0;
    let mut events = Vec::new();
    while let Some(event) = queue.front() {
        let len = serde_json::to_vec(event).map_or(0, |v| v.len()) + 1;
        if !events.is_empty() && size + len > budget {
            break;
        }
        size += len;
        events.extend(queue.pop_front());
    }
    peer.gauge_queue(queue.len());
    if events.is_empty() {
        return None;
    }
    *covered += events.len() as u64;
    let last_ms = events.last().map(|e| e.stamp.ms);
    Some(Outgoing {
        events,
        snapshot: None,
        covers: Some(*covered),
        caught_up_ms: last_ms,
    })
}

async fn send(store: &Inner, peer: &Peer, to: u64, seq: u64, outgoing: &Outgoing) -> Answer {
    let batch = Batch {
        origin: store.node,
        to,
        seq,
        events: outgoing.events.clone(),
        snapshot: outgoing.snapshot.clone(),
    };
    let body = match serde_json::to_vec(&batch) {
        Ok(body) => body,
        Err(e) => return Answer::Failed(format!("encoding a batch: {e}")),
    };
    // The headers authenticate the batch (its receiver, its body's digest) before the
    // receiver reads the body.
    let (to, origin, seq) = (to.to_string(), store.node.to_string(), seq.to_string());
    let digest = digest(&body);
    let signed = store
        .secret
        .request_headers("events", &batch_binding(&to, &origin, &seq, &digest));
    let size = body.len() as u64;
    let mut request = store
        .client
        .post(format!("{}/events", peer.url))
        .header(TO, to)
        .header(ORIGIN, origin)
        .header(SEQ, seq)
        .header(DIGEST, digest);
    for (name, value) in signed {
        request = request.header(name, value);
    }
    let sent = request
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(e) => return Answer::Failed(e.to_string()),
    };
    let status = response.status();
    if status.is_success() || status == StatusCode::CONFLICT {
        peer.delivered
            .fetch_add(outgoing.events.len() as u64, Ordering::Relaxed);
        peer.sent_bytes.fetch_add(size, Ordering::Relaxed);
        return Answer::Applied;
    }
    let text = response.text().await.unwrap_or_default();
    let why = format!("answered {status}: {}", text.trim());
    match status {
        StatusCode::MISDIRECTED_REQUEST => Answer::Misdirected,
        StatusCode::GONE => Answer::TooOld,
        StatusCode::PAYLOAD_TOO_LARGE => Answer::TooLarge,
        StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            Answer::Refused(why)
        }
        _ => Answer::Failed(why),
    }
}

/// [`greet`]; and whether the node id is not the one greeted last: the peer
/// restarted, and holds only what it caught up from one member, which may not have
/// had every event this node sent the old process, so a full resync is asked for.
async fn greet_again(
    store: &Inner,
    peer: &Peer,
    pause: &mut Duration,
    known: &mut Option<u64>,
) -> (Option<u64>, bool) {
    let to = greet(store, peer, pause).await;
    let mut restarted = false;
    if let Some(now) = to {
        if known.is_some_and(|before| before != now) {
            peer.want_resync();
            restarted = true;
        }
        peer.node.store(now, Ordering::SeqCst);
        *known = Some(now);
    }
    (to, restarted)
}

/// The peer's node id; on failure, records why and waits before the next try.
async fn greet(store: &Inner, peer: &Peer, pause: &mut Duration) -> Option<u64> {
    let wait = match hello(store, peer).await {
        Ok(node) => return Some(node),
        Err(Answer::Refused(why)) => {
            peer.fail(why, true);
            REFUSED_PAUSE
        }
        Err(Answer::Failed(why)) => {
            peer.fail(why, false);
            *pause = (*pause * 2).min(Duration::from_secs(2));
            *pause
        }
        Err(_) => *pause,
    };
    let _ = tokio::time::timeout(wait, peer.poke.notified()).await;
    None
}

/// Asks the peer for its node id, over a signed request and a signed answer.
async fn hello(store: &Inner, peer: &Peer) -> Result<u64, Answer> {
    match request::hello(store, &peer.url, None).await {
        Ok(hello) => Ok(hello.node),
        Err(Refusal::Down) => Err(Answer::Failed("the peer is not up".into())),
        Err(Refusal::Client(why)) => Err(Answer::Refused(format!("hello: {why}"))),
        Err(Refusal::Failed(why)) => Err(Answer::Failed(format!("hello: {why}"))),
    }
}
