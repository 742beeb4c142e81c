//! The speed targets checked against what the run measured, and the
//! allocations per request `bench-allocs` counted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;

use crate::report::{Allocations, Report};
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

/// A ratio target: `value` at least `goal`.
fn ratio(what: String, goal: f64, value: Option<f64>) -> Target {
    Target {
        what,
        goal: format!("≥ {goal:.2}×"),
        measured: value.map_or("not run".into(), |v| format!("{v:.2}×")),
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
        self.read_targets(&mut out);
        out.push(self.across(
            "cookie read ÷ memory read (tether)",
            0.85,
            ("cookie", "tether"),
            ("memory", "tether"),
        ));
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

    /// Reads measured against each other: the near cache, the pool, the JWT store.
    fn read_targets(&self, out: &mut Vec<Target>) {
        for (what, goal, a, b) in [
            (
                "redis-cached read ÷ memory read (tether, fenced near cache)",
                0.85,
                ("redis-cached", "tether"),
                ("memory", "tether"),
            ),
            (
                "redis-pushed read ÷ memory read (tether, pushed near cache)",
                0.85,
                ("redis-pushed", "tether"),
                ("memory", "tether"),
            ),
            (
                "redis-cached read (tether) ÷ redis read (tower-sessions)",
                1.5,
                ("redis-cached", "tether"),
                ("redis", "tower-sessions"),
            ),
            (
                "redis-pushed read (tether) ÷ redis read (tower-sessions)",
                1.5,
                ("redis-pushed", "tether"),
                ("redis", "tower-sessions"),
            ),
            (
                "postgres-cached read (tether) ÷ postgres read (tower-sessions)",
                5.0,
                ("postgres-cached", "tether"),
                ("postgres", "tower-sessions"),
            ),
            (
                "postgres-pushed read (tether) ÷ postgres read (tower-sessions)",
                5.0,
                ("postgres-pushed", "tether"),
                ("postgres", "tower-sessions"),
            ),
            (
                "redis-pool read ÷ redis read (tether)",
                0.8,
                ("redis-pool", "tether"),
                ("redis", "tether"),
            ),
            (
                "jwt read ÷ cookie read (tether)",
                0.8,
                ("jwt", "tether"),
                ("cookie", "tether"),
            ),
        ] {
            out.push(self.across(what, goal, a, b));
        }
    }

    /// `a`'s read over `b`'s, two rows of different groups. The groups run minutes
    /// apart and this machine's speed moves between them (a group's bare axum runs
    /// differ by a fifth from another's in one run), so each read is taken over the
    /// bare axum runs around its own group first; the plain ratio is shown beside it.
    fn across(&self, what: &str, goal: f64, a: (&str, &str), b: (&str, &str)) -> Target {
        let read = |(store, lib): (&str, &str)| self.rps(store, lib, "read");
        let over_bare = |(store, lib): (&str, &str)| self.over_bare(store, lib, "read");
        let plain = read(a).zip(read(b)).map(|(a, b)| a / b);
        let value = over_bare(a).zip(over_bare(b)).map(|(a, b)| a / b);
        let mut target = ratio(what.to_owned(), goal, value);
        if let (Some(_), Some(plain)) = (value, plain) {
            target.measured = format!("{} (plain {plain:.2}×)", target.measured);
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
             would take. A ratio of two stores' rows compares groups run minutes apart: \
             each row is taken over the bare axum runs around its own group first, and the \
             plain ratio is shown beside it.\n\n| target | goal | measured | met |\n|---|---|---|---|",
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
    fn a_ratio_across_groups_is_taken_over_each_groups_bare_axum() {
        let Cli::Run(args) = Cli::parse_from(["tether-bench", "run"]);
        let mut samples = BTreeMap::new();
        // The memory group ran on a fast machine (bare 200k), the cached one on a slow
        // one (bare 100k): 90k there is 0.9 of bare, as 180k is here.
        samples.insert(read("memory"), vec![sample(180_000.0)]);
        samples.insert(read("redis-cached"), vec![sample(90_000.0)]);
        let bare = BTreeMap::from([
            ("memory".to_owned(), vec![200_000.0]),
            ("redis-cached".to_owned(), vec![100_000.0]),
        ]);
        let report = report(&args, samples, bare);
        let target = report.across("x", 0.85, ("redis-cached", "tether"), ("memory", "tether"));
        assert_eq!(target.measured, "1.00× (plain 0.50×)");
        assert_eq!(target.met, Some(true));
        // With no bare runs for a group there is no figure, not a plain one passed off.
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
