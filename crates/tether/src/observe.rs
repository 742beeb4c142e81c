//! Every store call the layer makes, timed and counted through the `metrics` facade
//! (a no-op until the app installs a recorder), inside a `tracing` span.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `tether_store_calls_total` | counter | `store`, `op`, `outcome` (`ok`, `error`) |
//! | `tether_store_call_seconds` | histogram | `store`, `op` |
//! | `tether_sessions_total` | counter | `event` (see [`SessionEvent::name`](crate::SessionEvent::name)) |
//! | `tether_lock_wait_seconds` | histogram | `store` |
//! | `tether_lock_timeouts_total` | counter | `store` |
//! | `tether_failed_requests_total` | counter | `store`, `status` |

use std::future::Future;
use std::time::Instant;

use tether_core::Error;
use tracing::Instrument as _;

/// What a store call does, as the `op` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Load,
    Create,
    Save,
    Touch,
    Delete,
    CycleId,
    Lock,
    Unlock,
    ListUser,
    DeleteUser,
}

impl Op {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Load => "load",
            Self::Create => "create",
            Self::Save => "save",
            Self::Touch => "touch",
            Self::Delete => "delete",
            Self::CycleId => "cycle_id",
            Self::Lock => "lock",
            Self::Unlock => "unlock",
            Self::ListUser => "user_sessions",
            Self::DeleteUser => "delete_user_sessions",
        }
    }
}

/// Runs one store call, recording its outcome and duration.
pub(crate) async fn call<T>(
    store: &'static str,
    op: Op,
    call: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let start = Instant::now();
    let result = call
        .instrument(tracing::debug_span!("session.store", store, op = op.name()))
        .await;
    let elapsed = start.elapsed().as_secs_f64();
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::counter!("tether_store_calls_total", "store" => store, "op" => op.name(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!("tether_store_call_seconds", "store" => store, "op" => op.name())
        .record(elapsed);
    if op == Op::Lock {
        metrics::histogram!("tether_lock_wait_seconds", "store" => store).record(elapsed);
        if matches!(result, Err(Error::LockTimeout(_))) {
            metrics::counter!("tether_lock_timeouts_total", "store" => store).increment(1);
        }
    }
    result
}

/// A session event, counted.
pub(crate) fn session_event(event: &'static str) {
    metrics::counter!("tether_sessions_total", "event" => event).increment(1);
}

/// A request answered with the error response instead of the handler's.
pub(crate) fn failed_request(store: &'static str, status: http::StatusCode) {
    metrics::counter!("tether_failed_requests_total", "store" => store, "status" => status.as_str().to_owned())
        .increment(1);
}
