//! `tether-bench run`: tether and tower-sessions behind the same app under the same
//! load, store by store, and `BENCHMARKS.md` from what it measured. Run it through
//! `scripts/bench`, which installs and starts Redis and MariaDB and builds in release.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use plotters::prelude::*;

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
    /// Only these stores (memory, redis, mysql, file, cookie).
    #[arg(long = "store")]
    stores: Vec<String>,
}

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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or_else(|e| fail(&format!("no free port: {e}")), |a| a.port())
}

fn output(command: &mut Command) -> String {
    match command.output() {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(e) => fail(&format!("cannot run {command:?}: {e}")),
    }
}

/// A benchmark server pinned to core 0.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(lib: &str, store: &str, url: Option<&str>, lock: bool) -> Self {
        let port = free_port();
        let exe = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("bench-server")))
            .unwrap_or_else(|| fail("cannot locate bench-server"));
        let mut command = Command::new("taskset");
        command
            .args(["-c", "0"])
            .arg(exe)
            .args(["--lib", lib, "--store", store, "--listen"])
            .arg(format!("127.0.0.1:{port}"));
        if let Some(url) = url {
            command.args(["--url", url]);
        }
        if lock {
            command.arg("--lock");
        }
        let child = command
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| fail(&format!("cannot start bench-server: {e}")));
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if start.elapsed() > Duration::from_secs(30) {
                fail(&format!("bench-server {lib}/{store} did not start"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A session with a counter, as the `Cookie` header value.
    fn seed(&self) -> String {
        let head = output(
            Command::new("curl")
                .args(["-s", "-D", "-", "-o", "/dev/null", "-X", "POST"])
                .arg(self.url("/write")),
        );
        head.lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("set-cookie").then(|| {
                    value
                        .trim()
                        .split(';')
                        .next()
                        .unwrap_or_default()
                        .to_owned()
                })
            })
            .unwrap_or_else(|| fail("the server set no cookie"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One wrk run.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn parse_ms(text: &str) -> f64 {
    let t = text.trim();
    let (number, scale) = if let Some(v) = t.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = t.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = t.strip_suffix('s') {
        (v, 1000.0)
    } else {
        (t, 1.0)
    };
    number.parse::<f64>().unwrap_or(0.0) * scale
}

fn wrk(url: &str, cookie: Option<&str>, post: bool, args: &RunArgs, script: &Path) -> Sample {
    let mut command = Command::new("taskset");
    command
        .args(["-c", "1", "wrk", "-t1", "--latency"])
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{}s", args.seconds));
    if let Some(cookie) = cookie {
        command.arg("-H").arg(format!("Cookie: {cookie}"));
    }
    if post {
        command.arg("-s").arg(script);
    }
    let text = output(command.arg(url));
    let mut sample = Sample::default();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => sample.rps = v.parse().unwrap_or(0.0),
            ["50%", v] => sample.p50_ms = parse_ms(v),
            ["99%", v] => sample.p99_ms = parse_ms(v),
            ["Non-2xx", "or", "3xx", "responses:", v] => {
                sample.errors += v.parse::<u64>().unwrap_or(0);
            }
            ["Socket", "errors:", rest @ ..] => {
                sample.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    if sample.rps == 0.0 {
        fail(&format!("wrk measured nothing at {url}:\n{text}"));
    }
    sample
}

/// Calls counted by the store's server: Redis commands or SQL statements.
fn store_calls(store: &str, url: &str) -> Option<u64> {
    match store {
        "redis" => {
            let port = url.rsplit(':').next()?;
            let text = output(Command::new(redis_cli()).args(["-p", port, "info", "commandstats"]));
            Some(
                text.lines()
                    .filter_map(|l| {
                        l.split("calls=")
                            .nth(1)?
                            .split(',')
                            .next()?
                            .parse::<u64>()
                            .ok()
                    })
                    .sum(),
            )
        }
        "mysql" => {
            let rest = url.strip_prefix("mysql://")?;
            let (creds, host) = rest.split_once('@')?;
            let (user, password) = creds.split_once(':')?;
            let host = host.split('/').next()?;
            let (host, port) = host.split_once(':')?;
            let text = output(
                Command::new(std::env::var("TETHER_MARIADB").unwrap_or_else(|_| "mariadb".into()))
                    .args(["-N", "-h", host, "-P", port, "-u", user])
                    .arg(format!("-p{password}"))
                    .args(["-e", "SHOW GLOBAL STATUS LIKE 'Com_stmt_execute'"]),
            );
            text.split_whitespace().nth(1)?.parse().ok()
        }
        _ => None,
    }
}

fn redis_cli() -> String {
    std::env::var("TETHER_REDIS_CLI").unwrap_or_else(|_| "redis-cli".into())
}

/// Store calls per request of `path`, over 100 requests, calibrated against the
/// counting itself.
#[allow(clippy::cast_precision_loss)]
fn calls_per_request(
    server: &Server,
    store: &str,
    url: &str,
    path: &str,
    cookie: &str,
    post: bool,
) -> Option<f64> {
    let a = store_calls(store, url)?;
    let b = store_calls(store, url)?;
    let overhead = b - a;
    let mut command = Command::new("curl");
    command
        .args(["-s", "-o", "/dev/null", "-H"])
        .arg(format!("Cookie: {cookie}"));
    if post {
        command.args(["-X", "POST"]);
    }
    command.arg(server.url(&format!("{path}?[1-100]")));
    output(&mut command);
    let c = store_calls(store, url)?;
    Some((c - b - overhead) as f64 / 100.0)
}

/// 200 concurrent increments of one session's counter; returns how many were lost.
fn lost_increments(server: &Server) -> u64 {
    let cookie = server.seed();
    output(
        Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-Z",
                "--parallel-max",
                "200",
                "-X",
                "POST",
                "-H",
            ])
            .arg(format!("Cookie: {cookie}"))
            .arg(server.url("/incr?[1-200]")),
    );
    let value: u64 = output(
        Command::new("curl")
            .args(["-s", "-H"])
            .arg(format!("Cookie: {cookie}"))
            .arg(server.url("/read")),
    )
    .trim()
    .parse()
    .unwrap_or(0);
    // The seed wrote 1.
    201u64.saturating_sub(value)
}

fn redis_floor(url: &str, connections: u32) -> BTreeMap<String, f64> {
    let port = url.rsplit(':').next().unwrap_or("6379");
    let text = output(
        Command::new("taskset")
            .args(["-c", "1", "redis-benchmark", "-p", port, "-c"])
            .arg(connections.to_string())
            .args(["-n", "200000", "-t", "get,set", "-q"]),
    );
    text.split(['\r', '\n'])
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let rps = rest.split_whitespace().next()?.parse::<f64>().ok()?;
            Some((name.trim().to_owned(), rps))
        })
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

type Key = (String, String, String); // (store, lib, endpoint)

#[allow(clippy::too_many_lines)]
fn run(args: &RunArgs) {
    let redis_url = std::env::var("TETHER_TEST_REDIS_URL")
        .unwrap_or_else(|_| fail("TETHER_TEST_REDIS_URL is not set: run scripts/bench"));
    let mysql_url = std::env::var("TETHER_TEST_MYSQL_URL")
        .unwrap_or_else(|_| fail("TETHER_TEST_MYSQL_URL is not set: run scripts/bench"));
    let file_dir = std::env::temp_dir().join(format!("tether-bench-{}", std::process::id()));
    let file_url = file_dir.display().to_string();
    let script = std::env::temp_dir().join(format!("tether-bench-post-{}.lua", std::process::id()));
    std::fs::write(&script, "wrk.method = \"POST\"\n").unwrap_or_else(|e| fail(&e.to_string()));
    let stores: Vec<(&str, Option<&str>, Vec<&str>)> = vec![
        ("memory", None, vec!["tether", "tower-sessions"]),
        (
            "redis",
            Some(redis_url.as_str()),
            vec!["tether", "tower-sessions"],
        ),
        (
            "mysql",
            Some(mysql_url.as_str()),
            vec!["tether", "tower-sessions"],
        ),
        ("file", Some(file_url.as_str()), vec!["tether"]),
        ("cookie", None, vec!["tether"]),
    ]
    .into_iter()
    .filter(|(s, _, _)| args.stores.is_empty() || args.stores.iter().any(|x| x == s))
    .collect();

    let mut samples: BTreeMap<Key, Vec<Sample>> = BTreeMap::new();
    let mut bare: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut calls: BTreeMap<Key, f64> = BTreeMap::new();
    let started = Instant::now();
    for round in 0..args.rounds {
        for (store, url, libs) in &stores {
            let mut bare_runs = Vec::new();
            let bare_server = Server::start("bare", "memory", None, false);
            bare_runs.push(wrk(&bare_server.url("/read"), None, false, args, &script).rps);
            drop(bare_server);
            let mut order = libs.clone();
            if round % 2 == 1 {
                order.reverse();
            }
            for lib in order {
                let server = Server::start(lib, store, *url, false);
                let cookie = server.seed();
                for (name, path, post) in ENDPOINTS {
                    let with_cookie = (name != "login").then_some(cookie.as_str());
                    let sample = wrk(&server.url(path), with_cookie, post, args, &script);
                    eprintln!(
                        "round {} {store:<6} {lib:<14} {name:<9} {:>9.0} req/s p50 {:.2} ms p99 {:.2} ms errors {}",
                        round + 1,
                        sample.rps,
                        sample.p50_ms,
                        sample.p99_ms,
                        sample.errors
                    );
                    samples
                        .entry(((*store).to_owned(), lib.to_owned(), name.to_owned()))
                        .or_default()
                        .push(sample);
                    if round == 0
                        && let Some(url) = url
                        && let Some(per) =
                            calls_per_request(&server, store, url, path, &cookie, post)
                    {
                        calls.insert(((*store).to_owned(), lib.to_owned(), name.to_owned()), per);
                    }
                }
            }
            let bare_server = Server::start("bare", "memory", None, false);
            bare_runs.push(wrk(&bare_server.url("/read"), None, false, args, &script).rps);
            drop(bare_server);
            bare.entry((*store).to_owned())
                .or_default()
                .push(bare_runs.iter().sum::<f64>() / 2.0);
        }
    }
    let floor = redis_floor(&redis_url, args.connections);
    let mut increments = Vec::new();
    for (store, url) in [
        ("memory", None),
        ("redis", Some(redis_url.as_str())),
        ("mysql", Some(mysql_url.as_str())),
    ] {
        for (lib, lock) in [("tether", true), ("tower-sessions", false)] {
            let server = Server::start(lib, store, url, lock);
            increments.push((store, lib, lock, lost_increments(&server)));
        }
    }
    let _ = std::fs::remove_dir_all(&file_dir);
    let _ = std::fs::remove_file(&script);
    let report = Report {
        args,
        samples,
        bare,
        calls,
        floor,
        increments,
        seconds: started.elapsed().as_secs_f64(),
    };
    let chart = args.out.join("docs/bench/ratios.svg");
    report.chart(&chart);
    let path = args.out.join("BENCHMARKS.md");
    std::fs::write(&path, report.markdown()).unwrap_or_else(|e| fail(&e.to_string()));
    println!("{}", report.headline());
    println!("wrote {} and {}", path.display(), chart.display());
}

struct Report<'a> {
    args: &'a RunArgs,
    samples: BTreeMap<Key, Vec<Sample>>,
    bare: BTreeMap<String, Vec<f64>>,
    calls: BTreeMap<Key, f64>,
    floor: BTreeMap<String, f64>,
    increments: Vec<(&'static str, &'static str, bool, u64)>,
    seconds: f64,
}

impl Report<'_> {
    fn get(&self, store: &str, lib: &str, endpoint: &str) -> Option<Sample> {
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

    fn bare(&self, store: &str) -> f64 {
        median(self.bare.get(store).cloned().unwrap_or_default())
    }

    fn stores(&self) -> Vec<String> {
        let mut stores: Vec<String> = Vec::new();
        for (s, _, _) in self.samples.keys() {
            if !stores.contains(s) {
                stores.push(s.clone());
            }
        }
        let order = ["memory", "redis", "mysql", "file", "cookie"];
        stores.sort_by_key(|s| order.iter().position(|o| o == s));
        stores
    }

    /// tether / tower-sessions per (store, endpoint), where both ran.
    fn ratios(&self) -> Vec<(String, f64)> {
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

    fn headline(&self) -> String {
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

    fn markdown(&self) -> String {
        let a = self.args;
        let mut out = String::from("# Benchmarks: tether and tower-sessions\n\n");
        let _ = writeln!(
            out,
            "Produced by `scripts/bench` (release build) on {}. Each server runs on one \
             tokio worker thread pinned to core 0 (`taskset -c 0`); `wrk -t1 -c{} -d{}s` runs \
             pinned to core 1. Every store's group of runs sits between two bare-axum runs \
             on the same machine, and the libraries alternate order round by round. \
             Figures are the median of {} rounds; the whole run took {:.0} s.\n",
            tether_testkit::harness::describe_machine(),
            a.connections,
            a.seconds,
            a.rounds,
            self.seconds
        );
        out.push_str(
            "Versions: tower-sessions 0.15 with its memory store; tower-sessions 0.14 with \
             tower-sessions-redis-store 0.16 (fred) and tower-sessions-sqlx-store 0.15 (sqlx \
             0.8), the newest set that builds together. Redis and MariaDB are the Debian \
             packages, on loopback, started by `scripts/services.sh`.\n\n\
             Endpoints: `untouched` (the handler ignores the session), `read` (reads a \
             counter), `write` (increments it), `login` (rotates the id and binds a user, \
             from no session). `read` and `write` send the cookie of one existing session.\n\n\
             ![tether ÷ tower-sessions](docs/bench/ratios.svg)\n\n## Summary\n\n",
        );
        out.push_str(&self.headline());
        for store in self.stores() {
            let bare = self.bare(&store);
            let _ = writeln!(out, "\n## {store}\n\nbare axum: {bare:.0} req/s\n");
            out.push_str("| endpoint | library | req/s | × bare | p50 ms | p99 ms | failed | store calls / request |\n|---|---|---|---|---|---|---|---|\n");
            for (endpoint, _, _) in ENDPOINTS {
                for lib in ["tether", "tower-sessions"] {
                    let Some(s) = self.get(&store, lib, endpoint) else {
                        continue;
                    };
                    let calls = self
                        .calls
                        .get(&(store.clone(), lib.to_owned(), endpoint.to_owned()))
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
                    a.connections,
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
        out.push_str(
            "\n## Lost increments\n\n200 concurrent `POST /incr` on one session's counter \
             (curl, 200 parallel connections); lost = 200 − the final count. tether runs in \
             lock mode (`with_lock`), tower-sessions has no lock mode.\n\n| store | library | lock mode | lost of 200 |\n|---|---|---|---|\n",
        );
        for (store, lib, lock, lost) in &self.increments {
            let _ = writeln!(
                out,
                "| {store} | {lib} | {} | {lost} |",
                if *lock { "yes" } else { "–" }
            );
        }
        out
    }

    fn chart(&self, path: &Path) {
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
            let max = bars.iter().map(|(_, v)| *v).fold(1.0_f64, f64::max) * 1.15;
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    "tether ÷ tower-sessions, req/s (1.0 = equal)",
                    ("sans-serif", 18),
                )
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(130)
                .build_cartesian_2d(0.0..max, (0..k).into_segmented())?;
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_label_formatter(&|v| match v {
                    SegmentValue::CenterOf(i) => bars
                        .get(*i as usize)
                        .map(|b| b.0.clone())
                        .unwrap_or_default(),
                    _ => String::new(),
                })
                .draw()?;
            chart.draw_series(bars.iter().zip(0..).map(|((_, v), i)| {
                let color = if *v >= 1.0 {
                    RGBColor(46, 140, 80)
                } else {
                    RGBColor(200, 70, 60)
                };
                let mut bar = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(i)),
                        (*v, SegmentValue::Exact(i + 1)),
                    ],
                    color.filled(),
                );
                bar.set_margin(4, 4, 0, 0);
                bar
            }))?;
            chart.draw_series(bars.iter().zip(0..).map(|((_, v), i)| {
                Text::new(
                    format!("{v:.2}×"),
                    (*v, SegmentValue::CenterOf(i)),
                    ("sans-serif", 13),
                )
            }))?;
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(1.0, SegmentValue::Exact(0)), (1.0, SegmentValue::Exact(k))],
                BLACK,
            )))?;
            root.present()?;
            Ok(())
        })();
        if let Err(e) = drawn {
            eprintln!("tether-bench: could not draw {}: {e}", path.display());
        }
    }
}

fn main() {
    let Cli::Run(args) = Cli::parse();
    run(&args);
}
