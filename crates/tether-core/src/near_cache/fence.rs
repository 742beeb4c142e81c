//! Fenced reads: a cached record is served only after a fence sent after the read
//! began has come back through the invalidation channel, so every write that
//! completed before the read began has had its invalidation applied. One fence is in
//! flight at a time and serves every read that arrived before it was sent: under
//! load, one round trip covers many reads.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// A store's fence: resolves `true` once every invalidation the server sent before
/// it received the fence has been applied (a `PING` on Redis's tracking connection,
/// a query on PostgreSQL's `LISTEN` connection), `false` when it
/// could not tell (the channel failed, or the time ran out).
pub trait Barrier: Send + Sync + 'static {
    /// Sends one fence.
    fn fence(&self) -> Pin<Box<dyn Future<Output = bool> + Send + 'static>>;
}

#[derive(Debug, Default)]
struct Round {
    /// Fences started so far; the last one is in flight when `running`.
    started: u64,
    running: bool,
    /// The highest fence a reader waits for.
    wanted: u64,
}

/// The fences of one cache.
pub(super) struct Fences {
    barrier: Mutex<Option<Arc<dyn Barrier>>>,
    round: Mutex<Round>,
    /// The last fence that came back, and whether it succeeded.
    done: watch::Sender<(u64, bool)>,
}

impl std::fmt::Debug for Fences {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fences").finish_non_exhaustive()
    }
}

impl Default for Fences {
    fn default() -> Self {
        Self {
            barrier: Mutex::new(None),
            round: Mutex::new(Round::default()),
            done: watch::Sender::new((0, true)),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Fences {
    /// Fences sent so far.
    pub(super) fn sent(&self) -> u64 {
        lock(&self.round).started
    }

    /// The channel's fence from now on (`None` while it is down).
    pub(super) fn set(&self, barrier: Option<Arc<dyn Barrier>>) {
        *lock(&self.barrier) = barrier;
    }

    /// Waits for a fence sent after this call; `false` when there is no barrier or
    /// the fence failed (the read then goes to the store).
    pub(super) async fn pass(self: &Arc<Self>) -> bool {
        let mut done = self.done.subscribe();
        let target = {
            let mut round = lock(&self.round);
            // The fence in flight left before this read began: the next one counts.
            let target = round.started + 1;
            round.wanted = round.wanted.max(target);
            if !round.running && !self.start(&mut round) {
                return false;
            }
            target
        };
        loop {
            let (came, ok) = *done.borrow_and_update();
            if came >= target {
                return ok;
            }
            if done.changed().await.is_err() {
                return false;
            }
        }
    }

    /// Starts the next fence (the round is locked); `false` without a barrier.
    fn start(self: &Arc<Self>, round: &mut Round) -> bool {
        let Some(barrier) = lock(&self.barrier).clone() else {
            return false;
        };
        round.started += 1;
        round.running = true;
        let generation = round.started;
        let fences = self.clone();
        tokio::spawn(async move {
            let ok = barrier.fence().await;
            fences.came(generation, ok);
        });
        true
    }

    fn came(self: &Arc<Self>, generation: u64, ok: bool) {
        let mut round = lock(&self.round);
        round.running = false;
        self.done.send_replace((generation, ok));
        if round.wanted > generation && !self.start(&mut round) {
            // No barrier any more: the readers still waiting go to the store.
            let wanted = round.wanted;
            self.done.send_replace((wanted, false));
        }
    }
}
