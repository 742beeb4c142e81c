//! A hybrid logical clock: wall-clock milliseconds, a counter for events within one
//! millisecond, and the node id to break ties, so every event has a distinct place in
//! one total order that every node agrees on.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// When an event happened, in the total order all nodes share.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Stamp {
    /// Milliseconds since the Unix epoch (at least the wall clock of the writer).
    pub ms: i64,
    /// Events within one millisecond.
    pub n: u32,
    /// The writing node, breaking ties.
    pub node: u64,
}

impl Stamp {
    /// Before every real event.
    pub const ZERO: Self = Self {
        ms: 0,
        n: 0,
        node: 0,
    };
}

#[derive(Debug)]
pub(crate) struct Clock {
    node: u64,
    last: Mutex<(i64, u32)>,
}

impl Clock {
    pub(crate) fn new(node: u64) -> Self {
        Self {
            node,
            last: Mutex::new((0, 0)),
        }
    }

    /// A stamp after every stamp this node has made or seen.
    pub(crate) fn tick(&self) -> Stamp {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let pt = tether_core::unix_ms::now_ms();
        *last = if pt > last.0 {
            (pt, 0)
        } else {
            (last.0, last.1 + 1)
        };
        Stamp {
            ms: last.0,
            n: last.1,
            node: self.node,
        }
    }

    /// Moves the clock past a stamp seen from another node.
    pub(crate) fn observe(&self, seen: Stamp) {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if (seen.ms, seen.n) > *last {
            *last = (seen.ms, seen.n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_strictly_increasing_and_pass_observed_stamps() {
        let clock = Clock::new(7);
        let mut previous = clock.tick();
        for _ in 0..10_000 {
            let next = clock.tick();
            assert!(next > previous);
            previous = next;
        }
        let future = Stamp {
            ms: previous.ms + 60_000,
            n: 5,
            node: 9,
        };
        clock.observe(future);
        assert!(clock.tick() > future);
    }
}
