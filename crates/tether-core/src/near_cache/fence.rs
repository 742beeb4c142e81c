//! Fenced reads: a cached record is served only after a fence sent after the read
//! began has come back through the invalidation channel, so every write that
//! completed before the read began has had its invalidation applied. One fence is in
//! flight at a time and serves every read that arrived before it was sent: under
//! load, one round trip covers many reads. A fence leaves only once the runtime has
//! run the tasks that were ready (the sender yields first), so the reads of one turn
//! of the scheduler share one fence instead of each turn's first read sending its
//! own.

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
    /// The last fence number given out (from 1, as fences leave; the numbers of
    /// readers given up on when the barrier went are spent too).
    numbered: u64,
    /// Fences sent so far.
    sent: u64,
    /// The highest fence a reader waits for.
    wanted: u64,
    /// Whether the sender task runs (it sends fences while readers want them).
    sending: bool,
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
        lock(&self.round).sent
    }

    /// The channel's fence from now on (`None` while it is down).
    pub(super) fn set(&self, barrier: Option<Arc<dyn Barrier>>) {
        *lock(&self.barrier) = barrier;
    }

    /// Waits for a fence sent after this call; `false` when there is no barrier or
    /// the fence failed (the read then goes to the store).
    pub(super) async fn pass(self: &Arc<Self>) -> bool {
        if lock(&self.barrier).is_none() {
            return false;
        }
        let mut done = self.done.subscribe();
        let target = {
            let mut round = lock(&self.round);
            // A fence already sent left before this read began: the next one counts.
            let target = round.numbered + 1;
            round.wanted = round.wanted.max(target);
            if !round.sending {
                round.sending = true;
                tokio::spawn(self.clone().send());
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

    /// Sends fences, one at a time, while readers want one not yet sent.
    async fn send(self: Arc<Self>) {
        loop {
            // Reads that become ready in this turn of the scheduler join this fence.
            tokio::task::yield_now().await;
            let (generation, barrier) = {
                let mut round = lock(&self.round);
                let barrier = lock(&self.barrier).clone();
                match barrier {
                    Some(barrier) if round.wanted > round.numbered => {
                        round.numbered += 1;
                        round.sent += 1;
                        (round.numbered, barrier)
                    }
                    // No barrier any more: the readers still waiting go to the store
                    // (their numbers are spent, so the done fence never goes back).
                    None => {
                        round.sending = false;
                        round.numbered = round.wanted;
                        self.done.send_replace((round.numbered, false));
                        return;
                    }
                    Some(_) => {
                        round.sending = false;
                        return;
                    }
                }
            };
            // Numbered before it leaves: a read that begins meanwhile waits for the
            // next one, never for this.
            let ok = barrier.fence().await;
            self.done.send_replace((generation, ok));
        }
    }
}
