//! The report: Markdown tables per scenario, SVG charts, JSON, and the shape checks
//! that say whether each approach behaved as the theory says.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;
use tether_tools::chart::{self, Bars};

use crate::Error;
use crate::approach::{Approach, Scenario};
use crate::run::{Outcome, Settings};

/// Everything one `tether-lab run` produced.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) machine: String,
    pub(crate) command: String,
    pub(crate) binaries: String,
    /// What routed the users.
    pub(crate) proxy: crate::proxy::Proxy,
    pub(crate) quick: bool,
    pub(crate) settings: Settings,
    pub(crate) seconds: f64,
    /// Approaches left out, and why.
    pub(crate) skipped: Vec<(Approach, String)>,
    pub(crate) outcomes: Vec<Outcome>,
    pub(crate) checks: Vec<Check>,
}

/// One expectation about the shape of the results.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Check {
    pub(crate) what: String,
    pub(crate) passed: bool,
    pub(crate) measured: String,
}

impl Report {
    fn find(&self, approach: Approach, scenario: Scenario) -> Option<&Outcome> {
        self.outcomes
            .iter()
            .find(|o| o.approach == approach && o.scenario == scenario)
    }

    /// Checks what the theory predicts, on whatever ran.
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn check(&mut self) {
        let mut checks = Vec::new();
        for o in &self.outcomes {
            let event = match o.scenario {
                Scenario::Steady | Scenario::LargeSession => continue,
                Scenario::Kill => "an instance dies",
                Scenario::ScaleOut => "an instance joins",
                Scenario::StoreRestart => "the store server restarts",
                Scenario::Rolling => "every instance restarts in turn",
            };
            let name = o.approach.name();
            if !o.approach.instance_local() {
                checks.push(Check {
                    what: format!("{name}: no one logs in again when {event}"),
                    passed: o.relogin_users == 0,
                    measured: format!("{} of {} users", o.relogin_users, o.users),
                });
            } else if o.scenario == Scenario::Kill {
                let expected = o.on_killed_share.unwrap_or(0.0);
                checks.push(Check {
                    what: format!("{name}: when {event}, exactly its users log in again"),
                    passed: expected > 0.0 && (o.relogin_share - expected).abs() <= 0.02,
                    measured: format!(
                        "{:.1}% logged in again, {:.1}% were on the killed instance",
                        o.relogin_share * 100.0,
                        expected * 100.0
                    ),
                });
            } else if o.scenario == Scenario::Rolling {
                checks.push(Check {
                    what: format!("{name}: when {event}, everyone logs in again"),
                    passed: o.relogin_share >= 0.95,
                    measured: format!("{:.1}% logged in again", o.relogin_share * 100.0),
                });
            }
        }
        let n = self.settings.instances as f64;
        if let Some(o) = self.find(Approach::MemoryCookieHash, Scenario::ScaleOut) {
            let moved = o.moved_share.unwrap_or(1.0);
            checks.push(Check {
                what: format!(
                    "consistent hash: scale-out moves about 1/(N+1) = {:.0}% of users",
                    100.0 / (n + 1.0)
                ),
                passed: moved >= 0.5 / (n + 1.0) && moved <= 1.6 / (n + 1.0),
                measured: format!("{:.1}% moved", moved * 100.0),
            });
        }
        if let Some(o) = self.find(Approach::MemoryModuloHash, Scenario::ScaleOut) {
            let moved = o.moved_share.unwrap_or(0.0);
            checks.push(Check {
                what: format!(
                    "modulo hash: scale-out moves most users (N/(N+1) = {:.0}%)",
                    100.0 * n / (n + 1.0)
                ),
                passed: moved >= 0.5,
                measured: format!("{:.1}% moved", moved * 100.0),
            });
        }
        for client_side in [Approach::Cookie, Approach::Jwt] {
            let (Some(small), Some(large)) = (
                self.find(client_side, Scenario::Steady),
                self.find(client_side, Scenario::LargeSession),
            ) else {
                continue;
            };
            checks.push(Check {
                what: format!(
                    "{} store: bytes per request grow with the session (64 B → 2 KiB)",
                    client_side.name()
                ),
                passed: large.cookie_bytes_per_request >= small.cookie_bytes_per_request + 1500.0,
                measured: format!(
                    "{:.0} → {:.0} cookie bytes per request",
                    small.cookie_bytes_per_request, large.cookie_bytes_per_request
                ),
            });
        }
        self.checks = checks;
    }

    pub(crate) fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// Writes `report.md`, `report.json` and the charts into `dir`.
    pub(crate) fn write(&self, dir: &Path) -> Result<(), Error> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(self)?)?;
        let charts = self.charts(dir)?;
        std::fs::write(dir.join("report.md"), self.markdown(&charts))?;
        Ok(())
    }

    #[allow(clippy::too_many_lines)]
    fn markdown(&self, charts: &[(String, String)]) -> String {
        let s = &self.settings;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# tether consistency lab\n\n\
             The five ways to keep a user's session when requests land on different \
             instances, each run through the same scenarios on real processes: {} `login \
             serve` instances behind {}, on loopback.\n",
            s.instances,
            match self.proxy {
                crate::proxy::Proxy::Tether => "`tether-balancer`".to_owned(),
                other => format!(
                    "{} (configured as the repository's `examples/` configure it: round-robin, \
                     or a consistent hash on the proxy's own routing cookie; reloaded \
                     gracefully when the pool changes)",
                    other.name()
                ),
            }
        );
        let _ = writeln!(out, "- Command: `{}`", self.command);
        let _ = writeln!(out, "- Machine: {}", self.machine);
        let _ = writeln!(out, "- Binaries: {}", self.binaries);
        let _ = writeln!(
            out,
            "- Load: {} simulated users, each from its own client address \
             (`X-Forwarded-For`, trusted by the balancer), logging in over {:.1} s, then \
             browsing with a mean think time of {} ms; {:.1} s of browsing before the \
             event and {:.1} s after it; a killed instance stays down {:.1} s.",
            s.users,
            s.ramp.as_secs_f64(),
            s.think.as_millis(),
            s.before.as_secs_f64(),
            s.after.as_secs_f64(),
            s.down.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "- Took {:.0} s{}.",
            self.seconds,
            if self.quick { " (`--quick`)" } else { "" }
        );
        for (approach, why) in &self.skipped {
            let _ = writeln!(out, "- Skipped {}: {why}", approach.name());
        }
        out.push_str(
            "\nColumns: **re-login** is the share of users who found themselves logged \
             out and had to log in again; **on killed / moved** is the share of users whose \
             instance was the one killed, or who were answered by another instance after \
             the scale-out; **failed** counts 5xx answers and requests that got none; \
             latency is through the balancer, think time excluded; **cookie** is the mean \
             `Cookie` header a request carries, **set-cookie** the mean `Set-Cookie` bytes \
             per answer; **replication** is what the instances sent each other per \
             request; **RSS** is an instance's resident memory at the end, and its growth \
             over the run per 1,000 users; **spread** is the busiest instance's requests \
             over the mean.\n",
        );
        for scenario in Scenario::ALL {
            let rows: Vec<&Outcome> = self
                .outcomes
                .iter()
                .filter(|o| o.scenario == scenario)
                .collect();
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n## {}\n\n{}\n", scenario.name(), scenario.describe());
            out.push_str(
                "| approach | re-login | on killed / moved | failed | requests | p50 ms | p99 ms \
                 | cookie B | set-cookie B | replication B | RSS MiB | RSS MiB / 1,000 users \
                 | spread |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
            );
            for o in rows {
                let share = o
                    .on_killed_share
                    .or(o.moved_share)
                    .map_or("–".to_owned(), |v| format!("{:.1}%", v * 100.0));
                let replication = o
                    .replication_bytes_per_request
                    .map_or("–".to_owned(), |v| format!("{v:.0}"));
                let _ = writeln!(
                    out,
                    "| {} | {:.1}% ({}) | {share} | {} | {} | {:.1} | {:.1} | {:.0} | {:.0} | \
                     {replication} | {:.1} | {:.1} | {:.2} |",
                    o.approach.name(),
                    o.relogin_share * 100.0,
                    o.relogin_users,
                    o.failed,
                    o.requests,
                    o.p50_ms,
                    o.p99_ms,
                    o.cookie_bytes_per_request,
                    o.set_cookie_bytes_per_response,
                    o.rss_mib,
                    o.rss_growth_mib_per_1000,
                    o.spread
                );
            }
        }
        if !self.checks.is_empty() {
            out.push_str("\n## Checks\n\n");
            for c in &self.checks {
                let _ = writeln!(
                    out,
                    "- {} {}: {}",
                    if c.passed { "✅" } else { "❌" },
                    c.what,
                    c.measured
                );
            }
        }
        if !charts.is_empty() {
            out.push_str("\n## Charts\n\n");
            for (file, title) in charts {
                let _ = writeln!(out, "![{title}]({file})\n");
            }
        }
        out
    }

    /// Draws the charts that have data; returns (file name, title) of each.
    fn charts(&self, dir: &Path) -> Result<Vec<(String, String)>, Error> {
        let mut made = Vec::new();
        let disruptions = [
            Scenario::Kill,
            Scenario::ScaleOut,
            Scenario::StoreRestart,
            Scenario::Rolling,
        ];
        let panels: Vec<(String, Vec<(String, f64)>)> = disruptions
            .iter()
            .map(|s| {
                (
                    format!("forced re-login, {} (% of users)", s.name()),
                    self.series(*s, |o| o.relogin_share * 100.0),
                )
            })
            .filter(|(_, rows)| !rows.is_empty())
            .collect();
        if !panels.is_empty() {
            chart(&dir.join("relogin.svg"), &panels)?;
            made.push(("relogin.svg".into(), "Forced re-login by scenario".into()));
        }
        let mut panels = vec![
            (
                "cookie bytes per request, 64 B session".to_owned(),
                self.series(Scenario::Steady, |o| o.cookie_bytes_per_request),
            ),
            (
                "cookie bytes per request, 2 KiB session".to_owned(),
                self.series(Scenario::LargeSession, |o| o.cookie_bytes_per_request),
            ),
            (
                "RSS growth per instance per 1,000 users (MiB), 2 KiB session".to_owned(),
                self.series(Scenario::LargeSession, |o| o.rss_growth_mib_per_1000),
            ),
            (
                "p99 latency, steady (ms)".to_owned(),
                self.series(Scenario::Steady, |o| o.p99_ms),
            ),
        ];
        panels.retain(|(_, rows)| !rows.is_empty());
        if !panels.is_empty() {
            chart(&dir.join("costs.svg"), &panels)?;
            made.push((
                "costs.svg".into(),
                "Bytes, memory and latency by approach".into(),
            ));
        }
        Ok(made)
    }

    fn series(&self, scenario: Scenario, value: impl Fn(&Outcome) -> f64) -> Vec<(String, f64)> {
        self.outcomes
            .iter()
            .filter(|o| o.scenario == scenario)
            .map(|o| (o.approach.name().to_owned(), value(o)))
            .collect()
    }
}

fn plot_error(e: impl std::fmt::Display) -> Error {
    Error::Setup(format!("drawing a chart: {e}"))
}

/// Horizontal bar charts, one panel per (title, rows), two panels per row.
fn chart(path: &Path, panels: &[(String, Vec<(String, f64)>)]) -> Result<(), Error> {
    let rows = panels.len().div_ceil(2);
    let height = u32::try_from(rows).unwrap_or(1) * 300;
    let root = SVGBackend::new(path, (1200, height)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let areas = root.split_evenly((rows, 2));
    for ((title, bars), area) in panels.iter().zip(areas) {
        let panel = Bars {
            title,
            bars,
            label: |v| format!("{v:.1}"),
            colour: |_| RGBColor(46, 110, 180),
            reference: None,
        };
        chart::draw(&area, &panel).map_err(plot_error)?;
    }
    root.present().map_err(plot_error)?;
    Ok(())
}
