//! Replication figures, as `GET /stats` of the router serves them (signed requests
//! only) and [`crate::ReplicatedStore::stats`] returns them.

use serde::Serialize;

/// Replication figures.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// This process's node id.
    pub node: u64,
    /// Whether it caught up with a peer (or found none up).
    pub ready: bool,
    /// Whether every member it knows of lists it (see
    /// [`crate::ReplicatedStore::is_joined`]).
    pub joined: bool,
    /// Why the last catch-up failed, while the instance is not ready.
    pub catch_up_error: Option<String>,
    /// Sessions held (expired ones not yet swept included).
    pub sessions: usize,
    /// Of which bound to no user.
    pub anonymous: usize,
    /// Tombstones held.
    pub tombstones: usize,
    /// Replication lag of events received from peers, in ms: time from the write's
    /// timestamp at its origin to its application here.
    pub lag_ms_p50: Option<i64>,
    /// The 99th percentile of the same.
    pub lag_ms_p99: Option<i64>,
    /// How many lag samples (the most recent 10,000 events).
    pub lag_samples: usize,
    /// The members this node knows of, when it takes part in membership (it was
    /// given its own URL with [`crate::ReplicatedStoreBuilder::advertise`]); empty
    /// otherwise.
    pub members: Vec<MemberStats>,
    /// Outgoing queues: one per member (or per configured peer, without membership).
    pub peers: Vec<PeerStats>,
}

/// One member, as this node's membership sees it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MemberStats {
    /// Its replication URL.
    pub url: String,
    /// `alive`, `suspect` (missed its probes; removed if it does not answer in time)
    /// or `down` (removed: no events are queued for it).
    pub state: &'static str,
    /// Which start of the process this is (its start time in ms, raised by one each
    /// time it rejoins after being declared down).
    pub incarnation: u64,
}

/// One peer's outgoing queue.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PeerStats {
    /// The peer's URL.
    pub url: String,
    /// `ok`, `failing` (unreachable or erring; retried) or `refused` (it answered
    /// with a permanent error such as a wrong secret; resynced after a pause).
    pub state: &'static str,
    /// Events waiting to be delivered.
    pub queued: usize,
    /// Events delivered.
    pub delivered: u64,
    /// Bytes of the batch bodies delivered (events and snapshots), without HTTP headers.
    pub sent_bytes: u64,
    /// Failed delivery attempts.
    pub failures: u64,
    /// Full snapshots pushed (after a queue overflow, old events or a refusal).
    pub resyncs: u64,
    /// The last delivery error.
    pub last_error: Option<String>,
    /// The replication lag toward this peer: the age in ms of the oldest change it has
    /// not acknowledged (0 when it has everything; `None` before its first answer).
    pub behind_ms: Option<i64>,
}
