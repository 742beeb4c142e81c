//! `tether-bench run`: tether and tower-sessions behind the same app under the same
//! load, store by store, and `BENCHMARKS.md` from what it measured. Run it through
//! `scripts/bench`, which installs and starts Redis and MariaDB and builds in release.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use clap::Parser;
use tether::StoreKind;

/// The benchmark driver.
#[derive(Debug, Parser)]
#[command(about)]
enum Cli {
    /// Run every row and write the report.
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Rounds; the report takes the median.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Seconds per wrk run.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// wrk connections (and redis-benchmark clients).
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// Where BENCHMARKS.md goes; the chart goes to docs/bench/ beside it.
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// Only these stores (memory, redis, redis-pool, redis-cached, redis-pushed,
    /// postgres-cached, postgres-pushed, mysql, postgres, sqlite, file,
    /// cookie, jwt).
    #[arg(long = "store")]
    stores: Vec<String>,
    /// The widest a row's rounds may spread (fastest ÷ slowest) for the run to replace
    /// BENCHMARKS.md; a noisier run's report goes to target/tether-bench/ instead.
    #[arg(long, default_value_t = 2.0)]
    max_spread: f64,
    /// How many times a store whose rows spread too far is measured again (all its
    /// rounds) before the run is rejected.
    #[arg(long, default_value_t = 2)]
    retries: usize,
}

/// Sessions each server is seeded with; wrk's connections cycle through them, so the
/// rows measure many users, not 32 connections fighting over one row or key.
const SESSIONS: usize = 1000;

const ENDPOINTS: [(&str, &str, bool); 4] = [
    ("untouched", "/untouched", false),
    ("read", "/read", false),
    ("write", "/write", true),
    ("login", "/login", true),
];

fn fail(message: &str) -> ! {
    eprintln!("tether-bench: {message}");
    std::process::exit(2);
}

fn output(command: &mut Command) -> String {
    match command.output() {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(e) => fail(&format!("cannot run {command:?}: {e}")),
    }
}

mod counts;
mod group;
mod load;
mod report;
mod server;
mod side;
mod spread;
mod targets;

use crate::counts::{Increments, increments, redis_floor};
use crate::load::{Sample, curl};
use crate::report::Report;
use crate::server::Server;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

type Key = (String, String, String); // (store, lib, endpoint)

/// The first of `names` the run measures (its server's URL is needed), else the first.
fn first_wanted<'a>(names: &[&'a str], wanted: impl Fn(&str) -> bool) -> &'a str {
    names
        .iter()
        .copied()
        .find(|s| wanted(s))
        .unwrap_or(names[0])
}

#[allow(clippy::too_many_lines)]
fn run(args: &RunArgs) {
    let wanted = |store: &str| args.stores.is_empty() || args.stores.iter().any(|s| s == store);
    // A server's URL is needed only when its store is measured.
    let url_for = |store: &str, var: &str| {
        if !wanted(store) {
            return String::new();
        }
        std::env::var(var).unwrap_or_else(|_| fail(&format!("{var} is not set: run scripts/bench")))
    };
    let redis_url = url_for(
        first_wanted(
            &["redis", "redis-pool", "redis-cached", "redis-pushed"],
            wanted,
        ),
        "TETHER_TEST_REDIS_URL",
    );
    let mysql_url = url_for("mysql", "TETHER_TEST_MYSQL_URL");
    let postgres_url = url_for(
        first_wanted(&["postgres", "postgres-cached", "postgres-pushed"], wanted),
        "TETHER_TEST_POSTGRES_URL",
    );
    // The near-cache rows on a schema of their own (see `postgres_schema`).
    let cached_postgres_url = if wanted("postgres-cached") || wanted("postgres-pushed") {
        counts::postgres_schema(&postgres_url, "tether_bench_cached")
    } else {
        String::new()
    };
    // The run's stores: a random name, 0700, created exclusively.
    let work_dir = tempfile::Builder::new()
        .prefix("tether-bench-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .unwrap_or_else(|e| fail(&e.to_string()));
    let file_dir = work_dir.path().to_owned();
    let file_url = file_dir.join("sessions").display().to_string();
    // A database file per library (`{lib}` is filled in by `Server::start`), so
    // neither inherits the other's write-ahead log to checkpoint.
    let sqlite_url = format!("sqlite://{}", file_dir.join("{lib}.db").display());
    let script_path = file_dir.join("load.lua");
    // The bare server ignores cookies; it gets the same number of distinct ones.
    let fake_cookies: Vec<String> = (0..SESSIONS).map(|i| format!("bare={i:022}")).collect();
    // Every store tether ships (the replicated one is measured between instances, by
    // the lab), then tether's Redis store on a deadpool-redis pool.
    let both = vec!["tether", "tower-sessions"];
    let mut stores: Vec<(&str, Option<&str>, Vec<&str>)> = StoreKind::ALL
        .iter()
        .filter_map(|&kind| {
            let (url, libs) = match kind {
                StoreKind::Memory => (None, vec!["tether", "tether-sealed", "tower-sessions"]),
                StoreKind::Redis => (
                    Some(redis_url.as_str()),
                    vec!["tether", "tether-sealed", "tower-sessions"],
                ),
                StoreKind::MySql => (Some(mysql_url.as_str()), both.clone()),
                StoreKind::Postgres => (Some(postgres_url.as_str()), both.clone()),
                StoreKind::Sqlite => (Some(sqlite_url.as_str()), both.clone()),
                StoreKind::File => (Some(file_url.as_str()), vec!["tether"]),
                StoreKind::Cookie | StoreKind::Jwt => (None, vec!["tether"]),
                StoreKind::Replicated => return None,
                other => fail(&format!(
                    "the bench has no settings for the {other} store: add them here"
                )),
            };
            Some((kind.name(), url, libs))
        })
        .collect();
    stores.push(("redis-pool", Some(redis_url.as_str()), vec!["tether"]));
    // The near cache: fenced (the default) beside tower-sessions' CachingSessionStore
    // (moka in front of the same store), and pushed.
    stores.push(("redis-cached", Some(redis_url.as_str()), both.clone()));
    stores.push(("redis-pushed", Some(redis_url.as_str()), vec!["tether"]));
    stores.push((
        "postgres-cached",
        Some(cached_postgres_url.as_str()),
        both.clone(),
    ));
    stores.push((
        "postgres-pushed",
        Some(cached_postgres_url.as_str()),
        vec!["tether"],
    ));
    stores.retain(|(s, _, _)| wanted(s));

    let bench = group::Bench {
        args,
        script_path: &script_path,
        fake_cookies: &fake_cookies,
    };
    let mut tables = group::Tables::default();
    let started = Instant::now();
    for round in 0..args.rounds {
        for store in &stores {
            bench.group(&mut tables, round, store);
        }
    }
    // A store whose rows spread too far is measured again, every round of its group,
    // up to `retries` times; the report names it and what its attempt before spread.
    let mut remeasured: Vec<spread::Spread> = Vec::new();
    for _ in 0..args.retries {
        let wide = spread::too_wide(&tables.samples, &tables.bare, args.max_spread);
        if wide.is_empty() {
            break;
        }
        for store in stores
            .iter()
            .filter(|(s, _, _)| wide.iter().any(|w| w.store == *s))
        {
            eprintln!("measuring {} again: its rounds spread too far", store.0);
            remeasured.extend(wide.iter().filter(|w| w.store == store.0).cloned());
            tables.forget(store.0);
            for round in 0..args.rounds {
                bench.group(&mut tables, round, store);
            }
        }
    }
    // The reads the targets compare across stores, side by side; measured again when
    // a reader's rounds spread too far.
    let mut side = bench.side_by_side(&stores);
    for _ in 0..args.retries {
        let wide = side::too_wide(&side, args.max_spread);
        if wide.is_empty() {
            break;
        }
        eprintln!("measuring the reads side by side again: their rounds spread too far");
        remeasured.extend(wide);
        side = bench.side_by_side(&stores);
    }
    let floor = if wanted("redis") {
        redis_floor(&redis_url, args.connections)
    } else {
        BTreeMap::new()
    };
    let mut increments = Vec::new();
    for (store, url) in [
        ("memory", None),
        ("redis", Some(redis_url.as_str())),
        ("mysql", Some(mysql_url.as_str())),
        ("postgres", Some(postgres_url.as_str())),
        ("sqlite", Some(sqlite_url.as_str())),
    ]
    .into_iter()
    .filter(|(store, _)| wanted(store))
    {
        for (lib, lock) in [("tether", true), ("tower-sessions", false)] {
            let server = Server::start(lib, store, url, lock);
            increments.push((store, lib, lock, self::increments(&server)));
        }
    }
    let allocations = if wanted("memory") {
        targets::allocations()
    } else {
        BTreeMap::new()
    };
    drop(work_dir);
    let group::Tables {
        samples,
        bare,
        calls,
        cookie_bytes,
    } = tables;
    let report = Report {
        args,
        samples,
        bare,
        calls,
        cookie_bytes,
        remeasured,
        floor,
        increments,
        allocations,
        side,
        seconds: started.elapsed().as_secs_f64(),
    };
    let mut wide = spread::too_wide(&report.samples, &report.bare, args.max_spread);
    wide.extend(side::too_wide(&report.side, args.max_spread));
    let mut markdown = report.markdown();
    let mut out = args.out.clone();
    if !wide.is_empty() {
        let rows: Vec<String> = wide.iter().map(ToString::to_string).collect();
        let rejected = format!(
            "{} rows spread more than {}× between rounds (fastest ÷ slowest): {}",
            wide.len(),
            args.max_spread,
            rows.join(", ")
        );
        markdown = format!("**Rejected: too noisy.** {rejected}.\n\n{markdown}");
        // Kept for a look, out of the tree's reports.
        out = out.join("target/tether-bench");
        eprintln!("tether-bench: {rejected}");
    }
    // Benchmark figures only: nothing secret is written here.
    let chart = out.join("docs/bench/ratios.svg");
    let path = out.join("BENCHMARKS.md");
    if let Some(dir) = chart.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| fail(&e.to_string()));
    }
    report.chart(&chart);
    std::fs::write(&path, markdown).unwrap_or_else(|e| fail(&e.to_string()));
    println!("{}", report.headline());
    println!("wrote {} and {}", path.display(), chart.display());
    if !wide.is_empty() {
        fail("the machine was too noisy for this run to replace BENCHMARKS.md");
    }
}

fn main() {
    let Cli::Run(args) = Cli::parse();
    run(&args);
}
