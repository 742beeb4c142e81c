//! The sending side: one queue and one send loop per peer (the loop, and what each
//! answer of the peer makes it do, are in `send.rs`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use tether_core::unix_ms;
use tokio::sync::Notify;

use crate::lock;
use crate::state::Event;

mod list;
mod send;
pub(crate) use list::Peers;
use send::send_loop;

/// One peer, as the sender sees it.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) url: String,
    pub(crate) queue: std::sync::Mutex<VecDeque<Event>>,
    pub(crate) wake: Notify,
    /// A full snapshot is due (set through [`Peer::want_resync`]).
    pub(crate) resync: AtomicBool,
    /// Whether the peer has this node's whole state (the low bit), and how many
    /// resyncs were asked for (the rest): synced only by the last page of a snapshot
    /// taken for the latest request, so a page of an older one cannot claim it.
    sync: AtomicU64,
    /// The node id of the process last greeted at this URL (0 before the first).
    pub(crate) node: AtomicU64,
    /// Cuts a retry's backoff short (the peer said it is back).
    pub(crate) poke: Notify,
    /// Events ever queued for this peer (a resync's snapshot covers the dropped ones).
    pub(crate) queued_total: AtomicU64,
    /// Events ever acknowledged by this peer, as a count comparable to `queued_total`.
    pub(crate) acked_total: AtomicU64,
    /// Woken whenever `acked_total` grows or a delivery fails.
    pub(crate) acked: Notify,
    /// Whether the last delivery attempt failed.
    pub(crate) failing: AtomicBool,
    /// Whether the peer refused our batches outright (a wrong secret, say).
    pub(crate) refused: AtomicBool,
    /// The peer has every event this node stamped before this (ms).
    pub(crate) caught_up_ms: AtomicI64,
    pub(crate) delivered: AtomicU64,
    pub(crate) sent_bytes: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) resyncs: AtomicU64,
    pub(crate) last_error: std::sync::Mutex<Option<String>>,
}

impl Peer {
    /// The `tether_replication_queue` gauge: events waiting for this peer.
    pub(crate) fn gauge_queue(&self, len: usize) {
        #[allow(clippy::cast_precision_loss)] // a queue holds far fewer than 2^52 events
        metrics::gauge!("tether_replication_queue", "peer" => self.url.clone()).set(len as f64);
    }

    /// A peer at `url`; one that may have missed what this node holds starts with a
    /// full snapshot due (`resync`), and is not synced until it arrived.
    pub(crate) fn new(url: String, resync: bool) -> Self {
        Self {
            url,
            queue: std::sync::Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            resync: AtomicBool::new(resync),
            sync: AtomicU64::new(u64::from(!resync)),
            node: AtomicU64::new(0),
            poke: Notify::new(),
            queued_total: AtomicU64::new(0),
            acked_total: AtomicU64::new(0),
            acked: Notify::new(),
            failing: AtomicBool::new(false),
            refused: AtomicBool::new(false),
            caught_up_ms: AtomicI64::new(0),
            delivered: AtomicU64::new(0),
            sent_bytes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
            last_error: std::sync::Mutex::new(None),
        }
    }

    /// Asks for a full snapshot: the peer is not synced until one taken from now on
    /// has reached it.
    pub(crate) fn want_resync(&self) {
        // The generation first: a snapshot's last page checks it before saying synced.
        let _ = self
            .sync
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| {
                Some(((s >> 1).wrapping_add(1)) << 1)
            });
        self.resync.store(true, Ordering::SeqCst);
    }

    /// Whether the peer has this node's whole state.
    pub(crate) fn is_synced(&self) -> bool {
        self.sync.load(Ordering::SeqCst) & 1 == 1
    }

    /// The resync requests so far (read when a snapshot is taken).
    fn generation(&self) -> u64 {
        self.sync.load(Ordering::SeqCst) >> 1
    }

    /// The last page of a snapshot taken at `generation` was applied: synced, unless
    /// another resync was asked for since.
    fn synced_at(&self, generation: u64) {
        let _ = self.sync.compare_exchange(
            generation << 1,
            (generation << 1) | 1,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    /// How far behind this peer is: the age (ms) of the oldest event it has not
    /// acknowledged; 0 when it has everything, `None` before it acknowledged anything.
    pub(crate) fn behind_ms(&self) -> Option<i64> {
        if self.acked_total.load(Ordering::SeqCst) >= self.queued_total.load(Ordering::SeqCst)
            && !self.resync.load(Ordering::SeqCst)
        {
            return Some(0);
        }
        let since = self.caught_up_ms.load(Ordering::SeqCst);
        (since > 0).then(|| (unix_ms::now_ms() - since).max(0))
    }

    /// The `tether_replication_behind_seconds` gauge: [`Peer::behind_ms`] now.
    fn gauge_behind(&self) {
        if let Some(ms) = self.behind_ms() {
            #[allow(clippy::cast_precision_loss)] // milliseconds: exact below 2^52
            metrics::gauge!("tether_replication_behind_seconds", "peer" => self.url.clone())
                .set(ms as f64 / 1000.0);
        }
    }

    pub(crate) fn state(&self) -> &'static str {
        if self.refused.load(Ordering::SeqCst) {
            "refused"
        } else if self.failing.load(Ordering::SeqCst) {
            "failing"
        } else {
            "ok"
        }
    }

    fn fail(&self, why: String, refused: bool) {
        if refused {
            tracing::warn!(peer = %self.url, error = %why, "a peer refused replication; resyncing after a pause");
        } else {
            tracing::debug!(peer = %self.url, error = %why, "replication delivery failed; retrying");
        }
        // The reason first, then the state: whoever sees `refused` or `failing`
        // in the stats also sees why.
        *lock(&self.last_error) = Some(why);
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.failing.store(true, Ordering::SeqCst);
        self.refused.store(refused, Ordering::SeqCst);
        self.acked.notify_waiters();
        self.gauge_behind();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_snapshot_taken_for_the_latest_resync_makes_a_peer_synced() {
        let peer = Peer::new("http://127.0.0.1:1/_tether".into(), true);
        assert!(!peer.is_synced(), "a joining peer has nothing yet");
        // A snapshot is taken; before its last page lands, the peer restarts.
        let taken = peer.generation();
        peer.want_resync();
        peer.synced_at(taken);
        assert!(
            !peer.is_synced(),
            "an older snapshot's last page claimed it"
        );
        let taken = peer.generation();
        peer.synced_at(taken);
        assert!(peer.is_synced());
        // A queue that overflowed (or a 410, a 413, a refusal) means it is missing
        // events again.
        peer.want_resync();
        assert!(!peer.is_synced());
        assert!(peer.resync.load(Ordering::SeqCst));
    }

    #[test]
    fn a_peer_given_at_start_is_synced() {
        assert!(Peer::new("http://127.0.0.1:1/_tether".into(), false).is_synced());
    }
}
