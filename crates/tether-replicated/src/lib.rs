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
//! store.catch_up_until_ready().await; // pull a live peer's state before serving
//! let app: axum::Router = axum::Router::new()
//!     .nest("/_tether", store.router()) // what peers call; keep it off the internet
//!     .layer(tether::SessionLayer::new(store.clone()));
//! # Ok(()) }
//! ```
//!
//! # How it works
//!
//! - Each save pushes only the keys it changed, with the record's version and a
//!   hybrid logical timestamp, to every peer. Delivery is asynchronous, through a
//!   bounded queue per peer, in batches of at most 1 MiB (see the `peer` module's
//!   table of answers for what is retried and how).
//! - Concurrent writes resolve the same way on every instance: per key, the write with
//!   the later timestamp wins (ties broken by node), and a `clear` removes every key
//!   written before it.
//! - Deletes, logouts and id rotations replicate as tombstones, kept for ten minutes
//!   and until every peer has them. No event older than that is sent or applied: a
//!   peer that was away longer gets a full resync, so a late message cannot bring a
//!   session back.
//! - A new or restarted instance pulls a full snapshot, page by page, from a live peer
//!   ([`ReplicatedStore::catch_up`]) before [`ReplicatedStore::is_ready`] says yes;
//!   every member that sent to its previous process then sends it a full snapshot
//!   too (that one peer may not have had every change they sent).
//!   Only "no peer is up" makes it the first instance; a peer that answers with an
//!   error keeps it not ready, with the reason in the log and the stats.
//!
//! # Membership
//!
//! Give an instance its own replication URL ([`ReplicatedStoreBuilder::advertise`])
//! and its peers become seeds: it joins through any one of them that is up, every
//! member learns of it within a few probe periods, and the instances it replicates to
//! are the members, learned and dropped at run time. So an autoscaler or a rolling
//! deploy starts a new instance with one seed (or a DNS name that resolves to the
//! current instances, such as a Kubernetes headless service), and the running ones
//! need no restart.
//!
//! ```no_run
//! # async fn serve() -> Result<(), tether_core::Error> {
//! use tether_replicated::ReplicatedStore;
//!
//! let store = ReplicatedStore::builder(b"a shared secret of 16+ bytes")
//!     .advertise("http://10.0.0.4:8080/_tether") // how the others reach this one
//!     .peers(["http://sessions.default.svc.cluster.local:8080/_tether"]) // seeds
//!     .start()?;
//! store.catch_up_until_ready().await;
//! // Serve `store.router()` under /_tether, then report healthy once
//! // `store.is_ready() && store.is_joined()`.
//! # Ok(()) }
//! ```
//!
//! - The protocol is SWIM, run by [foca](https://docs.rs/foca): each member probes one
//!   other per [`ReplicatedStoreBuilder::probe_period`] (1 s), asks others to probe a
//!   member that does not answer, and declares it suspect, then down five periods
//!   later: about 7 s after it stopped, and within 2N + 4 periods in a cluster of N
//!   (14 s at five), since each member probes the others in turn, in a new order each
//!   round. Its send queue is dropped then, so a dead
//!   member holds neither memory nor tombstones. A restarted process (a later start
//!   time) replaces the old one at its URL; one declared down while alive (a pause, a
//!   partition) rejoins under a newer identity at once. An instance that stops on
//!   purpose calls [`ReplicatedStore::leave`], and the others drop it at once.
//! - A member that joins gets a queue and a full snapshot from every member (it may
//!   have missed what was written before they heard of it): a join costs the cluster
//!   N-1 snapshots sent to the newcomer.
//! - [`ReplicatedStore::is_joined`] says when every member has sent the new instance
//!   its whole state and lists it, and the instance knows every member they know of:
//!   route to it only then (the demo's `/healthz` does). Until then its operations
//!   answer [`tether_core::Error::Unavailable`] (a `503`), as before catching up: a
//!   login answered by a member that has not heard of it would not reach it, nor one
//!   it answered reach every member. A restarted process at the same URL says so in
//!   its hellos, and the members that knew the old one resync it.
//! - Seeds are resolved again every [`ReplicatedStoreBuilder::membership_refresh`]
//!   (5 s), asked (in a signed hello) for the URL they advertise, and announced to by
//!   that URL when they are not live members: a seed may be given by a DNS name or
//!   another spelling of its address. A new cluster forms, and a partition heals,
//!   through them. While no member is known, they are tried every probe period. An
//!   instance that found no seed up when it caught up waits three probe periods (at
//!   least 2 s) for a member to appear before it calls itself the first of its
//!   cluster, so instances started together join one another rather than each stand
//!   alone. A partition costs this: each side declares the other down (about 7 s
//!   with the default probes) and drops its queues; both keep serving what they have
//!   and take writes, so a logout on one side is not honoured on the other until the
//!   heal. After it, the members find each other again through their seeds within a
//!   refresh (and through the announcements SWIM sends two members it holds as down
//!   every five probe periods), send each other full snapshots, and converge by the
//!   per-key rules above (tombstones win). A member declared down is remembered
//!   (shown in the stats, announced to) for 10 minutes.
//! - Membership messages travel as `POST /gossip` on the same routes, signed with
//!   the same secret over their body's digest; unsigned, wrongly signed, stale or
//!   replayed ones are refused, so an instance without the secret cannot join.
//!
//! Without [`ReplicatedStoreBuilder::advertise`], the peers are a fixed list.
//!
//! # Security
//!
//! Every route under [`ReplicatedStore::router`] needs the shared secret: batches
//! and answers are signed with HMAC-SHA256. A batch names its sender's node id and
//! its receiver's (both random per process start) and a growing sequence number, so a
//! captured batch is refused when replayed, by another peer, or after a restart.
//! Snapshot, hello, stats and membership requests carry a signed timestamp and nonce,
//! refused when more than 30 s off (a membership message's nonce is accepted once).
//! Peers talk plain HTTP and a snapshot carries session ids: keep `/_tether` on a
//! private network (never proxied to the internet) or behind TLS.
//!
//! # Costs and limits
//!
//! Memory: every instance holds every session, at most
//! [`ReplicatedStoreBuilder::max_sessions`], of which anonymous ones at most
//! [`ReplicatedStoreBuilder::max_anonymous_sessions`] (the oldest anonymous session
//! makes room; a login is never refused while anonymous sessions remain), each at most
//! [`ReplicatedStoreBuilder::max_session_bytes`]. Bandwidth: each change goes to N-1
//! peers. Lock mode is not offered (it would need consensus between instances); the
//! store refuses it. A new session, a login, a logout or an id rotation waits (up to
//! [`ReplicatedStoreBuilder::settle_timeout`]) until the reachable peers have it, so the
//! next request sees it wherever it lands; other data changes reach the peers after
//! the replication lag. After a partition longer than the tombstone window, a session
//! ended on one side while the other side could not hear of it may live on there.
//! When tombstones go over [`ReplicatedStoreBuilder::max_tombstones`], an instance
//! refuses what it does not know and was last written before the newest tombstone it
//! dropped (events and snapshot entries alike): a deleted session never comes back,
//! at the price that a peer far behind may not receive such a session.

mod builder;
mod catch_up;
mod clock;
mod http;
mod membership;
mod peer;
mod request;
mod state;
mod stats;
mod store;
mod wire;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tether_core::{Error, Id, Record, Result, SessionLimits};
use time::OffsetDateTime;

pub use crate::builder::{MIN_SECRET_LEN, ReplicatedStoreBuilder};
pub use crate::catch_up::CatchUp;
use crate::clock::Clock;
pub use crate::clock::Stamp;
use crate::peer::{Peer, Peers};
use crate::state::{Event, Meta, Op, State};
pub use crate::stats::{MemberStats, PeerStats, Stats};
use crate::wire::Secret;
pub use crate::wire::sign_stats_request;

const LAG_SAMPLES: usize = 10_000;

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
    peers: Peers,
    /// Seeds, gossip and the member list, when this node advertises its own URL.
    membership: Option<membership::Membership>,
    limits: SessionLimits,
    max_session_bytes: usize,
    max_tombstones: usize,
    queue_capacity: usize,
    tombstone_ms: i64,
    /// Batches numbered so far, over every peer's send loop.
    batches: AtomicU64,
    /// The highest batch sequence applied, per sender (most recent senders last).
    seen: Mutex<VecDeque<(u64, u64)>>,
    ready: AtomicBool,
    catch_up_error: Mutex<Option<String>>,
    lag: Mutex<VecDeque<i64>>,
    client: reqwest::Client,
    timeout: Duration,
    settle: Duration,
    /// The senders and the sweeper, stopped when the store is dropped.
    tasks: Mutex<Vec<tether_core::Background>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ReplicatedStore {
    /// Settings, starting from the shared secret (at least [`MIN_SECRET_LEN`] bytes).
    pub fn builder(secret: impl AsRef<[u8]>) -> ReplicatedStoreBuilder {
        ReplicatedStoreBuilder::new(secret.as_ref())
    }

    /// Whether this instance has caught up with a live peer (or found none up).
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst)
    }

    /// Before catching up, "unknown" could be a session a peer has, and a user's
    /// sessions could be only some of them: answering from that would log users out or
    /// miss sessions. Unavailable (`503`, retried) is the truthful answer. Creating a
    /// session needs no history, so it is not held back (but see
    /// [`ReplicatedStore::ensure_joined`]).
    fn ensure_ready(&self, operation: &'static str) -> Result<()> {
        if !self.is_ready() {
            return Err(Error::unavailable(
                operation,
                std::io::Error::other("this instance is still catching up with its peers"),
            ));
        }
        self.ensure_joined(operation)
    }

    /// Before every member knows this instance (and it knows them), a session it
    /// creates or ends would not reach them all, and a logout on a member that has not
    /// heard of it would not reach it: Unavailable, as before catching up.
    fn ensure_joined(&self, operation: &'static str) -> Result<()> {
        if self.is_joined() {
            return Ok(());
        }
        Err(Error::unavailable(
            operation,
            std::io::Error::other("this instance is still joining: not every member knows it yet"),
        ))
    }

    /// Replication figures: queues, lag, memory, peers' states.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// The routes peers call: `GET /hello`, `POST /events`, `GET /snapshot`,
    /// `POST /gossip` (membership) and `GET /stats`, each needing the shared secret. Mount it under a path of the app
    /// (the peers' URLs point there) that no public proxy forwards.
    pub fn router(&self) -> axum::Router {
        http::router(self.inner.clone())
    }

    /// Applies local events and queues them for every peer, in stamp order.
    fn publish(&self, state: &mut State, ops: Vec<Op>) {
        for op in ops {
            let event = Event {
                stamp: self.inner.clock.tick(),
                op,
            };
            state.apply(&event);
            self.inner.peers.for_each(|peer| {
                let mut queue = lock(&peer.queue);
                peer.queued_total.fetch_add(1, Ordering::SeqCst);
                if queue.len() >= self.inner.queue_capacity {
                    queue.clear();
                    peer.want_resync();
                } else {
                    queue.push_back(event.clone());
                }
                peer.gauge_queue(queue.len());
                drop(queue);
                peer.wake.notify_one();
            });
        }
        state.bound_tombstones(self.inner.max_tombstones);
    }

    /// Each synced peer's queued total now: what a settled write waits to see
    /// acknowledged. A peer still taking a full snapshot (a member joining, one back
    /// from a restart) is not waited for: it acknowledges nothing before the
    /// snapshot's last page, and it is not serving yet (not joined) or is behind
    /// anyway.
    fn marks(&self) -> Vec<(Arc<Peer>, u64)> {
        self.inner
            .peers
            .all()
            .into_iter()
            .filter(|p| p.is_synced())
            .map(|p| {
                let mark = p.queued_total.load(Ordering::SeqCst);
                (p, mark)
            })
            .collect()
    }

    /// Waits until every peer that is not failing has acknowledged the events up to
    /// `marks`, or the settle timeout passes. Never fails: replication still catches
    /// up later; this only narrows the window in which another instance has not
    /// heard of a login or a logout yet.
    async fn settle(&self, marks: Vec<(Arc<Peer>, u64)>) {
        let wait = async {
            for (peer, mark) in marks {
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

    /// Makes room for one more live session: an anonymous one within the anonymous
    /// share, any within the total, ending the oldest anonymous sessions as needed
    /// (replicated as deletes, so every instance agrees). Fails only when the store
    /// is full of sessions bound to users.
    fn make_room(&self, state: &mut State, anonymous: bool) -> Result<()> {
        let evict =
            self.inner
                .limits
                .to_evict(state.live_count(), state.anonymous_count(), anonymous)?;
        for _ in 0..evict {
            if let Some(oldest) = state.oldest_anonymous() {
                self.publish(state, vec![Op::Delete { id: oldest }]);
            }
        }
        Ok(())
    }

    /// Refuses a record whose data is larger than the session size limit.
    fn check_size(&self, record: &Record) -> Result<()> {
        let size = serde_json::to_vec(&record.data).map_or(0, |v| v.len());
        if size > self.inner.max_session_bytes {
            return Err(Error::TooLarge {
                size,
                limit: self.inner.max_session_bytes,
            });
        }
        Ok(())
    }

    /// Publishes `record` whole under `id` (a create, or the new id of a rotation),
    /// after `before` (the old id's delete, for a rotation).
    fn upsert_whole(&self, state: &mut State, before: Vec<Op>, id: Id, record: &Record) {
        let mut ops = before;
        ops.push(Op::Upsert {
            id,
            meta: Meta::of(record, Some(record.user.clone())),
            clear: true,
            updates: record
                .data
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect(),
        });
        self.publish(state, ops);
    }
}

impl Inner {
    fn stats(&self) -> Stats {
        let (sessions, anonymous, tombstones) = {
            let state = lock(&self.state);
            (
                state.live_count(),
                state.anonymous_count(),
                state.tombstones(),
            )
        };
        let mut lags: Vec<i64> = lock(&self.lag).iter().copied().collect();
        lags.sort_unstable();
        let pct = |p: usize| (!lags.is_empty()).then(|| lags[(lags.len() - 1) * p / 100]);
        Stats {
            node: self.node,
            ready: self.ready.load(Ordering::SeqCst),
            joined: self
                .membership
                .as_ref()
                .is_none_or(|m| m.joined.load(Ordering::SeqCst)),
            catch_up_error: lock(&self.catch_up_error).clone(),
            sessions,
            anonymous,
            tombstones,
            lag_ms_p50: pct(50),
            lag_ms_p99: pct(99),
            lag_samples: lags.len(),
            members: self
                .membership
                .as_ref()
                .map(membership::Membership::members)
                .unwrap_or_default(),
            peers: self
                .peers
                .all()
                .iter()
                .map(|p| PeerStats {
                    url: p.url.clone(),
                    state: p.state(),
                    queued: lock(&p.queue).len(),
                    delivered: p.delivered.load(Ordering::Relaxed),
                    sent_bytes: p.sent_bytes.load(Ordering::Relaxed),
                    failures: p.failures.load(Ordering::Relaxed),
                    resyncs: p.resyncs.load(Ordering::Relaxed),
                    last_error: lock(&p.last_error).clone(),
                    behind_ms: p.behind_ms(),
                })
                .collect(),
        }
    }

    /// The stamp (ms) before which every peer has every event of this node.
    fn peers_caught_up_ms(&self) -> i64 {
        self.peers
            .all()
            .iter()
            .map(|p| p.caught_up_ms.load(Ordering::SeqCst))
            .min()
            .unwrap_or(i64::MAX)
    }
}

async fn sweep_loop(inner: Weak<Inner>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(store) = inner.upgrade() else { return };
        let acked = store.peers_caught_up_ms();
        let swept = lock(&store.state).sweep(OffsetDateTime::now_utc(), store.tombstone_ms, acked);
        if swept > 0 {
            tracing::debug!(swept, "swept expired sessions and old tombstones");
        }
    }
}
