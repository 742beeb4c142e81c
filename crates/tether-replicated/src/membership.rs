//! Membership: which instances replicate with this one, learned at run time.
//!
//! An instance that knows its own replication URL
//! ([`crate::ReplicatedStoreBuilder::advertise`]) takes part in SWIM membership, run
//! by [foca](https://docs.rs/foca): it announces itself to its seeds, learns every
//! member from their answers and their gossip, probes one member per second, and
//! declares a member that answers neither directly nor through others suspect, then
//! down. Foca is only the protocol: its messages travel as signed `POST /gossip`
//! requests over the same HTTP routes and the same shared secret as the replication
//! itself (an unsigned or wrongly signed message is refused, a replayed one too), so
//! membership needs no port of its own.
//!
//! The send queues follow the member list: a member that joins gets a queue and a
//! full snapshot (it may have missed what was written before this node heard of it);
//! one declared down loses its queue. With no live member known (the first instance,
//! or every other one gone), the queues are the seeds'.
//!
//! Seeds are re-resolved every refresh: a seed whose host is a DNS name (a Kubernetes
//! headless service) stands for every address the name has at that moment.

mod join;
mod seeds;
mod timers;
mod transport;

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use foca::{AccumulatingRuntime, Foca, OwnedNotification, PostcardCodec};
use rand::SeedableRng as _;
use serde::{Deserialize, Serialize};
use tether_core::{Background, unix_ms};
use tokio::sync::{Semaphore, mpsc, oneshot};

pub(crate) use self::join::watch as watch_join;
use self::transport::Nonces;
pub(crate) use self::transport::receive;
use crate::stats::MemberStats;
use crate::{Inner, lock};

/// Membership messages waiting for the protocol task; beyond it they are dropped
/// (SWIM is built for lost messages: a probe is retried, gossip repeated).
const INBOX: usize = 256;
/// Messages being sent at once; beyond it a message is dropped, as above.
const SENDS_IN_FLIGHT: usize = 64;
/// The largest membership message (a feed of about 300 members).
pub(crate) const MAX_MESSAGE: usize = 32 * 1024;
/// How long a member declared down is remembered (announced to now and then, shown
/// in the stats); after that only its seeds bring it back.
const REMEMBER_DOWN: Duration = Duration::from_mins(10);

/// One member: its replication URL and which start of its process this is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Node {
    pub(crate) url: String,
    pub(crate) incarnation: u64,
}

impl foca::Identity for Node {
    type Addr = String;

    // Declared down while alive (a partition, a long pause): come back at once under
    // a newer identity at the same URL.
    fn renew(&self) -> Option<Self> {
        Some(Self {
            url: self.url.clone(),
            incarnation: self.incarnation.wrapping_add(1),
        })
    }

    fn addr(&self) -> String {
        self.url.clone()
    }

    // A restarted process (a later start time) replaces the old one at its URL.
    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.incarnation > adversary.incarnation
    }
}

/// Settings of the membership protocol.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// This node's replication URL.
    pub(crate) me: String,
    /// The seeds as given (URLs, hosts maybe DNS names).
    pub(crate) seeds: Vec<String>,
    /// How often seeds are re-resolved and, when not members, announced to.
    pub(crate) refresh: Duration,
    /// How often a member is probed (SWIM's protocol period).
    pub(crate) probe_period: Duration,
}

/// The membership side of a store.
#[derive(Debug)]
pub(crate) struct Membership {
    pub(crate) settings: Settings,
    inbox: mpsc::Sender<Bytes>,
    /// Asks the protocol task to leave the cluster; answered once the goodbyes went.
    pub(crate) leave: mpsc::Sender<oneshot::Sender<()>>,
    /// The members as last seen by the protocol task, for the stats.
    view: Mutex<Vec<MemberStats>>,
    /// The seeds as last resolved, each by the URL it advertises once it answered.
    resolved: Mutex<Vec<String>>,
    /// Nonces of the membership messages accepted recently (a replay is refused).
    nonces: Mutex<Nonces>,
    /// Whether catching up found a live cluster (else this is its first instance).
    pub(crate) found_cluster: AtomicBool,
    /// Whether every member lists this one (see [`crate::ReplicatedStore::is_joined`]).
    pub(crate) joined: AtomicBool,
}

impl Membership {
    /// The membership and the receiving ends of its channels, for [`run`].
    pub(crate) fn new(settings: Settings) -> (Self, Mailbox) {
        let (inbox, rx) = mpsc::channel(INBOX);
        let (leave, leave_rx) = mpsc::channel(1);
        let resolved = settings.seeds.clone();
        let membership = Self {
            settings,
            inbox,
            leave,
            view: Mutex::new(Vec::new()),
            resolved: Mutex::new(resolved),
            nonces: Mutex::new(Nonces::default()),
            found_cluster: AtomicBool::new(false),
            joined: AtomicBool::new(false),
        };
        (
            membership,
            Mailbox {
                inbox: rx,
                leave: leave_rx,
            },
        )
    }

    pub(crate) fn members(&self) -> Vec<MemberStats> {
        lock(&self.view).clone()
    }

    /// The members not declared down.
    pub(crate) fn live(&self) -> Vec<String> {
        lock(&self.view)
            .iter()
            .filter(|m| m.state != "down")
            .map(|m| m.url.clone())
            .collect()
    }

    /// The seeds as last resolved, without this node.
    pub(crate) fn seeds(&self) -> Vec<String> {
        let me = &self.settings.me;
        lock(&self.resolved)
            .iter()
            .filter(|s| *s != me)
            .cloned()
            .collect()
    }
}

/// What the protocol task receives.
pub(crate) struct Mailbox {
    inbox: mpsc::Receiver<Bytes>,
    leave: mpsc::Receiver<oneshot::Sender<()>>,
}

/// The protocol task: feeds foca the messages, timers and seed refreshes, and turns
/// its sends, timers and notifications into HTTP requests, wake-ups and the peer list.
pub(crate) async fn run(inner: Weak<Inner>, mailbox: Mailbox) {
    let Mailbox {
        mut inbox,
        leave: mut leaving,
    } = mailbox;
    let Some(settings) = inner
        .upgrade()
        .and_then(|i| i.membership.as_ref().map(|m| m.settings.clone()))
    else {
        return;
    };
    let me = Node {
        url: settings.me.clone(),
        incarnation: u64::try_from(unix_ms::now_ms()).unwrap_or(1),
    };
    let mut seed = [0u8; 32];
    // A broken random source only makes the choice of whom to probe predictable.
    let _ = tether_core::fill_random(&mut seed);
    let rng = rand::rngs::StdRng::from_seed(seed);
    let mut foca = Foca::new(me, config(settings.probe_period), rng, PostcardCodec);
    let mut runtime = AccumulatingRuntime::new();
    let mut timers = timers::Timers::default();
    let sends = Arc::new(Semaphore::new(SENDS_IN_FLIGHT));
    // Seeds resolve and answer in a task of their own, so a slow name or seed
    // never holds up a probe, a message or a leave.
    let (answered, mut seeds_up) = mpsc::channel(1);
    let _seeds = Background::spawn(seeds::watch(inner.clone(), answered));
    loop {
        let mut changed = false;
        tokio::select! {
            data = inbox.recv() => {
                let Some(data) = data else { return };
                if let Err(e) = foca.handle_data(&data, &mut runtime) {
                    tracing::debug!(error = %e, "a membership message was not applied");
                }
            }
            done = leaving.recv() => {
                let Some(done) = done else { return };
                if let Err(e) = foca.leave_cluster(&mut runtime) {
                    tracing::debug!(error = %e, "could not say goodbye");
                }
                while let Some((to, data)) = runtime.to_send() {
                    transport::send(&inner, &sends, to.url, data);
                }
                // The goodbyes are out once every send permit is back (each send is
                // bounded by the client's timeout).
                let all = u32::try_from(SENDS_IN_FLIGHT).unwrap_or(u32::MAX);
                let _ = sends.acquire_many(all).await;
                tracing::info!("left the cluster");
                let _ = done.send(());
                return;
            }
            () = timers.wait() => {
                for timer in timers.due() {
                    if let Err(e) = foca.handle_timer(timer, &mut runtime) {
                        tracing::debug!(error = %e, "a membership timer failed");
                    }
                }
            }
            up = seeds_up.recv() => {
                let Some(up) = up else { return };
                announce(&mut foca, &mut runtime, up);
                // Seeds may have changed: the peer list follows them while no
                // member is known.
                changed = true;
            }
        }
        while let Some((to, data)) = runtime.to_send() {
            transport::send(&inner, &sends, to.url, data);
        }
        while let Some((after, timer)) = runtime.to_schedule() {
            timers.add(after, timer);
        }
        while let Some(notification) = runtime.to_notify() {
            changed = true;
            log(&notification);
        }
        if changed {
            reconcile(&inner, &foca);
        }
    }
}

type Protocol = Foca<Node, PostcardCodec, rand::rngs::StdRng, foca::NoCustomBroadcast>;

fn config(probe_period: Duration) -> foca::Config {
    let mut config = foca::Config::new_lan(NonZeroU32::new(16).unwrap_or(NonZeroU32::MIN));
    let scale = probe_period.as_secs_f64();
    config.probe_period = probe_period;
    config.probe_rtt = probe_period / 2;
    config.suspect_to_down_after = Duration::from_secs_f64(5.0 * scale);
    config.max_packet_size = NonZeroUsize::new(MAX_MESSAGE).unwrap_or(NonZeroUsize::MIN);
    config.remove_down_after = Some(REMEMBER_DOWN);
    // A member declared down during a partition hears from us again soon after the
    // heal, and rejoins.
    config.periodic_announce_to_down_members = Some(foca::PeriodicParams {
        frequency: probe_period * 5,
        num_members: NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN),
    });
    config
}

/// Announces this node to every seed (by the URL it advertises) that is not a
/// member: a new cluster forming, a member gone and back, a partition healed.
fn announce(foca: &mut Protocol, runtime: &mut AccumulatingRuntime<Node>, seeds: Vec<String>) {
    let members: Vec<String> = foca.iter_members().map(|m| m.id().url.clone()).collect();
    for url in seeds {
        if !members.contains(&url)
            && let Err(e) = foca.announce(
                Node {
                    url,
                    incarnation: 0,
                },
                &mut *runtime,
            )
        {
            tracing::debug!(error = %e, "could not announce to a seed");
        }
    }
}

/// Makes the send queues follow the member list, and the stats show it.
fn reconcile(inner: &Weak<Inner>, foca: &Protocol) {
    let Some(store) = inner.upgrade() else { return };
    let Some(membership) = store.membership.as_ref() else {
        return;
    };
    let me = &membership.settings.me;
    let view: Vec<MemberStats> = foca
        .iter_membership_state()
        .filter(|m| &m.id().url != me)
        .map(|m| MemberStats {
            url: m.id().url.clone(),
            state: match m.state() {
                foca::State::Alive => "alive",
                foca::State::Suspect => "suspect",
                foca::State::Down => "down",
            },
            incarnation: m.id().incarnation,
        })
        .collect();
    let mut live: Vec<String> = view
        .iter()
        .filter(|m| m.state != "down")
        .map(|m| m.url.clone())
        .collect();
    if live.is_empty() {
        live = membership.seeds();
    }
    live.sort();
    live.dedup();
    gauge(&view);
    *lock(&membership.view) = view;
    let (added, removed) = store.peers.set(inner, &live, true);
    if added + removed > 0 {
        tracing::info!(
            added,
            removed,
            peers = live.len(),
            "the replication peers follow the members"
        );
    }
}

/// The `tether_replication_members` gauge, by state.
fn gauge(view: &[MemberStats]) {
    for state in ["alive", "suspect", "down"] {
        let count = view.iter().filter(|m| m.state == state).count();
        #[allow(clippy::cast_precision_loss)] // a member count is small
        metrics::gauge!("tether_replication_members", "state" => state).set(count as f64);
    }
}

fn log(notification: &OwnedNotification<Node>) {
    match notification {
        OwnedNotification::MemberUp(node) => {
            tracing::info!(member = %node.url, "a member joined");
        }
        OwnedNotification::MemberDown(node) => {
            tracing::warn!(member = %node.url, "a member is down; its queue is dropped");
        }
        OwnedNotification::Rename(old, new) => {
            tracing::info!(member = %new.url, from = old.incarnation, to = new.incarnation, "a member restarted");
        }
        OwnedNotification::Rejoin(node) => {
            tracing::warn!(
                incarnation = node.incarnation,
                "this node was declared down by the others; rejoined"
            );
        }
        other => tracing::debug!(?other, "membership"),
    }
}
