//! BENCHMARKS.md and the chart, from what the runs measured.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use tether_tools::chart::Bars;

use crate::{ENDPOINTS, Increments, Key, RunArgs, Sample, median};

/// Mean heap allocations per request, by library then endpoint.
pub(crate) type Allocations = BTreeMap<String, BTreeMap<String, f64>>;

pub(crate) struct Report<'a> {
    pub(crate) args: &'a RunArgs,
    pub(crate) samples: BTreeMap<Key, Vec<Sample>>,
    pub(crate) bare: BTreeMap<String, Vec<f64>>,
    pub(crate) calls: BTreeMap<Key, f64>,
    /// The mean `Cookie` header of a seeded session's request, per store (tether).
    pub(crate) cookie_bytes: BTreeMap<String, f64>,
    /// The rows whose rounds spread too far, for the stores measured again.
    pub(crate) remeasured: Vec<crate::spread::Spread>,
    pub(crate) floor: BTreeMap<String, f64>,
    pub(crate) increments: Vec<(&'static str, &'static str, bool, Increments)>,
    pub(crate) allocations: Allocations,
    /// The reads the targets compare across stores, side by side.
    pub(crate) side: crate::side::Side,
    pub(crate) seconds: f64,
}

impl Report<'_> {
    pub(crate) fn get(&self, store: &str, lib: &str, endpoint: &str) -> Option<Sample> {
        let runs = self
            .samples
            .get(&(store.to_owned(), lib.to_owned(), endpoint.to_owned()))?;
        Some(Sample {
            rps: median(runs.iter().map(|s| s.rps).collect()),
            p50_ms: median(runs.iter().map(|s| s.p50_ms).collect()),
            p99_ms: median(runs.iter().map(|s| s.p99_ms).collect()),
            errors: runs.iter().map(|s| s.errors).sum(),
        })
    }

    pub(crate) fn bare(&self, store: &str) -> f64 {
        median(self.bare.get(store).cloned().unwrap_or_default())
    }

    pub(crate) fn stores(&self) -> Vec<String> {
        let mut stores: Vec<String> = Vec::new();
        for (s, _, _) in self.samples.keys() {
            if !stores.contains(s) {
                stores.push(s.clone());
            }
        }
        let order = [
            "memory",
            "redis",
            "redis-pool",
            "redis-cached",
            "redis-pushed",
            "mysql",
            "postgres",
            "postgres-cached",
            "postgres-pushed",
            "sqlite",
            "file",
            "cookie",
            "jwt",
        ];
        stores.sort_by_key(|s| order.iter().position(|o| o == s));
        stores
    }

    /// tether / tower-sessions per (store, endpoint), where both ran.
    pub(crate) fn ratios(&self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for store in self.stores() {
            for (endpoint, _, _) in ENDPOINTS {
                if let (Some(t), Some(p)) = (
                    self.get(&store, "tether", endpoint),
                    self.get(&store, "tower-sessions", endpoint),
                ) {
                    out.push((format!("{store} {endpoint}"), t.rps / p.rps));
                }
            }
        }
        out
    }

    pub(crate) fn headline(&self) -> String {
        let mut out = String::from(
            "| store | endpoint | tether req/s | tower-sessions req/s | tether ÷ tower-sessions | tether ÷ bare axum |\n|---|---|---|---|---|---|\n",
        );
        for store in self.stores() {
            let bare = self.bare(&store);
            for (endpoint, _, _) in ENDPOINTS {
                let Some(t) = self.get(&store, "tether", endpoint) else {
                    continue;
                };
                let peer = self.get(&store, "tower-sessions", endpoint);
                let _ = writeln!(
                    out,
                    "| {store} | {endpoint} | {:.0} | {} | {} | {:.2}× |",
                    t.rps,
                    peer.map_or("–".into(), |p| format!("{:.0}", p.rps)),
                    peer.map_or("–".into(), |p| format!("**{:.2}×**", t.rps / p.rps)),
                    t.rps / bare
                );
            }
        }
        out
    }

    pub(crate) fn markdown(&self) -> String {
        let a = self.args;
        let mut out = String::from("# Benchmarks: tether and tower-sessions\n\n");
        let _ = writeln!(
            out,
            "Produced by `scripts/bench` (release build) on {}. Each server runs on one \
             tokio worker thread pinned to core 0 (`taskset -c 0`); `wrk -t1 -c{} -d{}s` runs \
             pinned to core 1. Every store's group of runs sits between two bare-axum runs \
             on the same machine, and the libraries alternate order round by round. \
             Figures are the median of {} rounds; the whole run took {:.0} s. No row's \
             rounds spread more than {}× (fastest ÷ slowest): a noisier run does not \
             replace this file.\n",
            tether_tools::machine::describe_machine(),
            a.connections,
            a.seconds,
            a.rounds,
            self.seconds,
            a.max_spread
        );
        if !self.remeasured.is_empty() {
            let rows: Vec<String> = self.remeasured.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                out,
                "Measured again, every round of their group (or of the reads side by side), because an attempt's rounds \
                 spread more than that (the figures below are the last attempt's): {}.\n",
                rows.join(", ")
            );
        }
        out.push_str(
            "Versions: tower-sessions 0.15 with its memory store; tower-sessions 0.14 with \
             tower-sessions-redis-store 0.16 (fred) and tower-sessions-sqlx-store 0.15 (sqlx \
             0.8), the newest set that builds together. Redis, MariaDB and PostgreSQL are the \
             Debian packages, on loopback, started by `scripts/services.sh`; SQLite is \
             sqlx's bundled library on a file per library in the temporary directory, WAL \
             mode and a 5 s busy timeout for both.\n\n\
             tether's memory store runs with `with_max_sessions(10_000_000)`: the login row \
             makes about 400,000 sessions a run, above its default bound of 100,000 (where \
             it answers new logins 503), and tower-sessions' memory store has no bound.\n\n\
             Endpoints: `untouched` (the handler ignores the session), `read` (reads a \
             counter), `write` (increments it), `login` (rotates the id and binds a user, \
             from no session). Store round trips per request are counted over 100 requests \
             at the server: for Redis, the commands clients send as `MONITOR` lists them \
             (commands a Lua script runs inside Redis are not round trips and are not \
             counted); for MariaDB, `Com_stmt_execute`; for PostgreSQL, the calls \
             `pg_stat_statements` records (SQLite has no server to count at: –). Each server is first seeded with 1,000 sessions, and wrk's \
             requests to `untouched`, `read` and `write` cycle through their cookies: many \
             users, as in production, rather than 32 connections contending for one row or \
             key (the increments test below is the contention case).\n\n\
             The near-cache rows: `redis-cached` and `postgres-cached` are tether's store \
             with its near cache, fenced reads (the default: a read is served from memory \
             after a fence shared by every read waiting comes back through the \
             invalidation channel, so no read misses a write completed before it began); \
             `redis-pushed` and `postgres-pushed` serve reads from memory at once \
             (`near_cache=pushed`). tower-sessions' row beside `*-cached` is its \
             `CachingSessionStore` with tower-sessions-moka-store 0.15 (100,000 entries) \
             in front of the same store, which no other instance can invalidate. Round \
             trips of the near-cache rows count the fences (a `PING`, a query on the `LISTEN` connection) as \
             well as the session commands. The PostgreSQL near-cache rows run on a \
             schema of their own: the trigger that announces changes, which the first \
             near cache on a database installs, costs every write there, and the plain \
             `postgres` rows stand for a database where no instance caches.\n\n\
             ![tether ÷ tower-sessions](docs/bench/ratios.svg)\n\n## Summary\n\n",
        );
        out.push_str(&self.headline());
        self.targets_section(&mut out);
        self.side_section(&mut out);
        self.sealed_section(&mut out);
        for store in self.stores() {
            self.store_section(&mut out, &store);
        }
        out.push_str(
            "\n## Lost increments\n\n200 concurrent `POST /incr` on one session's counter \
             (curl, 200 parallel connections); lost = increments answered 2xx but missing \
             from the final count. tether runs in lock mode (`with_lock`), tower-sessions has \
             no lock mode.\n\n| store | library | lock mode | failed | lost of 200 |\n|---|---|---|---|---|\n",
        );
        for (store, lib, lock, result) in &self.increments {
            let lost = result
                .lost
                .map_or_else(|| "the final read failed".to_owned(), |l| l.to_string());
            let _ = writeln!(
                out,
                "| {store} | {lib} | {} | {} | {lost} |",
                if *lock { "yes" } else { "–" },
                result.failed
            );
        }
        out
    }

    /// The reads side by side: each reader's rounds and their median.
    fn side_section(&self, out: &mut String) {
        if self.side.is_empty() {
            return;
        }
        out.push_str(
            "\n## Reads side by side\n\nThe reads the targets above compare across stores, \
             measured apart from the groups: every round starts each server in turn, seeds \
             it and reads from it once (`GET /read`, the same wrk run), one straight after \
             another, the order reversed every other round. A target is the median of its \
             round-by-round ratios, so two reads are compared seconds apart rather than a \
             group's minutes.\n\n| store | library | req/s by round | median |\n|---|---|---|---|\n",
        );
        for (store, lib) in crate::side::readers() {
            let Some(rps) = self.side.get(&(store, lib)) else {
                continue;
            };
            let rounds: Vec<String> = rps.iter().map(|r| format!("{r:.0}")).collect();
            let _ = writeln!(
                out,
                "| {store} | {lib} | {} | {:.0} |",
                rounds.join(", "),
                median(rps.clone())
            );
        }
    }

    /// What sealing session values at rest (`with_sealed_data`) costs, per store and
    /// endpoint, in the same run.
    fn sealed_section(&self, out: &mut String) {
        let mut rows = String::new();
        for store in self.stores() {
            for (endpoint, _, _) in ENDPOINTS {
                if let (Some(plain), Some(sealed)) = (
                    self.get(&store, "tether", endpoint),
                    self.get(&store, "tether-sealed", endpoint),
                ) {
                    let _ = writeln!(
                        rows,
                        "| {store} | {endpoint} | {:.0} | {:.0} | {:.2}× |",
                        plain.rps,
                        sealed.rps,
                        sealed.rps / plain.rps
                    );
                }
            }
        }
        if !rows.is_empty() {
            out.push_str(
                "
## Sealed data at rest

The same server with session values sealed \
                 (`with_sealed_data`, XChaCha20-Poly1305 per value): what it costs per read \
                 and write.

| store | endpoint | tether req/s | sealed req/s | sealed ÷ plain |
|---|---|---|---|---|
",
            );
            out.push_str(&rows);
        }
    }

    /// One store's table, its bare-axum figure, and what only that store has.
    fn store_section(&self, out: &mut String, store: &str) {
        let bare = self.bare(store);
        let _ = writeln!(out, "\n## {store}\n\nbare axum: {bare:.0} req/s\n");
        if let Some(bytes) = self.cookie_bytes.get(store) {
            let _ = writeln!(
                out,
                "Cookie header per request (a seeded session with a counter): {bytes:.0} bytes.\n"
            );
        }
        out.push_str("| endpoint | library | req/s | × bare | p50 ms | p99 ms | failed | store round trips / request |\n|---|---|---|---|---|---|---|---|\n");
        for (endpoint, _, _) in ENDPOINTS {
            for lib in ["tether", "tether-sealed", "tower-sessions"] {
                let Some(s) = self.get(store, lib, endpoint) else {
                    continue;
                };
                let calls = self
                    .calls
                    .get(&(store.to_owned(), lib.to_owned(), endpoint.to_owned()))
                    .map_or("–".into(), |c| format!("{c:.2}"));
                let _ = writeln!(
                    out,
                    "| {endpoint} | {lib} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {calls} |",
                    s.rps,
                    s.rps / bare,
                    s.p50_ms,
                    s.p99_ms,
                    s.errors
                );
            }
        }
        if store == "redis" {
            let _ = writeln!(
                out,
                "\nRaw `redis-benchmark -c {}` on the same server, the floor: {}.",
                self.args.connections,
                self.floor
                    .iter()
                    .map(|(k, v)| format!("{k} {v:.0} ops/s"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if let (Some(t), Some(get)) =
                (self.get("redis", "tether", "read"), self.floor.get("GET"))
            {
                let _ = writeln!(out, "tether's Redis read is {:.2}× raw GET.", t.rps / get);
            }
        }
    }

    pub(crate) fn chart(&self, path: &Path) {
        let bars = self.ratios();
        if bars.is_empty() {
            return;
        }
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let drawn = (|| -> Result<(), Box<dyn std::error::Error>> {
            let k = u32::try_from(bars.len())?;
            let root = SVGBackend::new(path, (900, 60 + 34 * k)).into_drawing_area();
            root.fill(&WHITE)?;
            let panel = Bars {
                title: "tether ÷ tower-sessions, req/s (1.0 = equal)",
                bars: &bars,
                label: |v| format!("{v:.2}×"),
                colour: |v| {
                    if v >= 1.0 {
                        RGBColor(46, 140, 80)
                    } else {
                        RGBColor(200, 70, 60)
                    }
                },
                reference: Some(1.0),
            };
            tether_tools::chart::draw(&root, &panel)?;
            root.present()?;
            Ok(())
        })();
        if let Err(e) = drawn {
            eprintln!("tether-bench: could not draw {}: {e}", path.display());
        }
    }
}
