//! The list of peers: it follows the members, each peer with its send loop.

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock, Weak};

use tether_core::Background;

use super::{Peer, send_loop};
use crate::{Inner, lock};

/// The peers this node sends to, each with its send loop; the list changes when
/// members join and leave.
#[derive(Debug, Default)]
pub(crate) struct Peers {
    list: RwLock<Vec<Linked>>,
}

#[derive(Debug)]
struct Linked {
    peer: Arc<Peer>,
    /// Its send loop, aborted when the peer leaves the list.
    _sender: Background,
}

impl Peers {
    /// Every peer now.
    pub(crate) fn all(&self) -> Vec<Arc<Peer>> {
        read(&self.list).iter().map(|l| l.peer.clone()).collect()
    }

    /// Runs `f` on every peer, under the list's read lock (a publish queues its
    /// events for exactly the peers listed at that moment).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Peer)) {
        for linked in read(&self.list).iter() {
            f(&linked.peer);
        }
    }

    pub(crate) fn urls(&self) -> Vec<String> {
        read(&self.list)
            .iter()
            .map(|l| l.peer.url.clone())
            .collect()
    }

    /// The instance at `url` says it is process `node` (a joining instance's
    /// handshake). A peer that last greeted another process there restarted: it gets
    /// a full snapshot, is not [synced](Peer::is_synced) until then, and is tried again now
    /// rather than after its backoff.
    pub(crate) fn introduced(&self, url: &str, node: u64) {
        for linked in read(&self.list).iter().filter(|l| l.peer.url == url) {
            let peer = &linked.peer;
            if peer.node.load(Ordering::SeqCst) != node {
                peer.want_resync();
                peer.poke.notify_one();
                peer.wake.notify_one();
            }
        }
    }

    /// The peers that have this node's whole state (see [`Peer::is_synced`]).
    pub(crate) fn synced_urls(&self) -> Vec<String> {
        read(&self.list)
            .iter()
            .filter(|l| l.peer.is_synced())
            .map(|l| l.peer.url.clone())
            .collect()
    }

    /// Makes the list exactly `urls`: a peer not listed any more is dropped (its
    /// queue freed, its send loop stopped, whoever waits on it released); a new one
    /// starts with a full snapshot when `resync` (it may have missed what was written
    /// before this node knew of it). Returns how many were added and removed.
    pub(crate) fn set(&self, inner: &Weak<Inner>, urls: &[String], resync: bool) -> (usize, usize) {
        let mut list = write(&self.list);
        let before = list.len();
        let mut removed = Vec::new();
        list.retain(|l| {
            let keep = urls.contains(&l.peer.url);
            if !keep {
                removed.push(l.peer.clone());
            }
            keep
        });
        let kept = list.len();
        for url in urls {
            if list.iter().any(|l| &l.peer.url == url) {
                continue;
            }
            let peer = Arc::new(Peer::new(url.clone(), resync));
            list.push(Linked {
                _sender: Background::spawn(send_loop(inner.clone(), peer.clone())),
                peer,
            });
        }
        let added = list.len() - kept;
        drop(list);
        for peer in &removed {
            lock(&peer.queue).clear();
            peer.gauge_queue(0);
            // A member gone is no longer behind: its series stops at zero.
            metrics::gauge!("tether_replication_behind_seconds", "peer" => peer.url.clone())
                .set(0.0);
            peer.failing.store(true, Ordering::SeqCst);
            peer.acked.notify_waiters();
        }
        (added, before - kept)
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}
