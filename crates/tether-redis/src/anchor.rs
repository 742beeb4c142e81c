//! A timer kept armed while the store lives, so that arming a call's timeouts does
//! not wake the runtime.
//!
//! Every Redis call arms two timers: the store's bound on the whole operation and
//! redis-rs's response timeout. tokio wakes its I/O driver (an `eventfd` write, one
//! system call) whenever a timer is armed with a deadline earlier than the one the
//! driver last went to sleep for, and when it went to sleep with no timer armed, every
//! timer armed before it sleeps again counts as earlier (tokio-rs/tokio#5207). A server
//! whose requests all wait on Redis sleeps with their timers armed; one that has
//! answered every request sleeps with none, and then each call of the next burst paid
//! a system call per timer: about half a `write(2)` per request in a run of
//! `POST /write` on one tokio thread.
//!
//! The anchor is a task that sleeps half a timeout at a time, so the driver always
//! sleeps for a deadline earlier than any call's, and arming one costs no system call.
//! It wakes the runtime twice per timeout (once a second by default) and stops when the
//! last clone of the store is dropped.

use std::sync::OnceLock;
use std::time::Duration;

use tether_core::Background;

/// A shorter period would wake the runtime too often to be worth it.
const SHORTEST_PERIOD: Duration = Duration::from_millis(10);

/// The store's anchor, shared by its clones; started by the first connection.
#[derive(Default)]
pub(crate) struct Anchor(OnceLock<Background>);

impl Anchor {
    /// Starts the anchor on the current runtime, unless it runs already: it sleeps
    /// half of `timeout`, the shortest timeout a call arms, at a time.
    pub(crate) fn hold(&self, timeout: Duration) {
        let period = timeout / 2;
        if period < SHORTEST_PERIOD {
            return;
        }
        self.0.get_or_init(|| {
            Background::spawn(async move {
                loop {
                    tokio::time::sleep(period).await;
                }
            })
        });
    }

    /// Whether the anchor runs.
    #[cfg(test)]
    pub(crate) fn is_running(&self) -> bool {
        self.0.get().is_some_and(Background::is_running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn starts_once_and_stops_when_dropped() {
        let metrics = tokio::runtime::Handle::current().metrics();
        let before = metrics.num_alive_tasks();
        let anchor = Anchor::default();
        assert!(!anchor.is_running());
        anchor.hold(Duration::from_secs(2));
        anchor.hold(Duration::from_secs(2));
        assert!(anchor.is_running());
        assert_eq!(
            metrics.num_alive_tasks(),
            before + 1,
            "one task, however often held"
        );
        drop(anchor);
        for _ in 0..100 {
            if metrics.num_alive_tasks() == before {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the anchor's task outlived the store");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_very_short_timeout_takes_no_anchor() {
        let anchor = Anchor::default();
        anchor.hold(Duration::from_millis(10));
        assert!(!anchor.is_running());
    }
}
