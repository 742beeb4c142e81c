//! Joining and leaving. Joining: a new instance does not call itself joined (healthy,
//! for a balancer) until every member it knows of lists it, and it knows every member
//! they list: so a login answered by any member is replicated to it, and one answered
//! by it is replicated to every member.

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::request::hello;
use crate::{Inner, ReplicatedStore};

impl ReplicatedStore {
    /// Whether every member this instance knows of lists it as a member, and it knows
    /// every member they list (always, for a store without membership; for the first
    /// instance of a cluster, once no member appeared within three probe periods, at
    /// least 2 s, of its start). Until then a balancer should not route to it: a
    /// member that has not heard of it yet would not send it the sessions it creates,
    /// and it would not send its own to a member it has not heard of. `login` answers
    /// `/healthz` with 503 until the store is both ready and joined.
    pub fn is_joined(&self) -> bool {
        self.inner
            .membership
            .as_ref()
            .is_none_or(|m| m.joined.load(Ordering::SeqCst))
    }

    /// Tells the other members this instance is leaving, so they drop it (and its
    /// queue) at once instead of declaring it down once it stops answering, about
    /// seven probe periods later. Call it on a graceful shutdown, once the server
    /// stopped taking requests; the store then takes no further part in membership.
    /// Returns once the goodbyes went out (at most 2 s); without membership, at once.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tether_core::Error> {
    /// let store = tether_replicated::ReplicatedStore::builder(b"a shared secret of 16+ bytes")
    ///     .advertise("http://127.0.0.1:9004/_tether")
    ///     .start()?;
    /// // … serve until SIGTERM, then:
    /// store.leave().await;
    /// # Ok(()) }
    /// ```
    pub async fn leave(&self) {
        let Some(membership) = self.inner.membership.as_ref() else {
            return;
        };
        let (done, gone) = tokio::sync::oneshot::channel();
        if membership.leave.send(done).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), gone).await;
        }
    }
}

/// How long an instance that found no cluster when it caught up waits for a member to
/// appear before it calls itself the first (three probe periods, at least 2 s):
/// instances started together each find the others not up yet, and would otherwise
/// each be joined, alone, before they know of one another.
fn first_grace(probe_period: Duration) -> Duration {
    (probe_period * 3).max(Duration::from_secs(2))
}

/// Asks the members, every `every`, whether they list this instance, until all do.
/// The join timeout (`give_up`) runs from when the store is ready.
pub(crate) async fn watch(inner: Weak<Inner>, every: Duration, give_up: Duration) {
    let mut ready_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::time::sleep(every).await;
        let Some(store) = inner.upgrade() else { return };
        let Some(membership) = store.membership.as_ref() else {
            return;
        };
        if !store.ready.load(Ordering::SeqCst) {
            continue;
        }
        let since_ready = ready_at
            .get_or_insert_with(tokio::time::Instant::now)
            .elapsed();
        let live = membership.live();
        let joined = if membership.found_cluster.load(Ordering::SeqCst) || !live.is_empty() {
            !live.is_empty() && all_list(&store, &live, &membership.settings.me).await
        } else if since_ready >= first_grace(every) {
            // The first instance (no seed was up when it caught up, and none has
            // appeared since): no one to tell.
            true
        } else {
            continue;
        };
        if joined {
            tracing::info!("every member knows this instance: joined");
        } else if since_ready > give_up {
            tracing::warn!(
                "not every member lists this instance after {give_up:?}; calling it joined anyway"
            );
        } else {
            continue;
        }
        membership.joined.store(true, Ordering::SeqCst);
        return;
    }
}

/// Whether every member in `urls` lists `me` among the live members it has sent its
/// whole state to, and none knows of a live member missing from `urls`: until this
/// instance knows every member, a login answered here would not be replicated to
/// all of them in time.
async fn all_list(store: &Inner, urls: &[String], me: &str) -> bool {
    for url in urls {
        // Saying who this is lets a member that knew an earlier process at this URL
        // send this one its whole state before listing it.
        let Ok(hello) = hello(store, url, Some((me, store.node))).await else {
            return false;
        };
        let knows_me = hello.members.iter().any(|m| m == me);
        // Every member it knows, not only those it has sent its state to: two
        // instances joining at once through one seed each see the seed list only
        // themselves as synced, and would each be joined without knowing the other.
        let known_to_me = hello
            .members
            .iter()
            .chain(&hello.live)
            .all(|m| m == me || urls.contains(m));
        if !(knows_me && known_to_me) {
            return false;
        }
    }
    true
}
