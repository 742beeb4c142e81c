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

use std::cell::RefCell;
use std::future::Future;
use std::time::Instant;

use metrics::{Key, Label, Level, Metadata};
use tether_core::Error;
use tracing::Instrument as _;

/// What a store call does, as the `op` label says it. A new op goes last here and
/// in [`Op::ALL`].
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
    const ALL: [Self; 10] = [
        Self::Load,
        Self::Create,
        Self::Save,
        Self::Touch,
        Self::Delete,
        Self::CycleId,
        Self::Lock,
        Self::Unlock,
        Self::ListUser,
        Self::DeleteUser,
    ];

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

/// What `metrics`' macros would give each metric here.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The metric keys of one store's calls. Made once per store and thread, so that a call
/// hands the recorder keys it already has instead of building labels (an allocation
/// per metric, with or without a recorder).
struct StoreKeys {
    store: &'static str,
    /// `tether_store_calls_total` by op, then outcome (`ok`, `error`).
    calls: Vec<[Key; 2]>,
    /// `tether_store_call_seconds` by op.
    seconds: Vec<Key>,
    lock_wait: Key,
    lock_timeouts: Key,
}

impl StoreKeys {
    fn new(store: &'static str) -> Self {
        let labels = |op: Op| vec![Label::new("store", store), Label::new("op", op.name())];
        let calls = Op::ALL
            .iter()
            .map(|&op| {
                ["ok", "error"].map(|outcome| {
                    let mut labels = labels(op);
                    labels.push(Label::new("outcome", outcome));
                    Key::from_parts("tether_store_calls_total", labels)
                })
            })
            .collect();
        let seconds = Op::ALL
            .iter()
            .map(|&op| Key::from_parts("tether_store_call_seconds", labels(op)))
            .collect();
        let store_label = || vec![Label::new("store", store)];
        Self {
            store,
            calls,
            seconds,
            lock_wait: Key::from_parts("tether_lock_wait_seconds", store_label()),
            lock_timeouts: Key::from_parts("tether_lock_timeouts_total", store_label()),
        }
    }
}

thread_local! {
    static STORE_KEYS: RefCell<Vec<StoreKeys>> = const { RefCell::new(Vec::new()) };
    static EVENT_KEYS: RefCell<Vec<(&'static str, Key)>> = const { RefCell::new(Vec::new()) };
}

/// Runs one store call, recording its outcome and duration.
pub(crate) async fn call<T>(
    store: &'static str,
    op: Op,
    call: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let start = Instant::now();
    let result = if span_wanted() {
        let span = tracing::debug_span!("session.store", store, op = op.name());
        // A span no subscriber wants is not entered at every poll: with `tracing`'s
        // `log` feature on (sqlx turns it on for every app that links it), each enter,
        // exit and drop would otherwise look for a `log` logger.
        if span.is_disabled() {
            call.await
        } else {
            call.instrument(span).await
        }
    } else {
        call.await
    };
    record(store, op, start, &result);
    result
}

/// A store call that answers at once (or `None`: it cannot), recorded like
/// [`call`] when it answers.
pub(crate) fn ready<T>(
    store: &'static str,
    op: Op,
    call: impl FnOnce() -> Option<Result<T, Error>>,
) -> Option<Result<T, Error>> {
    let start = Instant::now();
    let result = if span_wanted() {
        tracing::debug_span!("session.store", store, op = op.name()).in_scope(call)
    } else {
        call()
    }?;
    record(store, op, start, &result);
    Some(result)
}

/// Counts a store call that began at `start` and times it.
fn record<T>(store: &'static str, op: Op, start: Instant, result: &Result<T, Error>) {
    let elapsed = start.elapsed().as_secs_f64();
    let timed_out = matches!(result, Err(Error::LockTimeout(_)));
    let outcome = usize::from(result.is_err());
    STORE_KEYS.with_borrow_mut(|all| {
        let keys = find_or_make(all, |k| k.store == store, || StoreKeys::new(store));
        // `Op::ALL` lists every op in declaration order (a test checks it).
        let (Some(calls), Some(seconds)) =
            (keys.calls.get(op as usize), keys.seconds.get(op as usize))
        else {
            return;
        };
        metrics::with_recorder(|r| {
            r.register_counter(&calls[outcome], &METADATA).increment(1);
            r.register_histogram(seconds, &METADATA).record(elapsed);
            if op == Op::Lock {
                r.register_histogram(&keys.lock_wait, &METADATA)
                    .record(elapsed);
                if timed_out {
                    r.register_counter(&keys.lock_timeouts, &METADATA)
                        .increment(1);
                }
            }
        });
    });
}

/// Whether a store call's span could reach anyone: a subscriber that enables `debug`,
/// or, with no subscriber set, a `log` logger at `debug` (which `tracing`'s `log`
/// feature hands the span's fields to when it is made). Otherwise the span is not made
/// at all: making and dropping a disabled one is about a hundred instructions a call.
fn span_wanted() -> bool {
    tracing::level_enabled!(tracing::Level::DEBUG)
        || (!tracing::dispatcher::has_been_set() && log::max_level() >= log::LevelFilter::Debug)
}

/// A session event, counted.
pub(crate) fn session_event(event: &'static str) {
    EVENT_KEYS.with_borrow_mut(|all| {
        let (_, key) = find_or_make(
            all,
            |(name, _)| *name == event,
            || {
                let labels = vec![Label::new("event", event)];
                (event, Key::from_parts("tether_sessions_total", labels))
            },
        );
        metrics::with_recorder(|r| r.register_counter(key, &METADATA).increment(1));
    });
}

/// The entry of `all` that `is` it, made and kept first if there is none.
fn find_or_make<T>(all: &mut Vec<T>, is: impl Fn(&T) -> bool, make: impl FnOnce() -> T) -> &T {
    let at = all.iter().position(is).unwrap_or_else(|| {
        all.push(make());
        all.len() - 1
    });
    &all[at]
}

/// A request answered with the error response instead of the handler's.
pub(crate) fn failed_request(store: &'static str, status: http::StatusCode) {
    metrics::counter!("tether_failed_requests_total", "store" => store, "status" => status.as_str().to_owned())
        .increment(1);
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, CounterFn, Gauge, Histogram, HistogramFn, KeyName, Recorder, SharedString, Unit,
    };

    use super::*;

    /// Every counter increment and histogram record, as `name{labels}` lines.
    #[derive(Default, Clone)]
    struct Lines(Arc<Mutex<Vec<String>>>);

    struct Handle(Lines, String);

    impl CounterFn for Handle {
        fn increment(&self, value: u64) {
            self.0
                .0
                .lock()
                .unwrap()
                .push(format!("{} +{value}", self.1));
        }
        fn absolute(&self, _: u64) {}
    }

    impl HistogramFn for Handle {
        fn record(&self, _: f64) {
            self.0
                .0
                .lock()
                .unwrap()
                .push(format!("{} recorded", self.1));
        }
    }

    fn line(key: &Key) -> String {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        format!("{}{{{}}}", key.name(), labels.join(","))
    }

    impl Recorder for Lines {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(Arc::new(Handle(self.clone(), line(key))))
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(Arc::new(Handle(self.clone(), line(key))))
        }
    }

    #[test]
    fn every_op_is_listed_in_declaration_order() {
        for (i, op) in Op::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i, "{op:?}");
        }
        assert_eq!(Op::ALL.len(), Op::DeleteUser as usize + 1);
    }

    /// A `tracing` subscriber that writes down the spans made, entered and left.
    struct Spans {
        seen: Lines,
        on: bool,
    }

    impl tracing::Subscriber for Spans {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            self.on
        }
        fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            struct Fields(String);
            impl tracing::field::Visit for Fields {
                fn record_debug(
                    &mut self,
                    field: &tracing::field::Field,
                    value: &dyn std::fmt::Debug,
                ) {
                    use std::fmt::Write as _;
                    let _ = write!(self.0, " {}={value:?}", field.name());
                }
            }
            let mut fields = Fields(format!("new {}", span.metadata().name()));
            span.record(&mut fields);
            self.seen.0.lock().unwrap().push(fields.0);
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, _: &tracing::Event<'_>) {}
        fn enter(&self, _: &tracing::span::Id) {
            self.seen.0.lock().unwrap().push("enter".into());
        }
        fn exit(&self, _: &tracing::span::Id) {
            self.seen.0.lock().unwrap().push("exit".into());
        }
    }

    /// What `Spans` saw while one store call ran (the call itself writes `call`).
    fn spans_seen(on: bool) -> Vec<String> {
        let seen = Lines::default();
        let subscriber = Spans {
            seen: seen.clone(),
            on,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let inside = seen.clone();
        let answer = tracing::subscriber::with_default(subscriber, || {
            runtime.block_on(call("memory", Op::Load, async move {
                inside.0.lock().unwrap().push("call".into());
                Ok::<_, Error>(7)
            }))
        });
        assert_eq!(answer.unwrap(), 7);
        seen.0.lock().unwrap().clone()
    }

    #[test]
    fn a_store_call_runs_inside_its_span_when_a_subscriber_wants_it() {
        let seen = spans_seen(true);
        assert_eq!(
            seen.first().map(String::as_str),
            Some(r#"new session.store store="memory" op="load""#),
            "{seen:?}"
        );
        let at = seen.iter().position(|s| s == "call").expect("the call ran");
        assert_eq!(seen[at - 1], "enter", "{seen:?}");
        assert_eq!(seen[at + 1], "exit", "{seen:?}");
    }

    #[test]
    fn a_store_call_no_subscriber_wants_enters_no_span() {
        assert_eq!(spans_seen(false), ["call"]);
    }

    #[test]
    fn store_calls_and_events_reach_the_recorder_with_their_labels() {
        let lines = Lines::default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        metrics::with_local_recorder(&lines, || {
            runtime.block_on(async {
                let _ = call("memory", Op::Load, async { Ok::<_, Error>(()) }).await;
                let timeout = Error::LockTimeout(std::time::Duration::from_secs(1));
                let _ = call("redis", Op::Lock, async { Err::<(), _>(timeout) }).await;
                let _ = call("memory", Op::Load, async { Ok::<_, Error>(()) }).await;
            });
            session_event("created");
        });
        let seen = lines.0.lock().unwrap().clone();
        assert_eq!(
            seen,
            [
                "tether_store_calls_total{store=memory,op=load,outcome=ok} +1",
                "tether_store_call_seconds{store=memory,op=load} recorded",
                "tether_store_calls_total{store=redis,op=lock,outcome=error} +1",
                "tether_store_call_seconds{store=redis,op=lock} recorded",
                "tether_lock_wait_seconds{store=redis} recorded",
                "tether_lock_timeouts_total{store=redis} +1",
                "tether_store_calls_total{store=memory,op=load,outcome=ok} +1",
                "tether_store_call_seconds{store=memory,op=load} recorded",
                "tether_sessions_total{event=created} +1",
            ]
        );
    }
}
