//! `tether-lab run`: the five ways to keep sessions across instances, measured side by
//! side on real processes. See the README beside this crate.

mod approach;
mod cli;
mod cluster;
mod consistency;
mod delay;
mod membership;
mod proxy;
mod report;
mod run;
mod users;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use tether_testkit::services::{MariaDb, Postgres, RedisServer};
use tokio::sync::Mutex;

use approach::{Approach, Scenario};
use cli::{Cli, Command, ConsistencyArgs, MembershipArgs, RunArgs};
use cluster::Programs;
use report::Report;
use run::{Services, Settings, SharedServer};

/// Starts one store server with its files in the given directory.
type StartServer = fn(&std::path::Path) -> std::io::Result<SharedServer>;

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A process or service could not be started or driven.
    #[error("{0}")]
    Setup(String),
    /// Writing the report or the work files.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Encoding the JSON report.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

fn settings(args: &RunArgs) -> Settings {
    let ms = Duration::from_millis;
    if args.quick {
        Settings {
            instances: args.instances,
            users: args.users.unwrap_or(300),
            think: ms(args.think_ms.unwrap_or(250)),
            ramp: ms(1000),
            before: ms(500),
            after: ms(1500),
            down: ms(500),
        }
    } else {
        Settings {
            instances: args.instances,
            users: args.users.unwrap_or(1000),
            think: ms(args.think_ms.unwrap_or(1000)),
            ramp: ms(5000),
            before: ms(3000),
            after: ms(8000),
            down: ms(3000),
        }
    }
}

/// Starts the store servers the chosen approaches need; the ones that cannot start
/// are skipped, with the reason.
async fn start_services(
    approaches: &[Approach],
    work: &std::path::Path,
    skipped: &mut Vec<(Approach, String)>,
) -> Services {
    let mut services = Services::default();
    let starts: [(Approach, &str, StartServer); 3] = [
        (Approach::Redis, "redis-server", |dir| {
            Ok(Arc::new(Mutex::new(RedisServer::start(dir)?)))
        }),
        (Approach::Mysql, "mariadbd", |dir| {
            Ok(Arc::new(Mutex::new(MariaDb::install(dir)?)))
        }),
        (Approach::Postgres, "postgres", |dir| {
            Ok(Arc::new(Mutex::new(Postgres::install_with(
                dir,
                &["max_connections=300"],
            )?)))
        }),
    ];
    for (approach, program, start) in starts {
        if !approaches
            .iter()
            .any(|a| a.server_approach() == Some(approach))
        {
            continue;
        }
        let dir = work.join(program);
        match tokio::task::spawn_blocking(move || start(&dir)).await {
            Ok(Ok(server)) => services.servers.push((approach, server)),
            // The error names the program and, when it ran, the end of its log.
            Ok(Err(e)) => skipped.push((approach, e.to_string())),
            Err(e) => skipped.push((approach, e.to_string())),
        }
    }
    services
}

/// `path` as the report names it: relative to the directory the lab runs in (the
/// checkout), never the machine's absolute path.
fn relative(path: &std::path::Path) -> String {
    let here = std::env::current_dir().unwrap_or_default();
    path.strip_prefix(&here).map_or_else(
        |_| {
            path.file_name()
                .map_or_else(|| "?".to_owned(), |n| n.to_string_lossy().into_owned())
        },
        |p| p.display().to_string(),
    )
}

/// The approaches to run and, behind nginx or HAProxy, the ones no example of theirs
/// configures (with the reason).
fn chosen(args: &RunArgs) -> (Vec<Approach>, Vec<(Approach, String)>) {
    let chosen: Vec<Approach> = if args.approaches.is_empty() {
        Approach::ALL.to_vec()
    } else {
        args.approaches.clone()
    };
    let (routed, unrouted): (Vec<Approach>, Vec<Approach>) = chosen.into_iter().partition(|a| {
        args.proxy == proxy::Proxy::Tether || proxy::example(args.proxy, a.strategy()).is_some()
    });
    let unrouted = unrouted
        .into_iter()
        .map(|approach| {
            let why = format!(
                "no example configures {} for {} (an L4 hash sees one client address on \
                 loopback; see the lab's proxy.rs)",
                args.proxy.name(),
                approach.strategy()
            );
            (approach, why)
        })
        .collect();
    (routed, unrouted)
}

/// The directory of `login` and `tether-balancer`: the one given, or this program's.
fn bin_dir(given: Option<&PathBuf>) -> Result<PathBuf, Error> {
    Ok(match given {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default(),
    })
}

/// A private work directory (0700) and one the database servers can enter (0711).
fn work_dirs() -> Result<(tempfile::TempDir, tempfile::TempDir), Error> {
    // The run's stores and keys: a random name, 0700, created exclusively.
    let work = tempfile::Builder::new()
        .prefix("tether-lab-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()?;
    // The database servers' data directories: outside the private one, since a
    // server may run as its own user (PostgreSQL's initdb as `postgres`), which must
    // reach its directory (0711: entered, never listed); each server restricts its
    // own files.
    let servers = tempfile::Builder::new()
        .prefix("tether-lab-servers-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o711))
        .tempdir()?;
    Ok((work, servers))
}

fn command_line() -> String {
    std::iter::once("tether-lab".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Prints each check and where the report is; whether every check passed.
fn print_checks(checks: &[report::Check], report: &std::path::Path) -> bool {
    for c in checks {
        println!(
            "check {} ... {} ({})",
            c.what,
            if c.passed { "ok" } else { "FAILED" },
            c.measured
        );
    }
    println!("report: {}", report.display());
    checks.iter().all(|c| c.passed)
}

async fn membership(args: MembershipArgs) -> Result<bool, Error> {
    let programs = Programs::in_dir(&bin_dir(args.bin_dir.as_ref())?)?;
    let users = args.users.unwrap_or(if args.quick { 200 } else { 1000 });
    let (work_dir, servers_dir) = work_dirs()?;
    let mut skipped = Vec::new();
    let services = start_services(&[Approach::Replicated], servers_dir.path(), &mut skipped).await;
    let sessions = args
        .sessions
        .unwrap_or(if args.quick { 10_000 } else { 100_000 });
    let measured =
        membership::measure(&programs, &services, users, sessions, work_dir.path()).await?;
    let checks = membership::checks(&measured);
    membership::write(
        &args.out,
        &tether_tools::machine::describe_machine(),
        &command_line(),
        &measured,
        &checks,
    )?;
    Ok(print_checks(&checks, &args.out.join("membership.md")))
}

async fn consistency(args: ConsistencyArgs) -> Result<bool, Error> {
    let programs = Programs::in_dir(&bin_dir(args.bin_dir.as_ref())?)?;
    let approaches = if args.approaches.is_empty() {
        consistency::approaches()
    } else {
        args.approaches.clone()
    };
    let users = args.users.unwrap_or(if args.quick { 200 } else { 1000 });
    let (work_dir, servers_dir) = work_dirs()?;
    let mut skipped = Vec::new();
    let services = start_services(&approaches, servers_dir.path(), &mut skipped).await;
    if args.require_all && !skipped.is_empty() {
        return Err(Error::Setup(format!(
            "--require-all, and a store server cannot start: {skipped:?}"
        )));
    }
    let mut results = Vec::new();
    for approach in approaches {
        if skipped
            .iter()
            .any(|(s, _)| *s == approach || Some(*s) == approach.server_approach())
        {
            eprintln!("tether-lab: skipping {}", approach.name());
            continue;
        }
        let r = consistency::measure(
            &programs,
            &services,
            approach,
            users,
            args.concurrency.max(1),
            work_dir.path(),
        )
        .await?;
        eprintln!(
            "tether-lab: {:<22} stale after update {:>4}  after logout {:>4}  logout → i2 p50 {:.2} ms p99 {:.2} ms  failed {}",
            r.approach.name(),
            r.stale_after_update,
            r.stale_after_logout,
            r.logout_p50_ms,
            r.logout_p99_ms,
            r.failed
        );
        results.push(r);
    }
    let mut delays = Vec::new();
    for (server, name) in [(Approach::Redis, "redis"), (Approach::Postgres, "postgres")] {
        let measured = results
            .iter()
            .any(|r| r.approach.near_cache() && r.approach.server_approach() == Some(server));
        if let (true, Ok(shared)) = (measured, services.server(server)) {
            let url = shared.lock().await.url();
            let d = delay::measure(name, &url, users).await?;
            eprintln!(
                "tether-lab: {name} invalidation delay p50 {:.0} µs p99 {:.0} µs; in before the write answered: {} of {}",
                d.p50_us, d.p99_us, d.before_the_answer, d.writes
            );
            delays.push(d);
        }
    }
    drop(services);
    let checks = consistency::checks(&results);
    consistency::write(
        &args.out,
        &tether_tools::machine::describe_machine(),
        &command_line(),
        &results,
        &delays,
        &checks,
    )?;
    Ok(print_checks(&checks, &args.out.join("consistency.md")))
}

async fn lab(args: RunArgs) -> Result<Report, Error> {
    let started = Instant::now();
    let bin_dir = bin_dir(args.bin_dir.as_ref())?;
    let programs = Programs::in_dir(&bin_dir)?.behind(args.proxy)?;
    let settings = settings(&args);
    let (approaches, unrouted) = chosen(&args);
    let (work_dir, servers_dir) = work_dirs()?;
    let work = work_dir.path().to_owned();
    let mut skipped = Vec::new();
    let services = start_services(&approaches, servers_dir.path(), &mut skipped).await;
    if args.require_all && !skipped.is_empty() {
        drop(work_dir);
        let why: Vec<String> = skipped
            .iter()
            .map(|(a, why)| format!("{}: {why}", a.name()))
            .collect();
        return Err(Error::Setup(format!(
            "--require-all, and an approach cannot run: {}",
            why.join("; ")
        )));
    }
    skipped.extend(unrouted);

    let plan: Vec<(Approach, Scenario)> = approaches
        .iter()
        .filter(|a| {
            !skipped
                .iter()
                .any(|(s, _)| s == *a || Some(*s) == a.server_approach())
        })
        .flat_map(|a| Scenario::ALL.iter().map(move |s| (*a, *s)))
        .filter(|(a, s)| s.applies_to(*a))
        .filter(|(a, s)| !args.quick || s.in_quick(*a))
        .filter(|(_, s)| args.scenarios.is_empty() || args.scenarios.contains(s))
        .collect();
    let bar = ProgressBar::new(plan.len() as u64).with_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    for (approach, why) in &skipped {
        bar.suspend(|| eprintln!("tether-lab: skipping {}: {why}", approach.name()));
    }
    let mut outcomes = Vec::new();
    for (approach, scenario) in plan {
        bar.set_message(format!("{} / {}", approach.name(), scenario.name()));
        let outcome = run::run(&programs, &services, approach, scenario, settings, &work).await?;
        bar.suspend(|| {
            eprintln!(
                "tether-lab: {:<22} {:<16} re-login {:>5.1}%  failed {:>4}  p99 {:>6.1} ms  cookie {:>5.0} B  ({:.1} s)",
                approach.name(),
                scenario.name(),
                outcome.relogin_share * 100.0,
                outcome.failed,
                outcome.p99_ms,
                outcome.cookie_bytes_per_request,
                outcome.seconds
            );
        });
        outcomes.push(outcome);
        bar.inc(1);
    }
    bar.finish_and_clear();
    drop(services);
    drop(work_dir);

    let profile = bin_dir
        .file_name()
        .map_or("?".into(), |n| n.to_string_lossy().into_owned());
    let mut report = Report {
        machine: tether_tools::machine::describe_machine(),
        command: command_line(),
        binaries: format!(
            "`login` and `tether-balancer` from `{}` ({profile} build)",
            relative(&bin_dir)
        ),
        proxy: args.proxy,
        quick: args.quick,
        settings,
        seconds: started.elapsed().as_secs_f64(),
        skipped,
        outcomes,
        checks: Vec::new(),
    };
    report.check();
    report.write(&args.out)?;
    Ok(report)
}

#[tokio::main]
async fn main() {
    let args = match Cli::parse().command {
        Command::Run(args) => args,
        Command::Membership(args) => match membership(args).await {
            Ok(true) => return,
            Ok(false) => {
                eprintln!("tether-lab: a membership check failed (see the report)");
                std::process::exit(1);
            }
            Err(e) => {
                eprintln!("tether-lab: {e}");
                std::process::exit(2);
            }
        },
        Command::Consistency(args) => match consistency(args).await {
            Ok(true) => return,
            Ok(false) => {
                eprintln!("tether-lab: a consistency check failed (see the report)");
                std::process::exit(1);
            }
            Err(e) => {
                eprintln!("tether-lab: {e}");
                std::process::exit(2);
            }
        },
    };
    let (json, out) = (args.json, args.out.clone());
    match lab(args).await {
        Ok(report) => {
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(e) => eprintln!("tether-lab: {e}"),
                }
            } else {
                for c in &report.checks {
                    println!(
                        "check {} ... {} ({})",
                        c.what,
                        if c.passed { "ok" } else { "FAILED" },
                        c.measured
                    );
                }
                println!("report: {}", out.join("report.md").display());
            }
            if !report.passed() {
                eprintln!("tether-lab: a shape check failed (see the report)");
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("tether-lab: {e}");
            std::process::exit(2);
        }
    }
}
