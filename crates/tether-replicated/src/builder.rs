//! The store's settings and start-up.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether_core::{Background, Error, Id, Result, SessionLimits};

use crate::clock::Clock;
use crate::membership::{self, Membership, Settings};
use crate::peer::Peers;
use crate::state::State;
use crate::wire::Secret;
use crate::{Inner, ReplicatedStore, sweep_loop};

/// The shortest shared secret accepted.
pub const MIN_SECRET_LEN: usize = 16;

/// Settings for a [`ReplicatedStore`].
#[derive(Debug, Clone)]
pub struct ReplicatedStoreBuilder {
    pub(crate) secret: Vec<u8>,
    pub(crate) peers: Vec<String>,
    pub(crate) advertise: Option<String>,
    pub(crate) refresh: Duration,
    pub(crate) probe_period: Duration,
    pub(crate) join_timeout: Duration,
    pub(crate) max_sessions: usize,
    pub(crate) max_anonymous: Option<usize>,
    pub(crate) max_session_bytes: usize,
    pub(crate) max_tombstones: Option<usize>,
    pub(crate) queue_capacity: usize,
    pub(crate) tombstone_ttl: Duration,
    pub(crate) sweep_every: Duration,
    pub(crate) timeout: Duration,
    pub(crate) settle: Duration,
}

impl ReplicatedStoreBuilder {
    pub(crate) fn new(secret: &[u8]) -> Self {
        Self {
            secret: secret.to_vec(),
            peers: Vec::new(),
            advertise: None,
            refresh: Duration::from_secs(5),
            probe_period: Duration::from_secs(1),
            join_timeout: Duration::from_mins(2),
            max_sessions: 100_000,
            max_anonymous: None,
            max_session_bytes: 256 * 1024,
            max_tombstones: None,
            queue_capacity: 10_000,
            tombstone_ttl: Duration::from_mins(10),
            sweep_every: Duration::from_secs(30),
            timeout: Duration::from_secs(2),
            settle: Duration::from_secs(1),
        }
    }

    /// The peers' replication URLs (where they mounted [`ReplicatedStore::router`]).
    ///
    /// With [`Self::advertise`], these are seeds: the instance announces itself to
    /// them and learns every other member from them, so one live seed is enough and
    /// members that join later need not be listed. A seed whose host is a DNS name
    /// stands for every address the name resolves to, looked up again every
    /// [`Self::membership_refresh`] (a Kubernetes headless service, say). Without
    /// it, they are the fixed list of peers.
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

    /// This instance's own replication URL, as the other instances reach it (where it
    /// mounts [`ReplicatedStore::router`], such as `http://10.0.0.4:8080/_tether`).
    /// It turns membership on: the instance joins through its seeds
    /// ([`Self::peers`]), every member learns of it, and the instances it replicates
    /// to are the members, learned and dropped at run time (see the crate's
    /// "Membership" section).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tether_core::Error> {
    /// let store = tether_replicated::ReplicatedStore::builder(b"a shared secret of 16+ bytes")
    ///     .advertise("http://127.0.0.1:9004/_tether")
    ///     .peers(["http://127.0.0.1:9001/_tether"]) // one seed is enough
    ///     .start()?;
    /// assert!(!store.is_ready(), "not before it caught up from a live member");
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn advertise(mut self, url: impl Into<String>) -> Self {
        self.advertise = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// How often the seeds are resolved again and, when not members, announced to
    /// (default 5 s): how soon a new cluster forms, and a partition heals, through
    /// its seeds.
    #[must_use]
    pub fn membership_refresh(mut self, every: Duration) -> Self {
        self.refresh = every.max(Duration::from_millis(10));
        self
    }

    /// How often a member is probed (default 1 s). A member that answers no probe,
    /// direct or through others, is suspected, and declared down (its queue dropped)
    /// five periods later: with the default, about 7 s after it stopped, and within
    /// 2N + 4 periods in a cluster of N (each member probes the others in turn, in a
    /// new order each round).
    #[must_use]
    pub fn probe_period(mut self, every: Duration) -> Self {
        self.probe_period = every.clamp(Duration::from_millis(10), Duration::from_mins(1));
        self
    }

    /// How long a new instance waits to be joined (every member has sent it its whole
    /// state and lists it, see [`ReplicatedStore::is_joined`]) before it calls itself
    /// joined anyway, with a warning (default 2 min): a cluster where some member
    /// cannot reach it is then served as well as it can be, not refused for ever. A
    /// join takes a full snapshot from every member, so give many sessions time.
    #[must_use]
    pub fn join_timeout(mut self, wait: Duration) -> Self {
        self.join_timeout = wait;
        self
    }

    /// The most sessions this instance holds (default 100,000). Sessions bound to a
    /// user may use all of it; anonymous ones only [`Self::max_anonymous_sessions`].
    /// Bound the sessions of one user too (the layer's
    /// `SessionLayer::with_max_sessions_per_user`), so that one account logging in
    /// again and again cannot fill it.
    #[must_use]
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = max.max(1);
        self
    }

    /// The most anonymous sessions (bound to no user; default half of
    /// [`Self::max_sessions`]). Beyond it, a new anonymous session ends the oldest
    /// anonymous one, on every instance; so a flood of cookie-less requests can never
    /// take the room logins need.
    #[must_use]
    pub fn max_anonymous_sessions(mut self, max: usize) -> Self {
        self.max_anonymous = Some(max.max(1));
        self
    }

    /// The largest session, as the JSON of its data (default 256 KiB). A save or
    /// create beyond it fails with [`Error::TooLarge`] (a `413` from the layer), so
    /// every replication message stays far below what peers accept.
    #[must_use]
    pub fn max_session_bytes(mut self, max: usize) -> Self {
        self.max_session_bytes = max;
        self
    }

    /// The most tombstones kept (default [`Self::max_sessions`]); beyond it the
    /// oldest go first, and events older than them are refused from then on.
    #[must_use]
    pub fn max_tombstones(mut self, max: usize) -> Self {
        self.max_tombstones = Some(max.max(1));
        self
    }

    /// How long a deleted session's tombstone is kept (default 10 min). Events older
    /// than this are never sent nor applied: a peer that was away longer gets a full
    /// resync instead.
    #[must_use]
    pub fn tombstone_ttl(mut self, ttl: Duration) -> Self {
        self.tombstone_ttl = ttl;
        self
    }

    /// Events queued per unreachable peer before it is marked for a full snapshot
    /// instead (default 10,000).
    #[must_use]
    pub fn queue_capacity(mut self, events: usize) -> Self {
        self.queue_capacity = events.max(1);
        self
    }

    /// How long a delivery to a peer, or one page of its snapshot, may take (default
    /// 2 s). Snapshots come in pages of at most 1 MiB, so the time to pull one grows
    /// with its size and no single request needs more.
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
    /// runtime. A secret shorter than [`MIN_SECRET_LEN`] bytes is a configuration
    /// error.
    ///
    /// With peers, the store answers every operation on existing sessions with
    /// [`Error::Unavailable`] until [`ReplicatedStore::catch_up`] has made it ready:
    /// call it before serving.
    pub fn start(self) -> Result<ReplicatedStore> {
        if self.secret.len() < MIN_SECRET_LEN {
            return Err(Error::config(format!(
                "the replication secret must be at least {MIN_SECRET_LEN} bytes, shared by every instance"
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .build()
            .map_err(|e| Error::unavailable("building the replication HTTP client", e))?;
        let node = u64::from_le_bytes(Id::generate()?.as_bytes()[..8].try_into().expect("8 bytes"));
        let (membership, mailbox) = match &self.advertise {
            Some(me) => {
                reqwest::Url::parse(me).map_err(|e| {
                    Error::config(format!("the replication URL to advertise, {me:?}: {e}"))
                })?;
                let (membership, mailbox) = Membership::new(Settings {
                    me: me.clone(),
                    seeds: self.peers.clone(),
                    refresh: self.refresh,
                    probe_period: self.probe_period,
                });
                (Some(membership), Some(mailbox))
            }
            None => (None, None),
        };
        let inner = Arc::new(Inner {
            node,
            clock: Clock::new(node),
            state: Mutex::new(State::default()),
            secret: Secret::new(&self.secret),
            peers: Peers::default(),
            membership,
            limits: match self.max_anonymous {
                Some(anonymous) => {
                    SessionLimits::new(self.max_sessions).with_max_anonymous(anonymous)
                }
                None => SessionLimits::new(self.max_sessions),
            },
            max_session_bytes: self.max_session_bytes,
            max_tombstones: self.max_tombstones.unwrap_or(self.max_sessions),
            queue_capacity: self.queue_capacity,
            tombstone_ms: i64::try_from(self.tombstone_ttl.as_millis()).unwrap_or(i64::MAX),
            batches: AtomicU64::new(0),
            seen: Mutex::new(VecDeque::new()),
            ready: AtomicBool::new(self.peers.is_empty()),
            catch_up_error: Mutex::new(None),
            lag: Mutex::new(VecDeque::new()),
            client,
            timeout: self.timeout,
            settle: self.settle,
            tasks: Mutex::new(Vec::new()),
        });
        // The tasks hold the store weakly and stop with it: its last clone dropped,
        // their handles (kept in it) abort them.
        let peers: Vec<String> = self
            .peers
            .iter()
            .filter(|p| Some(*p) != self.advertise.as_ref())
            .cloned()
            .collect();
        inner.peers.set(&Arc::downgrade(&inner), &peers, false);
        let mut tasks = Vec::new();
        if let Some(mailbox) = mailbox {
            tasks.push(Background::spawn(membership::run(
                Arc::downgrade(&inner),
                mailbox,
            )));
            tasks.push(Background::spawn(membership::watch_join(
                Arc::downgrade(&inner),
                self.probe_period,
                self.join_timeout,
            )));
        }
        tasks.push(Background::spawn(sweep_loop(
            Arc::downgrade(&inner),
            self.sweep_every,
        )));
        *crate::lock(&inner.tasks) = tasks;
        Ok(ReplicatedStore { inner })
    }
}
