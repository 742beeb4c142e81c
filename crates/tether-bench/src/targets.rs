//! The speed targets checked against what the run measured, and the
//! allocations per request `bench-allocs` counted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;

use crate::report::{Allocations, Report};
use crate::side::Reader;
use crate::{ENDPOINTS, fail, output};

/// Runs `bench-allocs` (beside this program) for bare axum, tether and
/// tower-sessions on their memory stores.
pub(crate) fn allocations() -> Allocations {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("bench-allocs")))
        .unwrap_or_else(|| fail("cannot locate bench-allocs"));
    ["bare", "tether", "tower-sessions"]
        .into_iter()
        .map(|lib| {
            let text = output(Command::new(&exe).args(["--lib", lib, "--store", "memory"]));
            let counts: BTreeMap<String, f64> = serde_json::from_str(text.trim())
                .unwrap_or_else(|e| fail(&format!("bench-allocs --lib {lib}: {e}: {text}")));
            (lib.to_owned(), counts)
        })
        .collect()
}

/// A ratio target: `value` at least `goal`. A miss that two decimals would round up
/// to the goal is shown with three, so the table never reads "0.85× of 0.85×: no".
fn ratio(what: String, goal: f64, value: Option<f64>) -> Target {
    let shown = |v: f64| {
        if v < goal && (v * 100.0).round() / 100.0 >= goal {
            format!("{v:.3}×")
        } else {
            format!("{v:.2}×")
        }
    };
    Target {
        what,
        goal: format!("≥ {goal:.2}×"),
        measured: value.map_or("not run".into(), shown),
        met: value.map(|v| v >= goal),
    }
}

/// One target: what it asks, the figure measured, whether it holds.
struct Target {
    what: String,
    goal: String,
    measured: String,
    met: Option<bool>,
}

impl Report<'_> {
    fn rps(&self, store: &str, lib: &str, endpoint: &str) -> Option<f64> {
        self.get(store, lib, endpoint).map(|s| s.rps)
    }

    fn targets(&self) -> Vec<Target> {
        let mut out = Vec::new();
        for store in self.stores() {
            for (endpoint, _, _) in ENDPOINTS {
                if let (Some(t), Some(p)) = (
                    self.rps(&store, "tether", endpoint),
                    self.rps(&store, "tower-sessions", endpoint),
                ) {
                    out.push(ratio(
                        format!("{store} {endpoint}: tether ÷ tower-sessions"),
                        1.0,
                        Some(t / p),
                    ));
                }
            }
        }
        let floor = |op: &str| self.floor.get(op).copied();
        for (endpoint, op, goal) in [
            ("read", "GET", 0.7),
            ("write", "SET", 0.5),
            ("login", "SET", 0.5),
        ] {
            let value = self
                .rps("redis", "tether", endpoint)
                .zip(floor(op))
                .map(|(t, f)| t / f);
            out.push(ratio(
                format!("redis {endpoint}: tether ÷ raw `redis-benchmark` {op}"),
                goal,
                value,
            ));
        }
        for (endpoint, goal) in [("read", 0.9), ("write", 0.8), ("login", 0.75)] {
            let value = self.over_bare("memory", "tether", endpoint);
            out.push(ratio(
                format!("memory {endpoint}: tether ÷ bare axum"),
                goal,
                value,
            ));
        }
        for (what, goal, a, b) in crate::side::TARGETS {
            out.push(self.across(what, goal, a, b));
        }
        out.push(Target {
            what: "allocations per request, tether beside tower-sessions".into(),
            goal: "reported".into(),
            measured: if self.allocations.is_empty() {
                "not run".into()
            } else {
                "below".into()
            },
            met: Some(!self.allocations.is_empty()),
        });
        out
    }

    /// `a`'s read over `b`'s, taken from the reads side by side (the median of the
    /// round-by-round ratios, with the lowest and highest); the ratio of the two rows
    /// in their own groups, run minutes apart, is shown beside it.
    fn across(&self, what: &str, goal: f64, a: Reader, b: Reader) -> Target {
        let paired = crate::side::paired(&self.side, a, b);
        let mut target = ratio(what.to_owned(), goal, paired.map(|(mid, _, _)| mid));
        if let Some((_, low, high)) = paired {
            let read = |(store, lib): Reader| self.rps(store, lib, "read");
            let groups = read(a)
                .zip(read(b))
                .map_or(String::new(), |(a, b)| format!("; groups {:.2}×", a / b));
            target.measured = format!("{} (rounds {low:.2}–{high:.2}×{groups})", target.measured);
        }
        target
    }

    /// `lib`'s `endpoint` on `store` over the bare axum runs around `store`'s group;
    /// `None` when either was not run.
    fn over_bare(&self, store: &str, lib: &str, endpoint: &str) -> Option<f64> {
        let bare = self.bare(store);
        self.rps(store, lib, endpoint)
            .filter(|_| bare > 0.0)
            .map(|r| r / bare)
    }

    /// The targets table and the allocations table.
    pub(crate) fn targets_section(&self, out: &mut String) {
        let targets = self.targets();
        let met = targets.iter().filter(|t| t.met == Some(true)).count();
        let _ = writeln!(
            out,
            "\n## Targets\n\nThe speed targets, from this run: {met} of {} met. \
             Where one is missed, [docs/bench/profile.md](docs/bench/profile.md) says where \
             the time goes (perf profiles of the same binaries) and what closing the gap \
             would take. A ratio of two stores' reads is taken from the reads side by side \
             (below): the median of its round-by-round ratios, with the lowest and highest, \
             and the ratio of the two rows in their own groups, run minutes apart.\n\n| target | goal | measured | met |\n|---|---|---|---|",
            targets.len()
        );
        for t in &targets {
            let mark = match t.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            let _ = writeln!(out, "| {} | {} | {} | {mark} |", t.what, t.goal, t.measured);
        }
        if self.allocations.is_empty() {
            return;
        }
        out.push_str(
            "\n## Allocations per request\n\nHeap allocations (and reallocations) per \
             request on the memory store, counted by `bench-allocs` (an instrumented global \
             allocator, `stats_alloc`) while the app answers 1,000 requests per endpoint in \
             process: router, session layer and handler, without the HTTP server. Bare axum \
             is the router alone; the difference is the session library's.\n\n\
             | endpoint | bare axum | tether | tower-sessions |\n|---|---|---|---|\n",
        );
        let get = |lib: &str, endpoint: &str| {
            self.allocations
                .get(lib)
                .and_then(|m| m.get(endpoint))
                .map_or("–".into(), |v| format!("{v:.1}"))
        };
        for (endpoint, _, _) in ENDPOINTS {
            let _ = writeln!(
                out,
                "| {endpoint} | {} | {} | {} |",
                get("bare", endpoint),
                get("tether", endpoint),
                get("tower-sessions", endpoint)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Key, Sample};
    use clap::Parser as _;

    fn sample(rps: f64) -> Sample {
        Sample {
            rps,
            ..Sample::default()
        }
    }

    fn read(store: &str) -> Key {
        (store.into(), "tether".into(), "read".into())
    }

    fn report(
        args: &crate::RunArgs,
        samples: BTreeMap<Key, Vec<Sample>>,
        bare: BTreeMap<String, Vec<f64>>,
    ) -> Report<'_> {
        Report {
            args,
            samples,
            bare,
            calls: BTreeMap::new(),
            cookie_bytes: BTreeMap::new(),
            remeasured: Vec::new(),
            floor: BTreeMap::new(),
            increments: Vec::new(),
            allocations: BTreeMap::new(),
            side: crate::side::Side::new(),
            seconds: 0.0,
        }
    }

    #[test]
    fn a_ratio_to_bare_axum_needs_bare_axum_runs() {
        let Cli::Run(args) = Cli::parse_from(["tether-bench", "run"]);
        let samples = BTreeMap::from([(read("memory"), vec![sample(180_000.0)])]);
        let report = report(&args, samples, BTreeMap::new());
        let targets = report.targets();
        let target = targets
            .iter()
            .find(|t| t.what == "memory read: tether ÷ bare axum")
            .expect("the target");
        assert_eq!(target.measured, "not run");
        assert_eq!(target.met, None);
    }

    #[test]
    fn a_miss_is_never_shown_as_the_goal() {
        let missed = ratio("x".into(), 0.85, Some(0.8457));
        assert_eq!(
            (missed.measured.as_str(), missed.met),
            ("0.846×", Some(false))
        );
        let met = ratio("x".into(), 0.85, Some(0.8512));
        assert_eq!((met.measured.as_str(), met.met), ("0.85×", Some(true)));
        let far = ratio("x".into(), 0.85, Some(0.80));
        assert_eq!(far.measured, "0.80×");
    }

    #[test]
    fn a_ratio_across_stores_is_taken_from_the_reads_side_by_side() {
        let Cli::Run(args) = Cli::parse_from(["tether-bench", "run"]);
        // In their own groups, minutes apart, the cached read ran on a slow minute.
        let samples = BTreeMap::from([
            (read("memory"), vec![sample(180_000.0)]),
            (read("redis-cached"), vec![sample(90_000.0)]),
        ]);
        let mut report = report(&args, samples, BTreeMap::new());
        report.side = crate::side::Side::from([
            (("memory", "tether"), vec![100_000.0, 120_000.0, 80_000.0]),
            (
                ("redis-cached", "tether"),
                vec![90_000.0, 96_000.0, 76_000.0],
            ),
        ]);
        let target = report.across("x", 0.85, ("redis-cached", "tether"), ("memory", "tether"));
        assert_eq!(target.measured, "0.90× (rounds 0.80–0.95×; groups 0.50×)");
        assert_eq!(target.met, Some(true));
        // Not side by side: no figure, not the groups' passed off as one.
        let target = report.across(
            "x",
            0.85,
            ("redis-cached", "tether"),
            ("postgres", "tether"),
        );
        assert_eq!(target.measured, "not run");
        assert_eq!(target.met, None);
    }
}
