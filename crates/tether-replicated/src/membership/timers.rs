//! Foca's timers, delivered in the order they fall due (two timers due at the same
//! instant in the order they were set), as foca requires.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use tokio::time::Instant;

use super::Node;

type Timer = foca::Timer<Node>;

/// One timer and when it falls due.
struct Due {
    at: Instant,
    seq: u64,
    timer: Timer,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// The timers not yet due.
#[derive(Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<Due>>,
    seq: u64,
}

impl Timers {
    pub(super) fn add(&mut self, after: Duration, timer: Timer) {
        self.seq += 1;
        self.heap.push(Reverse(Due {
            at: Instant::now() + after,
            seq: self.seq,
            timer,
        }));
    }

    /// Until the next timer falls due (forever without one).
    pub(super) async fn wait(&self) {
        match self.heap.peek() {
            Some(Reverse(next)) => tokio::time::sleep_until(next.at).await,
            None => std::future::pending().await,
        }
    }

    /// The timers due now, in order.
    pub(super) fn due(&mut self) -> Vec<Timer> {
        let now = Instant::now();
        let mut due = Vec::new();
        while self.heap.peek().is_some_and(|Reverse(next)| next.at <= now) {
            if let Some(Reverse(next)) = self.heap.pop() {
                due.push(next.timer);
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn timers_fall_due_in_time_order_then_in_the_order_set() {
        let mut timers = Timers::default();
        timers.add(Duration::from_secs(2), Timer::PeriodicGossip(2));
        timers.add(Duration::from_secs(1), Timer::PeriodicGossip(1));
        timers.add(Duration::from_secs(1), Timer::ProbeRandomMember(1));
        assert!(timers.due().is_empty(), "nothing is due before its time");
        timers.wait().await;
        assert_eq!(
            timers.due(),
            [Timer::PeriodicGossip(1), Timer::ProbeRandomMember(1)],
            "same instant: the order they were set in (not foca's own timer order)"
        );
        timers.wait().await;
        assert_eq!(timers.due(), [Timer::PeriodicGossip(2)]);
        assert!(timers.heap.is_empty());
    }
}
