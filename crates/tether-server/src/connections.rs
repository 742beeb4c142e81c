//! The open connections, what each is doing, and which one makes room at the cap.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

/// One open connection: how many requests it is serving (until each response's body
/// is sent), since when it has been idle, and how to close it.
pub(crate) struct Open {
    pub(crate) activity: Arc<Activity>,
    pub(crate) close: Arc<Notify>,
}

/// What a connection is doing, shared by its requests.
pub(crate) struct Activity {
    pub(crate) busy: AtomicUsize,
    /// Milliseconds after the server's start at which it last went idle.
    idle_since: AtomicU64,
    /// Milliseconds after the server's start at which it last went busy.
    busy_since: AtomicU64,
    start: Instant,
}

impl Activity {
    pub(crate) fn new(start: Instant) -> Self {
        let activity = Self {
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            busy_since: AtomicU64::new(0),
            start,
        };
        activity.mark_idle();
        activity
    }

    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn mark_idle(&self) {
        self.idle_since.store(self.now_ms(), Ordering::SeqCst);
    }
}

/// How long a connection may stay busy (a request body trickled in, a response its
/// client never reads) before it may be closed to make room when every other
/// connection is busy too: nginx's `client_body_timeout` and `send_timeout` (60 s).
const STALLED_MS: u64 = 60_000;

impl Activity {
    pub(crate) fn stalled(&self, now_ms: u64) -> Option<u64> {
        let since = self.busy_since.load(Ordering::SeqCst);
        (self.busy.load(Ordering::SeqCst) > 0 && now_ms.saturating_sub(since) > STALLED_MS)
            .then_some(since)
    }
}

/// The open connections, oldest first (ids grow with each accept).
#[derive(Default)]
pub(crate) struct Registry {
    open: Mutex<BTreeMap<u64, Open>>,
}

impl Registry {
    pub(crate) fn open(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Open>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes room for one more connection, closing the one idle the longest: `false`
    /// when every connection is busy.
    pub(crate) fn make_room(&self, max: usize) -> bool {
        let mut open = self.open();
        if open.len() < max {
            return true;
        }
        let idle = open
            .iter()
            .filter(|(_, c)| c.activity.busy.load(Ordering::SeqCst) == 0)
            .min_by_key(|(_, c)| c.activity.idle_since.load(Ordering::SeqCst))
            .map(|(id, _)| *id)
            .or_else(|| {
                // Every connection is busy: one stalled for over a minute goes.
                open.iter()
                    .filter_map(|(id, c)| {
                        let now = c.activity.now_ms();
                        c.activity.stalled(now).map(|since| (since, *id))
                    })
                    .min()
                    .map(|(_, id)| id)
            });
        match idle.and_then(|id| open.remove(&id)) {
            Some(evicted) => {
                evicted.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Counts a request in progress on its connection while alive: from the request's
/// arrival until its response's body has been sent (or dropped).
pub(crate) struct Busy(Arc<Activity>);

impl Busy {
    pub(crate) fn new(activity: &Arc<Activity>) -> Self {
        if activity.busy.fetch_add(1, Ordering::SeqCst) == 0 {
            activity
                .busy_since
                .store(activity.now_ms(), Ordering::SeqCst);
        }
        Self(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.mark_idle();
        }
    }
}
