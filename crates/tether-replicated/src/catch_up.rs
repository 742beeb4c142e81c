//! Catching up: pulling a peer's whole state, page by page, before serving.
//!
//! Only "no peer is up" (every peer refused the connection, or is itself still
//! catching up) makes an instance the first of its cluster. A peer that answered with
//! an error (a wrong secret, clock skew, a timeout) keeps this instance not ready: the
//! reason is logged and shown in the stats, and [`ReplicatedStore::catch_up_until_ready`]
//! tries again with backoff.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tether_core::Id;

use crate::request::{Refusal, signed_get};
use crate::state::Slot;
use crate::wire::Page;
use crate::{Inner, ReplicatedStore, lock};

/// How one catch-up round ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CatchUp {
    /// Merged the whole state of this peer: ready.
    FromPeer(String),
    /// No peer is up (each refused the connection or is catching up too): this
    /// instance starts with the state it has, and is ready.
    NoPeerUp,
    /// Peers answered, but with errors (each `URL: reason`): not ready.
    Failed(Vec<String>),
}

/// Why a pull did not give a state.
enum Pull {
    /// Nothing there: the peer is down or not ready itself.
    Down,
    /// It answered with an error.
    Error(String),
}

impl ReplicatedStore {
    /// One round: pulls the whole state of the first peer that gives it, and merges
    /// it. See [`CatchUp`] for what makes the instance ready.
    pub async fn catch_up(&self) -> CatchUp {
        let inner = &self.inner;
        let mut errors = Vec::new();
        for url in inner.catch_up_urls() {
            match inner.pull(&url).await {
                Ok(slots) => {
                    let mut state = lock(&inner.state);
                    for (id, slot) in slots {
                        state.merge(id, slot);
                    }
                    drop(state);
                    if let Some(membership) = &inner.membership {
                        membership.found_cluster.store(true, Ordering::SeqCst);
                    }
                    inner.ready.store(true, Ordering::SeqCst);
                    *lock(&inner.catch_up_error) = None;
                    tracing::info!(peer = %url, "caught up from a peer's snapshot");
                    return CatchUp::FromPeer(url);
                }
                Err(Pull::Down) => {}
                Err(Pull::Error(why)) => {
                    tracing::warn!(peer = %url, error = %why, "could not catch up from a peer");
                    errors.push(format!("{url}: {why}"));
                }
            }
        }
        if errors.is_empty() {
            inner.ready.store(true, Ordering::SeqCst);
            *lock(&inner.catch_up_error) = None;
            return CatchUp::NoPeerUp;
        }
        *lock(&inner.catch_up_error) = Some(errors.join("; "));
        CatchUp::Failed(errors)
    }

    /// Rounds of [`ReplicatedStore::catch_up`], 100 ms apart doubling up to 5 s, until
    /// one ends ready; returns that one.
    pub async fn catch_up_until_ready(&self) -> CatchUp {
        let mut pause = Duration::from_millis(100);
        loop {
            match self.catch_up().await {
                CatchUp::Failed(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                done => return done,
            }
        }
    }
}

impl Inner {
    /// Whom to catch up from: the peers, then the seeds not among them.
    fn catch_up_urls(&self) -> Vec<String> {
        let mut urls = self.peers.urls();
        if let Some(membership) = &self.membership {
            for seed in membership.seeds() {
                if !urls.contains(&seed) {
                    urls.push(seed);
                }
            }
        }
        urls
    }

    /// Every page of `url`'s state.
    async fn pull(&self, url: &str) -> Result<Vec<(Id, Slot)>, Pull> {
        let mut slots = Vec::new();
        let mut after: Option<Id> = None;
        loop {
            let page = self.pull_page(url, after).await?;
            slots.extend(page.slots);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(slots),
            }
        }
    }

    async fn pull_page(&self, url: &str, after: Option<Id>) -> Result<Page, Pull> {
        let after = after.map(|id| id.to_string()).unwrap_or_default();
        let page = signed_get(
            self,
            &format!("{url}/snapshot"),
            "snapshot",
            &after,
            &[("after", &after)],
            b"snapshot-page",
        )
        .await;
        page.map_err(|refusal| match refusal {
            Refusal::Down => Pull::Down,
            Refusal::Client(why) | Refusal::Failed(why) => Pull::Error(why),
        })
    }
}
