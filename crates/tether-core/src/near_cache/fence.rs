//! Fenced reads: a cached record is served only after a fence sent after the read
//! began has come back through the invalidation channel, so every write that
//! completed before the read began has had its invalidation applied. A fence serves
//! every read that arrived before it was sent: under load, one round trip covers many
//! reads. A fence leaves only once the runtime has run the tasks that were ready (the
//! sender yields first), so the reads of one turn of the scheduler share one fence
//! instead of each turn's first read sending its own. Up to [`IN_FLIGHT`] fences are
//! out at once: a read that arrives while one is out gets the next at once rather than
//! after it comes back, so it waits about one round trip, not up to two.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Fences out at once, at most. Two keep the channel busy (one leaves while the other
/// is on its way back) without sending a fence per read.
pub(super) const IN_FLIGHT: u32 = 2;

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
    /// Whether a sender is about to number a fence (it yields first, so the reads
    /// ready in this turn of the scheduler join it).
    sending: bool,
    /// Fences numbered that have not come back.
    in_flight: u32,
}

impl Round {
    /// Whether a sender should start: a reader wants a fence not yet numbered, none is
    /// about to be, and there is room for one more in flight.
    fn wants_sender(&self) -> bool {
        !self.sending && self.wanted > self.numbered && self.in_flight < IN_FLIGHT
    }
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
            if round.wants_sender() {
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

    /// Numbers and sends fences while readers want one not yet sent and there is
    /// room in flight; the task whose fence comes back goes on sending when more are
    /// wanted.
    async fn send(self: Arc<Self>) {
        loop {
            // Reads that become ready in this turn of the scheduler join this fence.
            tokio::task::yield_now().await;
            let (generation, barrier) = {
                let mut round = lock(&self.round);
                round.sending = false;
                let barrier = lock(&self.barrier).clone();
                match barrier {
                    Some(barrier) if round.wanted > round.numbered => {
                        round.numbered += 1;
                        round.sent += 1;
                        round.in_flight += 1;
                        (round.numbered, barrier)
                    }
                    // No barrier any more: the readers still waiting go to the store
                    // (their numbers are spent, so the done fence never goes back).
                    None => {
                        round.numbered = round.wanted;
                        let numbered = round.numbered;
                        self.done
                            .send_if_modified(|done| advance(done, numbered, false));
                        return;
                    }
                    Some(_) => return,
                }
            };
            // Numbered before it leaves: a read that begins meanwhile waits for the
            // next one, never for this.
            let ok = barrier.fence().await;
            let more = {
                let mut round = lock(&self.round);
                round.in_flight -= 1;
                self.done
                    .send_if_modified(|done| advance(done, generation, ok));
                let more = round.wants_sender();
                round.sending |= more;
                more
            };
            if !more {
                return;
            }
        }
    }
}

/// Records that fence `generation` came back, unless a later one already did: a
/// reader waiting for any fence up to the later one is served by it, since it too
/// left after the reader began.
fn advance(done: &mut (u64, bool), generation: u64, ok: bool) -> bool {
    if generation <= done.0 {
        return false;
    }
    *done = (generation, ok);
    true
}
